//! The delegator's HTTP server: `/healthz`, `/api/status`, `/metrics` and the dashboard at `/`,
//! all read from a [`StatusBoard`]. It runs on its own thread with a single-threaded tokio
//! runtime, so it never competes with the engine or the sampler for more than a sliver of a core.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::oneshot;

use crate::status::{RunState, StatusBoard};

/// The dashboard: one self-contained page (no external assets: a cluster may have no internet).
const DASHBOARD: &str = include_str!("http/dashboard.html");

/// A running HTTP server; dropping it stops the server.
#[derive(Debug)]
pub struct HttpServer {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `address` (such as `0.0.0.0:8080`, or port 0 for a free one) and serves `board`.
    /// Binding happens before this returns, so a port in use is reported here.
    pub fn start(address: &str, board: StatusBoard) -> std::io::Result<HttpServer> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ganger-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            tracing::error!("HTTP server cannot start: {e}");
                            return;
                        }
                    };
                    let served = axum::serve(listener, router(board))
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!("HTTP server stopped: {e}");
                    }
                });
            })?;
        tracing::debug!(%address, "HTTP status server listening");
        Ok(HttpServer {
            address,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn router(board: StatusBoard) -> Router {
    let (health, status, metrics) = (board.clone(), board.clone(), board);
    Router::new()
        .route("/", get(|| async { Html(DASHBOARD) }))
        .route("/healthz", get(move || async move { healthz(&health) }))
        .route(
            "/api/status",
            get(move || async move { Json(status.snapshot()) }),
        )
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.metrics_text(),
                )
            }),
        )
}

/// 200 while nothing is stuck, saying how the run ended once it has (a finished run kept
/// serving is healthy); 503 while the engine of a running run has stopped answering.
fn healthz(board: &StatusBoard) -> Response {
    match board.outcome() {
        Some(RunState::Done) => return (StatusCode::OK, "ok: done\n").into_response(),
        Some(RunState::Stopped) => return (StatusCode::OK, "ok: stopped\n").into_response(),
        _ => {}
    }
    if board.alive() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the delegator's engine has not answered for 10 s\n",
        )
            .into_response()
    }
}
