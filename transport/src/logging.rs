//! Log set-up shared by the `ganger-delegator` and `ganger-worker` binaries.

/// Logs to stderr as `text` (for people) or `json` (for log shippers), filtered by the
/// `GANGER_LOG` environment variable (any `tracing` filter; default `info`). Text is coloured
/// only on a terminal, so container logs hold no escape codes.
pub fn init(format: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANGER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
