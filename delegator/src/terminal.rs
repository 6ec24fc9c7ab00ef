//! The terminal's stderr, shared by what is drawn in place (the progress bar, the MCMC table)
//! and the log lines that scroll above it.
//!
//! While a live display is up, each log line clears it, is written, and has it drawn again
//! below, so neither garbles the other; without one, log lines go straight to stderr.

use std::io::Write as _;
use std::sync::Mutex;

use indicatif::MultiProgress;
use tracing_subscriber::fmt::MakeWriter;

/// The live display, while one is drawn.
static LIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Makes `display` the live display that log lines are written around, or none.
pub(crate) fn set_live(display: Option<MultiProgress>) {
    *LIVE.lock().unwrap_or_else(|p| p.into_inner()) = display;
}

/// Writes `bytes` to stderr around the live display, if one is drawn.
pub(crate) fn write_around(bytes: &[u8]) {
    // Cloned out, so that drawing never happens under this lock.
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let write = || {
        let _ = std::io::stderr().lock().write_all(bytes);
    };
    match live {
        Some(display) => display.suspend(write),
        None => write(),
    }
}

/// The rows of the terminal stderr is, if it is one.
pub(crate) fn rows() -> Option<usize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize it is given, and fails harmlessly on a non-terminal.
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_row > 0).then_some(usize::from(size.ws_row))
}

/// The log writer: each log line is buffered whole and written around the live display.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Logs;

impl<'a> MakeWriter<'a> for Logs {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One log line on its way to stderr; written when dropped.
pub(crate) struct LogLine(Vec<u8>);

impl std::io::Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            write_around(&self.0);
        }
    }
}
