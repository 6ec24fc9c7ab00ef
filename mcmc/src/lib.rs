//! `ganger-mcmc`: runs the parallel-tempering sampler of `ganger_core::mcmc` to its end, in
//! this process or on a cluster of workers.
//!
//! [`run()`] takes a config and an [`Evaluator`] ([`InProcess`] on a rayon pool, or
//! [`OnWorkers`] on a [`Delegator`](ganger_cluster::Delegator)'s workers) and writes the chain
//! files, checkpoints and `summary.json` into the config's output folder; a run stopped
//! anywhere resumes from its last checkpoint with the same bytes as one never stopped.
//! [`run_with_status`] also tells an [`Observer`] how the run goes (the status board and
//! dashboard of `ganger-observe` are one).

pub mod digest;
mod distributed;
mod evaluator;
pub mod observer;
pub mod output;
pub mod run;
pub mod speculation;
pub mod summary;
mod table;

pub use distributed::OnWorkers;
pub use observer::{
    ChainStatus, Console, ConvergenceStatus, McmcStatus, Observer, Silent, TierStatus, TraceStatus,
};
pub use run::{
    run, run_with_status, sampler_settings, Evaluator, Existing, InProcess, McmcError, RunReport,
};
