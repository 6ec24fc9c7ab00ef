//! Running the MCMC sampler: output files, checkpoints, console tables, and the drivers that
//! evaluate rounds in-process or on workers.

pub mod digest;
mod distributed;
pub mod output;
pub mod run;
pub mod speculation;
pub mod summary;
mod table;

pub use distributed::OnWorkers;
pub use run::{
    run, run_with_status, sampler_settings, Evaluator, Existing, InProcess, McmcError, RunReport,
};
