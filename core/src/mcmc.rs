//! Parallel-tempering MCMC: the sampler, its configuration and its convergence diagnostics.
//!
//! Everything here is pure computation; the delegator drives the sampler over the network and
//! `embedded` drives it in-process with rayon.

pub mod config;
pub mod convergence;
pub mod diagnostics;
pub mod embedded;
pub mod evidence;
pub mod likelihood;
pub mod sampler;
pub mod tempering;
