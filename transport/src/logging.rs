//! Log set-up shared by the `ganger-delegator` and `ganger-worker` binaries.

use tracing_subscriber::fmt::MakeWriter;

/// Logs to stderr as `text` (for people) or `json` (for log shippers), filtered by the
/// `GANGER_LOG` environment variable (any `tracing` filter; default `info`). Text is coloured
/// only on a terminal, so container logs hold no escape codes.
pub fn init(format: &str) {
    init_with_writer(format, std::io::stderr);
}

/// [`init`], writing each log line through `writer` instead of straight to stderr: a program
/// that draws on the terminal passes one that clears its drawing around each line. Colour is
/// still decided by whether stderr is a terminal.
pub fn init_with_writer<W>(format: &str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANGER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
