//! Watching a run: the status board every subcommand publishes to, the HTTP server that serves
//! it (`--http`), and the terminal. When stderr is a terminal, a progress bar with rate and ETA
//! and, for MCMC, the chain table above it are redrawn in place while the logs scroll above
//! both; otherwise (container logs) a plain progress line every 10 seconds, and each table
//! appended.

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ganger_cluster::Delegator;
use ganger_observe::http::HttpServer;
use ganger_observe::periodic::Periodic;
use ganger_observe::status::{Poller, RunState, Status, StatusBoard};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::{info, warn};

use crate::Common;

/// The HTTP address when `--http` is not given: this machine only. The page has no
/// authentication, so serving it beyond loopback is asked for (`--http 0.0.0.0:8080`; the
/// image does, since a published port arrives on the container's bridge interface).
const DEFAULT_HTTP: &str = "127.0.0.1:8080";

/// How often the progress log line is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How often the progress bar is redrawn when stderr is a terminal.
const DRAW_EVERY: Duration = Duration::from_millis(250);

/// The board, the HTTP server and the terminal display of one run.
pub(crate) struct Watch {
    pub(crate) board: StatusBoard,
    _http: Option<HttpServer>,
    poller: Mutex<Option<Poller>>,
    console: Option<Console>,
}

impl Watch {
    /// Starts the HTTP server (unless `--http none`) and the terminal display.
    pub(crate) fn start(common: &Common) -> anyhow::Result<Watch> {
        let board = StatusBoard::new();
        let http = match common.http.as_deref() {
            Some("none") => None,
            Some(address) => {
                let server = HttpServer::start(address, board.clone())
                    .with_context(|| format!("cannot serve HTTP on {address} (--http)"))?;
                if !server.address().ip().is_loopback() {
                    info!(
                        address = %server.address(),
                        "the dashboard and API answer anyone who can reach this address, without authentication"
                    );
                }
                Some(server)
            }
            // The default port may be taken (another delegator on this host): carry on without.
            None => match HttpServer::start(DEFAULT_HTTP, board.clone()) {
                Ok(server) => Some(server),
                Err(e) => {
                    warn!("no HTTP status server: cannot bind {DEFAULT_HTTP}: {e} (choose another with --http ADDR)");
                    None
                }
            },
        };
        if let Some(server) = &http {
            info!("dashboard at {}", dashboard_url(server.address()));
        }
        if let (Some(server), Some(path)) = (&http, &common.http_address_file) {
            std::fs::write(path, server.address().to_string())
                .with_context(|| format!("cannot write the HTTP address to {}", path.display()))?;
        }
        let console = Console::start(&board);
        Ok(Watch {
            board,
            _http: http,
            poller: Mutex::new(None),
            console: Some(console),
        })
    }

    /// Publishes `delegator`'s workers, queues, counters and histograms from now on.
    pub(crate) fn attach(&self, delegator: &Delegator) {
        self.board.attach_metrics(delegator.metrics().clone());
        let poller = self.board.spawn_poller(delegator.stats_handle());
        *self.poller.lock().unwrap_or_else(|p| p.into_inner()) = Some(poller);
    }

    /// Stops the terminal display (leaving its last state on screen); the HTTP server keeps
    /// serving until the watch is dropped.
    pub(crate) fn finish_console(&mut self) {
        self.console.take();
    }
}

/// The terminal display's thread; dropping it draws the last state and stops it at once.
struct Console {
    _periodic: Option<Periodic>,
}

impl Console {
    fn start(board: &StatusBoard) -> Console {
        let board = board.clone();
        let display = std::io::stderr().is_terminal().then(|| {
            let display = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let bar = display.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {percent:>3}% {human_pos}/{human_len} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let table = Arc::new(LiveTable::new(display.clone()));
            let printer = table.clone();
            board.set_printer(Box::new(move |text| printer.show(text)));
            crate::terminal::set_live(Some(display));
            (table, bar)
        });
        let bar = display.as_ref().map(|(_, bar)| bar.clone());
        let mut last_log = Instant::now();
        let periodic = Periodic::spawn("ganger-console", DRAW_EVERY, move |last| {
            let status = board.snapshot();
            match &bar {
                Some(bar) => draw(bar, &status),
                None if last || last_log.elapsed() >= LOG_EVERY => {
                    last_log = Instant::now();
                    log_line(&status);
                }
                None => {}
            }
            if last {
                if let Some((table, bar)) = &display {
                    // Left on screen as they last were; what follows prints below them.
                    board.clear_printer();
                    table.leave();
                    bar.abandon();
                    crate::terminal::set_live(None);
                }
            }
            true
        });
        Console {
            _periodic: periodic.ok(),
        }
    }
}

/// The MCMC chain table, drawn above the progress bar and replaced by each new one; appended
/// above it instead when the terminal is too short to hold it with room to spare.
struct LiveTable {
    display: MultiProgress,
    table: Mutex<Option<ProgressBar>>,
}

impl LiveTable {
    fn new(display: MultiProgress) -> LiveTable {
        LiveTable {
            display,
            table: Mutex::new(None),
        }
    }

    fn show(&self, text: &str) {
        let text = text.trim_end_matches('\n');
        let lines = text.lines().count();
        let fits = crate::terminal::rows().is_some_and(|rows| lines + 4 <= rows);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if !fits {
            if let Some(table) = table.take() {
                table.finish_and_clear();
            }
            self.display.suspend(|| eprintln!("{text}"));
            return;
        }
        let table = table.get_or_insert_with(|| {
            let table = self.display.insert(0, ProgressBar::new(0));
            table.set_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            table
        });
        table.set_message(text.to_owned());
    }

    /// Leaves the last table on screen, drawn no more.
    fn leave(&self) {
        if let Some(table) = self.table.lock().unwrap_or_else(|p| p.into_inner()).take() {
            table.abandon();
        }
    }
}

fn draw(bar: &ProgressBar, status: &Status) {
    let p = &status.progress;
    if p.total == 0 {
        // Nothing submitted yet: a bar now would read 100 % of nothing.
        return;
    }
    bar.set_length(p.total);
    bar.set_position(p.done.min(p.total));
    let eta = match (status.state, p.eta_secs) {
        (RunState::Running, Some(eta)) => format!(", ETA {}", clock(eta)),
        (RunState::Running, None) => String::new(),
        (RunState::Done, _) => ", done".into(),
        (RunState::Stopped, _) => ", stopped".into(),
    };
    let failed = if p.failed > 0 {
        format!(", {} failed", p.failed)
    } else {
        String::new()
    };
    bar.set_message(format!(
        "{} {}, {:.0} {}{eta}{failed}",
        p.unit, status.name, p.rate, p.rate_unit
    ));
}

fn log_line(status: &Status) {
    let p = &status.progress;
    if p.total == 0 {
        return;
    }
    info!(
        done = p.done,
        total = p.total,
        unit = %p.unit,
        percent = format!("{:.1}", 100.0 * p.fraction),
        rate = format!("{:.0} {}", p.rate, p.rate_unit),
        eta = p.eta_secs.map(clock).unwrap_or_else(|| "-".into()),
        failed = p.failed,
        "progress"
    );
}

/// `1h02m03s`-style durations.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// The dashboard's address as a URL to click: on every interface, the host's name stands in
/// for the unspecified address.
fn dashboard_url(address: std::net::SocketAddr) -> String {
    if address.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("http://{host}:{}/", address.port())
    } else {
        format!("http://{address}/")
    }
}
