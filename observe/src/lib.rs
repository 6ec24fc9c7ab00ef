//! `ganger-observe`: what a run looks like from outside, read from what the cluster and the
//! MCMC driver publish.
//!
//! A [`StatusBoard`](status::StatusBoard) gathers the engine's state (polled through a
//! [`StatsHandle`](ganger_cluster::StatsHandle)), a job's progress and an MCMC run's chains (it
//! is the run's [`Observer`](ganger_mcmc::Observer)); the [`HttpServer`](http::HttpServer)
//! serves it as JSON, Prometheus metrics and a dashboard. Nothing here reaches into the engine
//! or the sampler: they publish, this layer reads.

pub mod http;
pub mod periodic;
pub mod status;
