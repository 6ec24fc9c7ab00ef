//! `ganger-delegator plot` as a user runs it: on the output of a real MCMC run, on a run cut
//! off mid-line, and on folders that are not MCMC output.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use common::delegator_command;

/// Dimensions of the test run, and their names (the config's `names`).
const N_DIMS: usize = 4;
const NAMES: [&str; N_DIMS] = ["lat", "lon", "angle (deg)", "depth"];
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
  "initial": [0, 0, 0, 0],
  "names": {}
}}"#,
                2 * N_STEPS,
                output.display(),
                serde_json::to_string(&NAMES).unwrap()
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

/// The figures `plot` draws, with their sizes for `n_dims` dimensions.
fn figures(n_dims: u32) -> [(&'static str, (u32, u32)); 5] {
    let columns = (n_dims as f64).sqrt().ceil() as u32;
    let rows = n_dims.div_ceil(columns);
    [
        ("trace", (1300, 40 + 220 * n_dims)),
        ("rank", (columns * 440, 40 + rows * 280)),
        ("autocorrelation", (columns * 440, 40 + rows * 280)),
        ("posterior", (columns * 400, 40 + rows * 300)),
        ("corner", (n_dims * 250, 40 + n_dims * 250)),
    ]
}

/// Checks that `dir` holds every figure as PNG and SVG, of the sizes `names.len()` dimensions
/// get, each naming every one of `names`; returns each SVG's texts.
fn assert_figures(dir: &Path, names: &[&str]) -> Vec<Vec<String>> {
    let mut texts = Vec::new();
    for (name, size) in figures(names.len() as u32) {
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
        let figure_texts: Vec<String> = svg_texts(&svg).into_iter().map(common::unescape).collect();
        for dim in names {
            assert!(
                figure_texts
                    .iter()
                    .any(|t| t == dim || t.starts_with(&format!("{dim}: "))),
                "{}: no label {dim} in {figure_texts:?}",
                svg_path.display()
            );
        }
        texts.push(figure_texts);
    }
    texts
}

#[test]
fn a_real_run_gets_every_figure_as_png_and_svg_labelled_with_the_names() {
    let output = run_output();
    let result = plot(&[output.as_os_str()]);
    assert_success(&result);
    let plots = output.join("plots");
    let printed: Vec<PathBuf> = String::from_utf8(result.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();
    let mut expected: Vec<PathBuf> = figures(N_DIMS as u32)
        .iter()
        .flat_map(|(name, _)| ["png", "svg"].map(|ext| plots.join(format!("{name}.{ext}"))))
        .collect();
    let mut sorted = printed.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    let texts = assert_figures(&plots, &NAMES);
    // Two cold chains (0 and 3 of 2 stacks × 3 temperatures), named in the legends of the
    // figures that draw a line per chain.
    for (figure, legend) in ["trace", "rank", "autocorrelation"].iter().zip(&texts) {
        let has = |label: &str| legend.iter().any(|t| t == label);
        assert!(has("chain 0") && has("chain 3"), "{figure}: {legend:?}");
        assert!(!has("chain 1"), "{figure}: a hot chain was plotted");
    }
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
    assert_figures(&out, &NAMES);
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
    assert_figures(&dir.join("plots"), &NAMES);
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

#[test]
fn dims_picks_and_orders_dimensions_by_name_or_index_and_refuses_unknown_ones() {
    let output = run_output();
    let out = temp_dir("dims");
    assert_success(&plot(&[
        output.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--dims".as_ref(),
        "depth,1".as_ref(),
    ]));
    let texts = assert_figures(&out, &["depth", "lon"]);
    let corner = &texts[4];
    assert!(
        !corner.iter().any(|t| t == "lat" || t == "angle (deg)"),
        "{corner:?}"
    );
    let message = error_line(&plot(&[
        output.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--dims".as_ref(),
        "lat,height".as_ref(),
    ]));
    assert!(
        message.contains("no dimension height") && message.contains("lat, lon, angle (deg), depth"),
        "{message}"
    );
}

/// Writes a cold chain file (beta 1) whose one dimension `x` takes `values`.
fn write_cold_chain(dir: &Path, index: usize, values: impl Iterator<Item = f64>) {
    let mut text = String::from("x,energy,sigma,beta,accepted,swap_type\n");
    for x in values {
        text.push_str(&format!("{x},0.5,1,1.0,1,0\n"));
    }
    std::fs::write(dir.join(format!("{index}.csv")), text).unwrap();
}

/// The numbers among an SVG's texts.
fn numbers(texts: &[String]) -> Vec<f64> {
    texts
        .iter()
        .filter_map(|t| t.replace(',', "").parse().ok())
        .collect()
}

#[test]
fn a_far_start_neither_stretches_the_trace_axis_nor_leaves_the_frame() {
    // A chain that starts at 5,000 and falls into [−1, 1] within its 100-step burn-in.
    let dir = temp_dir("far-start");
    let draws = |phase: f64| {
        (0..1000).map(move |t| {
            let settled = (t as f64 * 0.7 + phase).sin();
            if t < 100 {
                5000.0 * (1.0 - t as f64 / 100.0) + settled
            } else {
                settled
            }
        })
    };
    write_cold_chain(&dir, 0, draws(0.0));
    write_cold_chain(&dir, 1, draws(1.0));
    let out = dir.join("plots");
    assert_success(&plot(&[
        dir.as_os_str(),
        "--burn-in".as_ref(),
        "100".as_ref(),
    ]));
    let texts = assert_figures(&out, &["x"]);
    let trace = &texts[0];
    // The value axis spans the draws after the burn-in, about [−1, 1]: stretched to the start
    // it would tick at thousands, beyond the step axis's last label (900).
    let ticks = numbers(trace);
    assert!(ticks.iter().any(|x| x.fract() != 0.0), "{trace:?}");
    assert!(ticks.iter().all(|x| x.abs() < 1000.0), "{trace:?}");
    assert!(
        trace
            .iter()
            .any(|t| t.starts_with("burn-in off scale: it spans") && t.contains("5000")),
        "{trace:?}"
    );
    // Every point of every line lies inside the figure's panel: clipped, not drawn across the
    // title strip.
    let svg = std::fs::read_to_string(out.join("trace.svg")).unwrap();
    for points in svg
        .split("<polyline")
        .skip(1)
        .filter_map(|p| p.split("points=\"").nth(1))
    {
        for point in points.split('"').next().unwrap().split_whitespace() {
            let y: f64 = point.split(',').nth(1).unwrap().parse().unwrap();
            assert!((40.0..=260.0).contains(&y), "a line reaches y = {y}");
        }
    }
}

#[test]
fn the_posterior_panel_marks_the_mean_and_the_94_percent_hdi() {
    // Draws at 0, 0.001, …, 1 (and their copy in a second chain): mean 0.5, and the shortest
    // interval holding 94 % of them is [0, 0.94], the first of the equally short ones.
    let dir = temp_dir("hdi");
    let grid = || (0..=1000).map(|i| i as f64 / 1000.0);
    write_cold_chain(&dir, 0, grid());
    write_cold_chain(&dir, 1, grid());
    assert_success(&plot(&[
        dir.as_os_str(),
        "--burn-in".as_ref(),
        "0".as_ref(),
    ]));
    let texts = assert_figures(&dir.join("plots"), &["x"]);
    let posterior = &texts[3];
    let has = |label: &str| posterior.iter().any(|t| t == label);
    assert!(has("x: mean 0.5000"), "{posterior:?}");
    assert!(has("0") && has("0.9400"), "{posterior:?}");
    assert!(has("mean") && has("94 % HDI"), "{posterior:?}");
}
