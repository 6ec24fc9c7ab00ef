//! `ganger-delegator plot` as a user runs it: on the output of a real MCMC run, on a run cut
//! off mid-line, and on folders that are not MCMC output.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use common::delegator_command;

/// Dimensions of the test run.
const N_DIMS: usize = 4;
/// Steps per chain of the test run.
const N_STEPS: usize = 2000;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ganger-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The output folder of one short real run (2 stacks × 3 temperatures, 4 dimensions), made
/// once for all the tests here.
fn run_output() -> &'static Path {
    static OUTPUT: OnceLock<PathBuf> = OnceLock::new();
    OUTPUT.get_or_init(|| {
        let dir = temp_dir("run");
        let output = dir.join("out");
        let config = dir.join("run.json");
        std::fs::write(
            &config,
            format!(
                r#"{{
  "nJobTypes": 2,
  "nStacks": 2,
  "nTemperatures": 3,
  "nSamplesTotal": {},
  "min": [-10, -10, -10, -10],
  "max": [10, 10, 10, 10],
  "swapInterval": 10,
  "optimalAcceptRate": 0.24,
  "optimalSwapRate": 0.24,
  "outputPath": "{}",
  "loggingRateSec": 5,
  "useInitial": false,
  "initial": [0, 0, 0, 0]
}}"#,
                2 * N_STEPS,
                output.display()
            ),
        )
        .unwrap();
        let result = delegator_command()
            .args(["mcmc", "--local-workers", "1", "--config"])
            .arg(&config)
            .env("GANGER_LOG", "warn")
            .output()
            .expect("delegator runs");
        assert_success(&result);
        output
    })
}

fn plot(args: &[&std::ffi::OsStr]) -> Output {
    delegator_command()
        .arg("plot")
        .args(args)
        .env("GANGER_LOG", "warn")
        .output()
        .expect("delegator runs")
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The one-line error a failed `plot` printed.
fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "plot succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

/// Width, height and number of distinct colours of a PNG file.
fn decode_png(path: &Path) -> (u32, u32, usize) {
    let bytes = std::fs::read(path).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let colours: HashSet<&[u8]> = pixels[..info.buffer_size()].chunks(channels).collect();
    (info.width, info.height, colours.len())
}

/// The text of every `<text>` element of an SVG, trimmed.
fn svg_texts(svg: &str) -> Vec<&str> {
    svg.split("<text")
        .skip(1)
        .filter_map(|element| {
            let (_, rest) = element.split_once('>')?;
            Some(rest.split_once("</text>")?.0.trim())
        })
        .collect()
}

/// Checks that `dir` holds the six figures, of the sizes a 4-dimensional run gets.
fn assert_figures(dir: &Path) {
    for (name, size) in [
        ("trace", (1200, 40 + 240 * N_DIMS as u32)),
        ("marginals", (2 * 400, 40 + 2 * 300)),
        ("corner", (N_DIMS as u32 * 250, 40 + N_DIMS as u32 * 250)),
    ] {
        let png = dir.join(format!("{name}.png"));
        let (width, height, colours) = decode_png(&png);
        assert_eq!((width, height), size, "{}", png.display());
        assert!(colours >= 8, "{}: {colours} colours", png.display());

        let svg_path = dir.join(format!("{name}.svg"));
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{}",
            svg_path.display()
        );
        assert!(
            svg.contains(&format!(r#"width="{}" height="{}""#, size.0, size.1)),
            "{}",
            svg_path.display()
        );
        let texts = svg_texts(&svg);
        for dim in 0..N_DIMS {
            assert!(
                texts.contains(&format!("x{dim}").as_str()),
                "{}: no label x{dim}",
                svg_path.display()
            );
        }
    }
}

#[test]
fn a_real_run_gets_trace_marginal_and_corner_plots_as_png_and_svg() {
    let output = run_output();
    let result = plot(&[output.as_os_str()]);
    assert_success(&result);
    let plots = output.join("plots");
    let printed: Vec<PathBuf> = String::from_utf8(result.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();
    let mut expected: Vec<PathBuf> = ["trace", "marginals", "corner"]
        .iter()
        .flat_map(|name| ["png", "svg"].map(|ext| plots.join(format!("{name}.{ext}"))))
        .collect();
    let mut sorted = printed.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    assert_figures(&plots);
    // Two cold chains (0 and 3 of 2 stacks × 3 temperatures), named in the legend.
    let trace = std::fs::read_to_string(plots.join("trace.svg")).unwrap();
    let legend = svg_texts(&trace);
    assert!(legend.contains(&"chain 0") && legend.contains(&"chain 3"));
    assert!(!legend.contains(&"chain 1"), "a hot chain was plotted");
}

#[test]
fn out_and_burn_in_are_honoured_and_a_burn_in_past_the_end_is_refused() {
    let output = run_output();
    let out = temp_dir("elsewhere").join("new/plots");
    let result = plot(&[
        output.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--burn-in".as_ref(),
        "1990".as_ref(),
    ]);
    assert_success(&result);
    assert_figures(&out);
    assert!(std::fs::read_to_string(out.join("trace.svg"))
        .unwrap()
        .contains("burn-in 1,990"));

    let too_long = N_STEPS.to_string();
    let result = plot(&[
        output.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--burn-in".as_ref(),
        too_long.as_ref(),
    ]);
    let message = error_line(&result);
    assert!(message.contains("leaves no samples"), "{message}");
}

#[test]
fn a_run_killed_mid_line_is_plotted_without_its_last_line() {
    let dir = temp_dir("killed");
    for chain in 0..6 {
        let text = std::fs::read_to_string(run_output().join(format!("{chain}.csv"))).unwrap();
        // Cut in the middle of row 1500's second number.
        let start: usize = text.lines().take(1501).map(|l| l.len() + 1).sum();
        let cut = start + text[start..].find(',').unwrap() + 3;
        std::fs::write(dir.join(format!("{chain}.csv")), &text[..cut]).unwrap();
    }
    let result = plot(&[dir.as_os_str()]);
    assert_success(&result);
    assert_figures(&dir.join("plots"));
    let trace = std::fs::read_to_string(dir.join("plots/trace.svg")).unwrap();
    assert!(trace.contains("1,500 steps, burn-in 150"), "wrong length");
}

#[test]
fn a_malformed_row_is_rejected_naming_its_file_and_line() {
    let dir = temp_dir("malformed");
    let header = "x0,x1,energy,sigma,beta,accepted,swap_type\n";
    std::fs::write(
        dir.join("0.csv"),
        format!("{header}0.5,1.5,2,1,1.0,1,0\n0.6,1.6,2,1,1.0,1,0\n0.7,1.7,2,1,1.0,1\n0.8,1.8,2,1,1.0,0,0\n"),
    )
    .unwrap();
    std::fs::write(dir.join("1.csv"), format!("{header}0.5,1.5,2,1,0.5,1,0\n")).unwrap();
    let message = error_line(&plot(&[dir.as_os_str()]));
    let file = dir.join("0.csv");
    assert!(
        message.contains(&format!(
            "{}: line 4: expected 7 fields, found 6",
            file.display()
        )),
        "{message}"
    );
    assert_eq!(message.matches("expected 7 fields").count(), 1, "{message}");
}

#[test]
fn folders_that_are_not_mcmc_output_get_one_clear_line() {
    let missing = temp_dir("missing").join("nothing-here");
    let message = error_line(&plot(&[missing.as_os_str()]));
    assert!(
        message.contains(&missing.display().to_string()) && message.contains("No such file"),
        "{message}"
    );

    let empty = temp_dir("no-csv");
    std::fs::write(empty.join("notes.txt"), "not a chain\n").unwrap();
    let message = error_line(&plot(&[empty.as_os_str()]));
    assert!(
        message.contains(&empty.display().to_string()) && message.contains("no chain files"),
        "{message}"
    );

    let hot = temp_dir("all-hot");
    std::fs::write(
        hot.join("0.csv"),
        "x0,energy,sigma,beta,accepted,swap_type\n0.5,2,1,0.25,1,0\n",
    )
    .unwrap();
    let message = error_line(&plot(&[hot.as_os_str()]));
    assert!(
        message.contains(&hot.display().to_string()) && message.contains("no cold chain"),
        "{message}"
    );
}

#[test]
fn the_default_burn_in_is_the_runs_own_and_a_run_still_in_it_is_told_so() {
    let output = run_output();
    let out = temp_dir("default-burn-in");
    assert_success(&plot(&[
        output.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]));
    let trace = std::fs::read_to_string(out.join("trace.svg")).unwrap();
    // The run adapted for half its 2000 steps, and its burn-in defaults to that.
    assert!(
        trace.contains("2,000 steps, burn-in 1,000"),
        "wrong burn-in"
    );

    let dir = temp_dir("in-burn-in");
    for chain in 0..6 {
        let text = std::fs::read_to_string(output.join(format!("{chain}.csv"))).unwrap();
        let head: String = text.lines().take(601).map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join(format!("{chain}.csv")), head).unwrap();
    }
    std::fs::copy(output.join("ganger-run.json"), dir.join("ganger-run.json")).unwrap();
    let message = error_line(&plot(&[dir.as_os_str()]));
    assert!(
        message.contains("still in its burn-in (600 of 1000 steps")
            && message.contains("--burn-in"),
        "{message}"
    );
}
