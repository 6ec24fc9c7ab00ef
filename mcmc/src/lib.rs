//! `ganger-mcmc`: runs the parallel-tempering sampler of `ganger_core::mcmc` to its end, in
//! this process or on a cluster of workers.
//!
//! [`run()`] takes a config and an [`Evaluator`] ([`InProcess`] on a rayon pool, or
//! [`OnWorkers`] on a [`Delegator`](ganger_cluster::Delegator)'s workers) and writes the chain
//! files, checkpoints and `summary.json` into the config's output folder; a run stopped
//! anywhere resumes from its last checkpoint with the same bytes as one never stopped.
//! [`run_with_status`] also tells an [`Observer`] how the run goes (the status board and
//! dashboard of `ganger-observe` are one).
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//!
//! use ganger_core::mcmc::config::McmcConfig;
//! use ganger_core::mcmc::likelihood::FnLikelihood;
//! use ganger_mcmc::{run_with_status, Existing, InProcess, Silent};
//!
//! let dir = std::env::temp_dir().join(format!("ganger-mcmc-doc-{}", std::process::id()));
//! let text = format!(
//!     r#"{{"nJobTypes": 1, "nStacks": 2, "nTemperatures": 2, "nSamplesTotal": 4000,
//!          "min": [-5], "max": [5], "outputPath": {:?}}}"#,
//!     dir.display().to_string()
//! );
//! let config = McmcConfig::from_file_contents(&text, "inline.json".as_ref()).unwrap();
//! // One likelihood term: a standard Gaussian's energy.
//! let mut evaluator = InProcess::new(FnLikelihood::new(1, |_, x: &[f64]| 0.5 * x[0] * x[0]));
//! let stop = AtomicBool::new(false);
//! let report = run_with_status(&config, &mut evaluator, Existing::Refuse, &stop, &Silent).unwrap();
//! assert!(report.complete);
//! assert!(dir.join("summary.json").exists());
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

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
    ChainStatus, Console, ConvergenceStatus, McmcStatus, Observer, PosteriorStatus, Silent,
    TierStatus, TraceStatus,
};
pub use run::{
    run, run_with_status, sampler_settings, Evaluator, Existing, InProcess, McmcError, RunReport,
};
