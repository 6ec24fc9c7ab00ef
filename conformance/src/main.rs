//! `ganger-conformance`: checks a worker implementation against PROTOCOL.md by playing the
//! delegator's side.
//!
//! `ganger-conformance [--secret] [--check NAME]... [--list] -- CMD ARGS...` prints one line per
//! check (`PASS name` or `FAIL name: why`) and a summary; exit status 0 iff every check passed,
//! 1 if one failed, 2 if the suite could not run (bad flags, no command).

use std::io::Write as _;
use std::time::Duration;

use clap::Parser;
use ganger_conformance::Options;

/// Check a ganger worker implementation against PROTOCOL.md.
///
/// For each check, binds a ROUTER on tcp://127.0.0.1:0 and starts a fresh copy of the worker
/// with GANGER_CONNECT, GANGER_THREADS=2, GANGER_NAME (and GANGER_SECRET with --secret) in its
/// environment. The worker must serve `noop`, `sleep` and `panic-if-odd`.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Give the worker a random cluster secret: the handshake and sealed frames of §10.
    #[arg(long)]
    secret: bool,
    /// Send only payloads the exec bridge's JSON framing can carry: canonical MessagePack values
    /// without `bin` (by default noop units also carry arbitrary bytes).
    #[arg(long)]
    json_payloads: bool,
    /// Run only this check (repeatable) [default: all].
    #[arg(long = "check", value_name = "NAME")]
    checks: Vec<String>,
    /// List the checks and exit.
    #[arg(long)]
    list: bool,
    /// Checks run at once, each with its own port and worker.
    #[arg(long, default_value_t = 3)]
    jobs: usize,
    /// Seconds the worker may take to exit after SIGTERM.
    #[arg(long, default_value_t = 35.0)]
    grace_secs: f64,
    /// The worker's command line.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

fn main() {
    let cli = Cli::parse();
    if cli.list {
        for check in ganger_conformance::checks() {
            println!("{:<17} {:<38} {}", check.name, check.section, check.summary);
        }
        return;
    }
    let options = match options(cli) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("ganger-conformance: {e:#}");
            std::process::exit(2);
        }
    };
    let report = ganger_conformance::run_with(&options, |check| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{check}");
        let _ = out.flush();
    });
    let failed = report.failed();
    println!(
        "{} of {} checks passed{}{}",
        report.checks.len() - failed.len(),
        report.checks.len(),
        if options.secret { " (secured)" } else { "" },
        if failed.is_empty() {
            String::new()
        } else {
            format!("; failed: {}", failed.join(", "))
        }
    );
    std::process::exit(if report.passed() { 0 } else { 1 });
}

fn options(cli: Cli) -> anyhow::Result<Options> {
    let mut options = Options::new(cli.command);
    options.secret = cli.secret;
    options.json_payloads = cli.json_payloads;
    options.checks = cli.checks;
    options.jobs = cli.jobs;
    options.grace = Duration::try_from_secs_f64(cli.grace_secs)
        .map_err(|e| anyhow::anyhow!("--grace-secs {}: {e}", cli.grace_secs))?;
    options.validate()?;
    Ok(options)
}
