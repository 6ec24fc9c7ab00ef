//! `ganger`: farm compute out over ZeroMQ.
//!
//! A delegator binds one TCP port and streams batches of work units to stateless workers that
//! dial in from anywhere; results come back in batches, each unit's exactly once, whatever
//! workers die on the way. This facade re-exports the parts:
//!
//! - [`core`]: wire protocol, codec, tasks, registry and the sampler (no I/O);
//! - [`cluster`]: the [`Delegator`] that leases units and collects outcomes;
//! - [`worker`]: the [`Worker`] that evaluates them on a rayon pool;
//! - [`mcmc`]: parallel-tempering runs on the cluster or in process;
//!
//! and adds [`LocalCluster`], a delegator plus in-process workers for running a whole job in
//! one process:
//!
//! ```
//! use ganger::{JobOptions, LocalCluster, Registry};
//!
//! let mut registry = Registry::new();
//! registry.register("collatz", |mut n: u64| {
//!     let mut steps = 0u32;
//!     while n > 1 {
//!         n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
//!         steps += 1;
//!     }
//!     steps
//! });
//! let cluster = LocalCluster::start(2, 1, registry).unwrap();
//! let steps = cluster
//!     .delegator()
//!     .submit::<_, u32>("collatz", 1..=1000u64, JobOptions::default())
//!     .unwrap()
//!     .collect_ordered()
//!     .unwrap();
//! assert_eq!(steps[26], Ok(111)); // 27 takes 111 steps
//! ```

use std::thread::JoinHandle;

pub use ganger_cluster as cluster;
pub use ganger_core as core;
pub use ganger_worker as worker;

pub use ganger_cluster::{Delegator, DelegatorConfig, Job, JobOptions, UnitError};
pub use ganger_core::task::Registry;
pub use ganger_worker::{Shutdown, Worker, WorkerConfig};

/// What can go wrong starting a [`LocalCluster`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The delegator could not start.
    #[error(transparent)]
    Delegator(#[from] ganger_cluster::Error),
    /// A worker could not start.
    #[error(transparent)]
    Worker(#[from] ganger_worker::Error),
    /// A worker thread could not be spawned.
    #[error("cannot spawn a worker thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A delegator on a free loopback port plus workers running as threads of this process.
///
/// The workers are ordinary [`Worker`]s talking to the delegator over TCP, so a job behaves
/// exactly as it would on a cluster. Dropping the cluster stops the workers, then the delegator.
#[derive(Debug)]
pub struct LocalCluster {
    delegator: Option<Delegator>,
    workers: Vec<(
        Shutdown,
        JoinHandle<ganger_worker::Result<ganger_worker::Summary>>,
    )>,
}

impl LocalCluster {
    /// Starts a delegator and `n_workers` workers with `threads` evaluation threads each.
    pub fn start(
        n_workers: usize,
        threads: usize,
        registry: Registry,
    ) -> Result<LocalCluster, Error> {
        let config = DelegatorConfig {
            bind: "tcp://127.0.0.1:0".into(),
            ..DelegatorConfig::default()
        };
        Self::with_config(config, n_workers, threads, registry)
    }

    /// Like [`LocalCluster::start`] with delegator settings of your choosing. With a
    /// [`secret`](DelegatorConfig::secret), the workers get it too (and every frame is sealed).
    pub fn with_config(
        config: DelegatorConfig,
        n_workers: usize,
        threads: usize,
        registry: Registry,
    ) -> Result<LocalCluster, Error> {
        let secret = config.secret.clone();
        let delegator = Delegator::start(config)?;
        let mut cluster = LocalCluster {
            workers: Vec::with_capacity(n_workers),
            delegator: Some(delegator),
        };
        for i in 0..n_workers {
            let mut worker_config = WorkerConfig::new(cluster.delegator().local_endpoint());
            worker_config.threads = threads;
            worker_config.name = format!("in-process-{i}");
            worker_config.secret = secret.clone();
            let worker = Worker::new(worker_config, registry.clone())?;
            let shutdown = worker.shutdown_handle();
            let handle = std::thread::Builder::new()
                .name(format!("ganger-worker-{i}"))
                .spawn(move || worker.run())?;
            cluster.workers.push((shutdown, handle));
        }
        Ok(cluster)
    }

    /// The cluster's delegator, to submit jobs to.
    pub fn delegator(&self) -> &Delegator {
        self.delegator
            .as_ref()
            .expect("the delegator lives as long as the cluster")
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for (shutdown, _) in &self.workers {
            shutdown.request();
        }
        for (_, handle) in self.workers.drain(..) {
            let _ = handle.join();
        }
        self.delegator.take();
    }
}

/// Parallel-tempering MCMC, in this process or on workers.
///
/// Embedding the sampler in a Rust program takes a config and a likelihood closure
/// `(job_type, &x) -> energy term`; the run writes the same chain files and `summary.json` as
/// `ganger-delegator mcmc`:
///
/// ```no_run
/// use ganger::mcmc::{run_embedded, FnLikelihood, McmcConfig};
///
/// let config = McmcConfig::from_file_contents(
///     r#"{"nJobTypes": 2, "nStacks": 2, "nTemperatures": 4, "nSamplesTotal": 20000,
///         "min": [-5, -5], "max": [5, 5], "outputPath": "my-run"}"#,
///     "inline.json".as_ref(),
/// )
/// .unwrap();
/// // Two data subsets, one term each: a Gaussian centred at (1, -1).
/// let likelihood = FnLikelihood::new(2, |term, x: &[f64]| 0.5 * (x[term] - [1.0, -1.0][term]).powi(2));
/// let report = run_embedded(&config, likelihood).unwrap();
/// assert!(report.complete);
/// ```
pub mod mcmc {
    pub use ganger_core::mcmc::config::{ConfigFormat, McmcConfig};
    pub use ganger_core::mcmc::likelihood::{Builtin, FnLikelihood, Likelihood};
    pub use ganger_core::mcmc::sampler::{Sampler, SamplerSettings};
    pub use ganger_core::mcmc::{convergence, diagnostics, evidence, tempering};
    pub use ganger_mcmc::{
        output, run, run_with_status, sampler_settings, ChainStatus, Console, ConvergenceStatus,
        Existing, InProcess, McmcError, McmcStatus, Observer, OnWorkers, RunReport, Silent,
        TierStatus, TraceStatus,
    };

    /// Runs `config` in this process, evaluating `likelihood` across rayon threads, and writes
    /// the chain files, `summary.json` and checkpoints into `config.output_path`. A folder that
    /// already holds a run's files is refused ([`McmcError::OutputExists`]); [`run()`] with
    /// [`Existing::Resume`] or [`Existing::Overwrite`] says what to do with it instead.
    pub fn run_embedded(
        config: &McmcConfig,
        likelihood: impl Likelihood,
    ) -> Result<RunReport, McmcError> {
        let stop = std::sync::atomic::AtomicBool::new(false);
        run(
            config,
            &mut InProcess::new(likelihood),
            Existing::Refuse,
            &stop,
        )
    }
}
