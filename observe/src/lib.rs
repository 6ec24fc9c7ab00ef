//! `ganger-observe`: what a run looks like from outside, read from what the cluster and the
//! MCMC driver publish.
//!
//! A [`StatusBoard`](status::StatusBoard) gathers the engine's state (polled through a
//! [`StatsHandle`](ganger_cluster::StatsHandle)), a job's progress and an MCMC run's chains (it
//! is the run's [`Observer`](ganger_mcmc::Observer)); the [`HttpServer`](http::HttpServer)
//! serves it as JSON, Prometheus metrics and a dashboard. Nothing here reaches into the engine
//! or the sampler: they publish, this layer reads.
//!
//! ```
//! use ganger_observe::http::HttpServer;
//! use ganger_observe::status::{RunKind, RunState, StatusBoard};
//!
//! let board = StatusBoard::new();
//! board.begin(RunKind::Run, "squares", 10, 1);
//! board.set_progress(4, 1, 10);
//! let status = board.snapshot();
//! assert_eq!((status.progress.done, status.progress.failed), (4, 1));
//! board.end(RunState::Done);
//! assert_eq!(board.snapshot().state, RunState::Done);
//! // What the dashboard, /api/status, /metrics and /healthz serve, on a free loopback port.
//! let server = HttpServer::start("127.0.0.1:0", board.clone()).unwrap();
//! assert!(server.address().ip().is_loopback());
//! ```

pub mod http;
pub mod periodic;
pub mod status;
