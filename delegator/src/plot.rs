//! `ganger-delegator plot`: an MCMC run's cold chains drawn as a statistician checks them, each
//! figure as PNG and SVG, without Python: traces with each chain's density, rank plots,
//! autocorrelation, the posterior with its mean and 94 % HDI, and a pair (corner) plot with
//! density contours.

mod chains;
mod contour;
mod data;
mod figure;
mod histograms;
mod reduce;
mod trace;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;

use chains::ChainLines;
use data::ColdChains;
use figure::write_figure;
use histograms::{Corner, Posterior};
use trace::Traces;

/// Arguments of `plot`.
#[derive(Debug, Args)]
pub(crate) struct PlotArgs {
    /// The run's output folder (the config's outputPath), holding the chain files 0.csv, 1.csv, …
    /// The cold chains are those whose first row has beta = 1; a cut-off last line is ignored.
    #[arg(env = "GANGER_PLOT_DIR")]
    output_dir: PathBuf,
    /// Folder for the plots, created if missing [default: OUTPUT_DIR/plots].
    #[arg(long, env = "GANGER_PLOT_OUT")]
    out: Option<PathBuf>,
    /// Steps dropped from the start of every cold chain from every figure but the traces
    /// (which shade them) [default: the run's burnIn, recorded in
    /// OUTPUT_DIR/ganger-run.json; without that file, the first 10 % of the steps].
    #[arg(long, env = "GANGER_BURN_IN")]
    burn_in: Option<usize>,
    /// The dimensions to draw, in this order: names from the chain files' header (the config's
    /// `names`) or indices from 0 [default: all of them].
    #[arg(
        long,
        env = "GANGER_PLOT_DIMS",
        value_delimiter = ',',
        value_name = "NAME,…"
    )]
    dims: Vec<String>,
}

/// Writes the trace, rank, autocorrelation, posterior and corner plots (PNG and SVG) and prints
/// their paths.
pub(crate) fn run(args: &PlotArgs) -> anyhow::Result<()> {
    figure::register_font()?;
    let mut chains = ColdChains::read(&args.output_dir)?;
    if !args.dims.is_empty() {
        chains.select(&args.dims)?;
    }
    let shortest = chains.min_steps();
    if shortest == 0 {
        bail!(
            "{}: the cold chains have no complete row yet",
            args.output_dir.display()
        );
    }
    let recorded = ganger_mcmc::run::read_run_config(&args.output_dir);
    let burn_in = match (args.burn_in, &recorded) {
        (Some(burn_in), _) => burn_in,
        (None, Some(config)) => {
            let burn_in = config.burn_in as usize;
            if burn_in >= shortest {
                bail!(
                    "the run is still in its burn-in ({shortest} of {burn_in} steps, from \
                     {}): pass --burn-in to plot its draws so far",
                    ganger_mcmc::run::run_config_path(&args.output_dir).display()
                );
            }
            burn_in
        }
        (None, None) => shortest / 10,
    };
    if burn_in >= shortest {
        bail!(
            "--burn-in {burn_in} leaves no samples: the shortest cold chain has {shortest} steps"
        );
    }
    let out = match &args.out {
        Some(out) => out.clone(),
        None => args.output_dir.join("plots"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let run = describe(&args.output_dir, &chains);
    let n_steps = chains.max_steps();
    let (steps, burn) = (
        figure::step_label(&(n_steps as f64)),
        figure::step_label(&(burn_in as f64)),
    );
    let traces = Traces::new(
        &chains,
        burn_in,
        format!("{run}, {steps} steps, burn-in {burn}"),
    );
    let after_burn_in = format!("{run}, steps {burn} to {steps}");
    let posterior = Posterior::new(&chains, burn_in, after_burn_in.clone());
    let corner = Corner::new(&chains, burn_in, &posterior, after_burn_in.clone());
    let ranks = ChainLines::ranks(&chains, burn_in, format!("ranks: {after_burn_in}"));
    let autocorrelation = ChainLines::autocorrelation(
        &chains,
        burn_in,
        format!("autocorrelation: {after_burn_in}"),
    );
    // The figures are independent: drawn side by side, they take the longest one's time.
    let written = std::thread::scope(|scope| {
        let drawn = [
            scope.spawn(|| write_figure(&traces, &out)),
            scope.spawn(|| write_figure(&ranks, &out)),
            scope.spawn(|| write_figure(&autocorrelation, &out)),
            scope.spawn(|| write_figure(&posterior, &out)),
            scope.spawn(|| write_figure(&corner, &out)),
        ];
        drawn
            .into_iter()
            .map(|figure| figure.join().expect("drawing a figure panicked"))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    for path in written.iter().flatten() {
        println!("{}", path.display());
    }
    Ok(())
}

/// What every figure's title starts with: the run's folder and its cold chains.
fn describe(dir: &Path, chains: &ColdChains) -> String {
    let indices: Vec<String> = chains.chains.iter().map(|c| c.index.to_string()).collect();
    let name = dir.file_name().unwrap_or(dir.as_os_str());
    format!(
        "{}: cold chain{} {}",
        name.to_string_lossy(),
        if indices.len() == 1 { "" } else { "s" },
        indices.join(", "),
    )
}
