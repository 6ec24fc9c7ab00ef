//! The HTTP API and the dashboard of a real distributed MCMC run, the page rendered by headless
//! Chromium: what it shows must match `/api/status` and move as the run advances.
//!
//! Needs Debian's `chromium` (or `GANGER_CHROMIUM=/path/to/chrome`). Without one each test
//! checks the API alone, and its browser half is listed as a test of its own, ignored, named
//! `[needs chromium]` (libtest-mimic's harness, since libtest cannot ignore at run time),
//! unless `GANGER_REQUIRE_BROWSER=1` (as `.ci/run` sets) makes a missing browser a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{delegator_command, http_get as get, run_trials, trial, worker_bin};
use serde_json::Value;

fn main() -> std::process::ExitCode {
    let tests: [(&str, fn()); 5] = [
        (
            "the_api_and_the_dashboard_show_a_live_run",
            the_api_and_the_dashboard_show_a_live_run,
        ),
        (
            "a_finished_run_kept_serving_is_healthy_says_how_long_it_took_and_has_no_workers",
            a_finished_run_kept_serving_is_healthy_says_how_long_it_took_and_has_no_workers,
        ),
        (
            "a_task_no_connected_worker_serves_is_named_on_the_dashboard",
            a_task_no_connected_worker_serves_is_named_on_the_dashboard,
        ),
        (
            "an_embedded_run_says_its_threads_evaluate_rather_than_no_workers",
            an_embedded_run_says_its_threads_evaluate_rather_than_no_workers,
        ),
        (
            "a_finished_run_still_shows_why_its_units_failed",
            a_finished_run_still_shows_why_its_units_failed,
        ),
    ];
    // Without a browser, each test's browser half is a test of its own, reported as ignored.
    let no_browser = (chromium().is_none() && std::env::var_os("GANGER_REQUIRE_BROWSER").is_none())
        .then(|| "chromium".to_owned());
    let mut trials = Vec::new();
    for (name, test) in tests {
        trials.push(trial(name, None, test));
        if no_browser.is_some() {
            let half = format!("{name}: the page in a browser");
            trials.push(trial(&half, no_browser.clone(), test));
        }
    }
    run_trials(trials)
}

fn status(address: &str) -> Value {
    let (code, body) = get(address, "/api/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("/api/status is JSON")
}

/// The browser for a test's browser half; none (said on stderr) if there is none, unless
/// `GANGER_REQUIRE_BROWSER` makes that a failure.
fn browser() -> Option<PathBuf> {
    let browser = chromium();
    if browser.is_none() {
        assert!(
            std::env::var_os("GANGER_REQUIRE_BROWSER").is_none(),
            "GANGER_REQUIRE_BROWSER is set but no chromium was found"
        );
        eprintln!("SKIPPED the browser half: no chromium on PATH (set GANGER_CHROMIUM)");
    }
    browser
}

/// The dashboard's address, once the delegator has written it to `file`; fails after 60 s.
fn http_address(file: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(address) = std::fs::read_to_string(file) {
            if !address.is_empty() {
                return address;
            }
        }
        assert!(Instant::now() < deadline, "no HTTP address within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GANGER_CHROMIUM") {
        return Some(path.into());
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH")?
                .to_str()?
                .split(':')
                .map(|dir| Path::new(dir).join(name))
                .find(|p| p.is_file())
        })
}

/// Runs headless Chromium on the dashboard with `args` (`--dump-dom`, `--screenshot=…`), giving
/// the page 3 s of its own time to fetch and render; returns its standard output.
fn browse(browser: &Path, address: &str, args: &[&str]) -> String {
    browse_at(browser, address, 1280, args)
}

/// [`browse`] in a window `width` pixels wide.
fn browse_at(browser: &Path, address: &str, width: u32, args: &[&str]) -> String {
    browse_url(browser, &format!("http://{address}/"), width, args)
}

/// Headless Chromium on `url` in a window `width` pixels wide (at least 500: Chromium's least).
fn browse_url(browser: &Path, url: &str, width: u32, args: &[&str]) -> String {
    // A profile of its own: browsers of tests running in parallel would fight over one.
    static BROWSERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BROWSERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = std::env::temp_dir().join(format!("ganger-chromium-{}-{n}", std::process::id()));
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            &format!("--window-size={width},1600"),
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(output.status.success(), "chromium failed: {output:?}");
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// The text of the element with id `id` in a dumped DOM.
fn text_of(dom: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let after = &dom[start..];
    let open = after.find('>').unwrap() + 1;
    let close = after[open..].find('<').unwrap();
    after[open..open + close].to_owned()
}

/// The text of the `<div>` with id `id` in a dumped DOM, its children's tags dropped (the div
/// holds no other div).
fn div_text_of(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let after = &dom[start..];
    let inner = &after[after.find('>').unwrap() + 1..after.find("</div>").unwrap()];
    let mut text = String::new();
    let mut in_tag = false;
    for c in inner.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

/// Serves `html` to every request on a free loopback port, for as long as the test runs (a
/// page from a file may not frame one from the network); returns the address.
fn serve_page(html: String) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    address
}

/// A displayed count ("1,234") as a number.
fn number(text: &str) -> u64 {
    text.replace(',', "")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{text:?} is not a count"))
}

/// Rows in the body of the table with id `id`.
fn table_rows(dom: &str, id: &str) -> usize {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .expect("the table is there");
    let table = &dom[start..start + dom[start..].find("</table>").unwrap()];
    let body = &table[table.find("<tbody>").expect("a body")..];
    body.matches("<tr>").count()
}

struct Run {
    child: Child,
    address: String,
    dir: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A distributed MCMC run much longer than the test, with one local worker process.
fn start_run() -> Run {
    let run = launch("long", 2_000_000_000, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait until the run is under way with its worker registered.
    loop {
        let s = status(&run.address);
        // Past the burn-in, so that there are diagnostics to show.
        if s["mcmc"]["step"].as_u64() > Some(200)
            && s["workers"].as_array().is_some_and(|w| !w.is_empty())
        {
            break;
        }
        assert!(Instant::now() < deadline, "the run did not start: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    run
}

/// A distributed MCMC run of `samples_total` with one local worker process and the dashboard
/// on a free port, once that port is known.
fn launch(name: &str, samples_total: u64, extra: &[&str]) -> Run {
    let dir = std::env::temp_dir().join(format!("ganger-dashboard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join(format!("{name}.json"));
    std::fs::write(
        &config,
        format!(
            r#"{{"nJobTypes": 2, "nStacks": 2, "nTemperatures": 3, "nSamplesTotal": {samples_total},
                "min": [-10, -10], "max": [10, 10], "swapInterval": 10, "loggingRateSec": 3600,
                "burnIn": 100, "names": ["lat", "lon"], "outputPath": "{}"}}"#,
            dir.join("out").display()
        ),
    )
    .unwrap();
    let address_file = dir.join("http-address");
    let child = delegator_command()
        .args(["mcmc", "--config"])
        .arg(&config)
        .args(["--spawn-workers", "1", "--worker-threads", "1"])
        // Its own free port: tests run in parallel.
        .args(["--bind", "tcp://127.0.0.1:0"])
        .args(["--http", "127.0.0.1:0", "--http-address-file"])
        .arg(&address_file)
        .arg("--worker-bin")
        .arg(worker_bin())
        .args(extra)
        .env("GANGER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the delegator starts");
    let address = http_address(&address_file);
    Run {
        child,
        address,
        dir,
    }
}

fn the_api_and_the_dashboard_show_a_live_run() {
    let run = start_run();
    let address = run.address.as_str();

    let (code, body) = get(address, "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let s = status(address);
    assert_eq!(s["kind"], "mcmc");
    assert_eq!(s["state"], "running");
    assert_eq!(s["engine_alive"], true);
    assert_eq!(s["progress"]["total"], 1_000_000_000u64);
    assert_eq!(s["mcmc"]["chains"].as_array().unwrap().len(), 6);
    assert_eq!(s["mcmc"]["tiers"].as_array().unwrap().len(), 3);
    let worker = &s["workers"][0];
    assert!(
        worker["job_types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "mcmc/gaussian/*"),
        "{worker}"
    );
    assert_eq!(worker["slots"], 1);
    // The board samples each worker's rate about once a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(address);
        let rate = s["workers"][0]["units_per_sec"].as_f64();
        if rate.is_some_and(|r| r > 0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no worker rate: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, metrics) = get(address, "/metrics");
    assert_eq!(code, 200);
    for family in [
        "ganger_units_submitted_total ",
        "ganger_workers_connected 1.0",
        "ganger_mcmc_step ",
        "ganger_batch_round_trip_seconds_count ",
        "# EOF",
    ] {
        assert!(
            metrics.contains(family),
            "no {family:?} in /metrics:\n{metrics}"
        );
    }

    let Some(browser) = browser() else {
        return;
    };
    let before = status(address);
    let dom = browse(&browser, address, &["--dump-dom"]);
    let after = status(address);
    let updates: u64 = dom
        .split("data-updates=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("the body counts its updates");
    assert!(updates >= 1, "the page never loaded /api/status");
    assert_eq!(text_of(&dom, "kind"), "mcmc");
    assert_eq!(text_of(&dom, "state"), "running");
    // What the page shows lies between what the API said just before and just after.
    let shown = number(&text_of(&dom, "mcmc-step"));
    let (first, last) = (
        before["mcmc"]["step"].as_u64().unwrap(),
        after["mcmc"]["step"].as_u64().unwrap(),
    );
    assert!(
        first <= shown && shown <= last,
        "{first} <= {shown} <= {last}"
    );
    assert_eq!(number(&text_of(&dom, "progress-total")), 1_000_000_000);
    assert_eq!(
        number(&text_of(&dom, "workers-count")),
        after["workers"].as_array().unwrap().len() as u64
    );
    assert_eq!(table_rows(&dom, "chains"), 6);
    // The posterior, live: a row per dimension, as the API has it.
    let posterior = after["mcmc"]["convergence"]["posterior"]
        .as_array()
        .unwrap();
    assert_eq!(posterior.len(), 2, "{posterior:?}");
    assert!(posterior
        .iter()
        .all(|d| d["mean"].is_number() && d["q95"].is_number()));
    assert_eq!(table_rows(&dom, "posterior"), 2);
    // The config's names label the rows and the traces.
    assert_eq!(after["mcmc"]["names"], serde_json::json!(["lat", "lon"]));
    assert!(dom.contains("<td>lat</td>") && dom.contains("<td>lon</td>"));
    assert_eq!(
        table_rows(&dom, "workers"),
        after["workers"].as_array().unwrap().len()
    );
    assert!(
        dom.contains("aria-label=\"trace lon\""),
        "a trace per dimension"
    );
    // Diagnostics of the draws after the burn-in, said so, and the API's warnings, no others.
    assert_eq!(after["mcmc"]["burn_in"], 100);
    assert_eq!(after["mcmc"]["convergence"]["from_step"], 101);
    let label = text_of(&dom, "rhat-label");
    assert!(
        label.starts_with("max R-hat (cold chains, steps 101–"),
        "{label}"
    );
    assert!(after["mcmc"]["ladder"]["barrier_from_swaps"].is_number());
    assert_ne!(text_of(&dom, "barrier"), "–");
    let warnings = before["mcmc"]["warnings"].as_array().unwrap();
    let shown_warnings = dom.matches("<p>⚠ ").count();
    assert!(
        shown_warnings == warnings.len()
            || shown_warnings == after["mcmc"]["warnings"].as_array().unwrap().len(),
        "{shown_warnings} warnings shown, the API had {warnings:?}"
    );

    // On a phone and on a wide screen: one column or several, never a sideways scroll, and the
    // same numbers as the API. A headless window is at least 500 px wide, so the page is framed
    // at the width to test, and tells its frame what it shows.
    for width in [400, 1400] {
        let frame = serve_page(format!(
            r#"<!doctype html><html><body style="margin:0">
<pre id="report"></pre>
<iframe src="http://{address}/?report-to-frame" style="width:{width}px;height:1600px;border:0"></iframe>
<script>
addEventListener("message", (e) => {{ document.getElementById("report").textContent = JSON.stringify(e.data); }});
</script></body></html>"#
        ));
        let before = status(address);
        let dom = browse_url(&browser, &format!("http://{frame}/"), 1600, &["--dump-dom"]);
        let after = status(address);
        let report: Value = serde_json::from_str(&common::unescape(&text_of(&dom, "report")))
            .unwrap_or_else(|e| {
                panic!("{width} px: the framed page reported nothing ({e}): {dom}")
            });
        let (scroll, viewport) = (
            report["scrollWidth"].as_u64().unwrap(),
            report["viewportWidth"].as_u64().unwrap(),
        );
        assert!(
            viewport == width as u64 && scroll <= viewport,
            "at {width} px the page is {scroll} px wide in a {viewport} px viewport"
        );
        let shown = number(report["step"].as_str().unwrap());
        let (first, last) = (
            before["mcmc"]["step"].as_u64().unwrap(),
            after["mcmc"]["step"].as_u64().unwrap(),
        );
        assert!(
            first <= shown && shown <= last,
            "{width} px: {first} <= {shown} <= {last}"
        );
        assert_eq!(report["chainRows"], 6, "{width} px");
        let workers = after["workers"].as_array().unwrap().len();
        assert_eq!(
            report["workerRows"].as_u64(),
            Some(workers as u64),
            "{width} px"
        );
        assert_eq!(
            number(report["workersCount"].as_str().unwrap()),
            workers as u64
        );
    }
    // The job types summarised in one cell, the unit counters beside, as the API counts them.
    assert!(dom.contains("class=\"types\""));
    let counters = text_of(&dom, "unit-counters");
    let submitted = counters
        .strip_prefix("submitted ")
        .and_then(|rest| rest.split(" · ").next())
        .map(number)
        .unwrap_or_else(|| panic!("{counters}"));
    let (first, last) = (
        before["counters"]["submitted"].as_u64().unwrap(),
        after["counters"]["submitted"].as_u64().unwrap(),
    );
    assert!(
        first <= submitted && submitted <= last && last > 0,
        "{first} <= {submitted} <= {last}"
    );
    assert!(counters.contains(" · requeued ") && counters.contains(" · worker timeouts "));

    // Later, the page shows a later step.
    std::thread::sleep(Duration::from_millis(1500));
    let later = browse(&browser, address, &["--dump-dom"]);
    let shown_later = number(&text_of(&later, "mcmc-step"));
    assert!(
        shown_later > shown,
        "the page did not advance: {shown} then {shown_later}"
    );

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    browse(
        &browser,
        address,
        &[&format!("--screenshot={}", screenshot.display())],
    );
    let png = std::fs::read(&screenshot).expect("chromium saved the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("dashboard screenshot: {}", screenshot.display());
}

fn a_finished_run_kept_serving_is_healthy_says_how_long_it_took_and_has_no_workers() {
    let run = launch("finished", 6000, &["--keep-serving"]);
    let address = run.address.as_str();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Done, and the engine's end noticed (the poller asks twice a second).
    let s = loop {
        let s = status(address);
        if s["state"] == "done" && s["engine_stopped"] == true {
            break s;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(get(address, "/healthz"), (200, "ok: done\n".to_owned()));
    let probe = delegator_command()
        .args(["probe", "--url", &format!("http://{address}/healthz")])
        .output()
        .unwrap();
    assert!(probe.status.success(), "{probe:?}");
    assert_eq!(s["engine_alive"], true, "{s}");
    assert_eq!(s["workers"].as_array().unwrap().len(), 0, "{s}");
    let (_, metrics) = get(address, "/metrics");
    assert!(
        metrics.contains("ganger_workers_connected 0"),
        "departed workers still counted:\n{metrics}"
    );
    // The clock and the series stop with the run; the rate is its mean.
    let run_secs = s["run_secs"]
        .as_f64()
        .expect("a finished run says how long it took");
    assert!(run_secs > 0.0 && run_secs <= s["elapsed_secs"].as_f64().unwrap());
    let progress = &s["progress"];
    let mean = progress["mean_rate"].as_f64().unwrap();
    assert_eq!(progress["rate"].as_f64(), Some(mean));
    // 3000 steps of 6 chains, counted from the run's start.
    let expected = 3000.0 * 6.0 / run_secs;
    assert!(
        (mean - expected).abs() <= 1e-6 * expected,
        "{mean} against {expected}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let later = status(address);
    assert_eq!(later["elapsed_secs"], s["elapsed_secs"]);
    assert_eq!(later["throughput"], s["throughput"]);
    if let Some(last) = s["throughput"].as_array().unwrap().last() {
        assert!(
            last[1].as_f64().unwrap() > 0.0,
            "the series fell to zero: {last}"
        );
    }

    let Some(browser) = browser() else {
        return;
    };
    let dom = browse(&browser, address, &["--dump-dom"]);
    assert_eq!(text_of(&dom, "state"), "done");
    assert_eq!(text_of(&dom, "engine"), "stopped");
    assert_eq!(text_of(&dom, "elapsed-label"), "took");
    assert_eq!(text_of(&dom, "progress-rate-unit"), "samples/s (mean)");
}

/// `ganger-delegator run ARGS` with one local worker process and the dashboard on a free
/// port, in a fresh folder named after `name`; `files` writes what the run reads there and
/// returns the arguments naming it.
fn launch_job(
    name: &str,
    args: &[&str],
    files: impl FnOnce(&Path) -> Vec<std::ffi::OsString>,
) -> Run {
    let dir = std::env::temp_dir().join(format!("ganger-dashboard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let address_file = dir.join("http-address");
    let child = delegator_command()
        .args(["run", "--local-workers", "1"])
        .args(args)
        .args(files(&dir))
        .args(["--http", "127.0.0.1:0", "--http-address-file"])
        .arg(&address_file)
        .arg("--worker-bin")
        .arg(worker_bin())
        .env("GANGER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the delegator starts");
    Run {
        child,
        address: http_address(&address_file),
        dir,
    }
}

fn a_task_no_connected_worker_serves_is_named_on_the_dashboard() {
    // An explicit bind and no timeout: the run waits for a worker that serves the task.
    let run = launch_job(
        "unserved",
        &[
            "--task",
            "sqaure",
            "--range",
            "10",
            "--bind",
            "tcp://127.0.0.1:0",
            "--unserved-timeout-secs",
            "0",
        ],
        |_| Vec::new(),
    );
    let address = run.address.as_str();
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = status(address);
        let waiting = s["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["job_type"] == "sqaure" && q["served"] == false);
        if waiting && !s["workers"].as_array().unwrap().is_empty() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the unserved task never showed: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(s["state"], "running");

    let Some(browser) = browser() else {
        return;
    };
    let dom = browse(&browser, address, &["--dump-dom"]);
    let warning = text_of(&dom, "unserved");
    assert!(
        warning.contains("No connected worker serves sqaure") && warning.contains("square"),
        "{warning}"
    );
}

fn a_finished_run_still_shows_why_its_units_failed() {
    let run = launch_job("errors", &["--task", "square", "--keep-serving"], |dir| {
        let inputs = dir.join("inputs.jsonl");
        std::fs::write(&inputs, "1\n\"seven\"\n3\n").unwrap();
        vec![
            "--input".into(),
            inputs.into(),
            "--output".into(),
            dir.join("results.jsonl").into(),
        ]
    });
    let address = run.address.as_str();
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = status(address);
        if s["state"] != "running" {
            break s;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The run ended before the board's first poll: its end still shows the engine's counters
    // and the worker's errors.
    assert_eq!(s["progress"]["failed"], 1, "{s}");
    assert_eq!(s["counters"]["failed"], 1, "{s}");
    assert_eq!(s["workers"][0]["errors"], 3, "{s}");
    let errors = s["unit_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{s}");
    // Tried three times (the default attempts), each time on the one worker.
    assert_eq!(errors[0]["errors"], 3, "{s}");
    let last = errors[0]["last"][2].as_str().unwrap();
    assert!(
        last.contains("square expects a number") && last.contains("seven"),
        "{last}"
    );

    let Some(browser) = browser() else {
        return;
    };
    let dom = browse(&browser, address, &["--dump-dom"]);
    let shown = common::unescape(&div_text_of(&dom, "worker-errors"));
    assert!(
        shown.contains("3 unit error(s)") && shown.contains(last),
        "{shown}"
    );
}

fn an_embedded_run_says_its_threads_evaluate_rather_than_no_workers() {
    let run = launch(
        "embedded",
        4000,
        &["--local-workers", "2", "--keep-serving"],
    );
    let address = run.address.as_str();
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = status(address);
        if s["state"] == "done" {
            break s;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(s["in_process_threads"], 2, "{s}");
    assert_eq!(s["workers"].as_array().unwrap().len(), 0);

    let Some(browser) = browser() else {
        return;
    };
    let dom = browse(&browser, address, &["--dump-dom"]);
    let empty = text_of(&dom, "workers-empty");
    assert!(
        empty.starts_with("Evaluated in this process by 2 thread(s)"),
        "{empty}"
    );
}
