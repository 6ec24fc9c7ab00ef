//! A finished run's summary, read back from its chain files: the posterior of the cold chains
//! after the burn-in with its convergence diagnostics and warnings, the ladder's diagnosis and
//! the evidence. Written to `summary.json` and printed at the end of the run.

use std::fmt::Write as _;
use std::path::Path;

use ganger_core::mcmc::config::McmcConfig;
use ganger_core::mcmc::convergence::{self, Diagnosed};
use ganger_core::mcmc::diagnostics;
use ganger_core::mcmc::evidence::{self, Evidence};
use ganger_core::mcmc::sampler::Sampler;
use ganger_core::mcmc::tempering::{self, LadderReport};
use rayon::prelude::*;
use serde::Serialize;

use super::digest::{digest, ChainDigest, LiveDigests, Running};
use super::output::{write_atomically, ChainFiles};
use super::run::McmcError;

/// Energies per temperature the barrier's estimate uses, at most.
const BARRIER_DRAWS: usize = 8192;

/// What `summary.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Steps each chain took.
    pub steps_per_chain: u64,
    /// The run's seed.
    pub seed: u64,
    /// Which draws the posterior summary covers.
    pub draws: Draws,
    /// Per chain rates.
    pub chains: Vec<ChainSummary>,
    /// Round trips (cold → hot → cold) per stack over the whole run.
    pub round_trips_per_stack: Vec<u64>,
    /// Round trips per 1000 steps, per stack: how fast states travel up and down the ladder.
    pub round_trip_rate_per_1000_steps: Vec<f64>,
    /// The ladder's diagnosis after adaptation (none with a single temperature).
    pub ladder: Option<LadderReport>,
    /// `log Z` with the box as a uniform prior (none with a single temperature).
    pub evidence: Option<EvidenceSummary>,
    /// Per dimension, over the cold chains' draws after the burn-in.
    pub dimensions: Vec<DimensionSummary>,
    /// What in this summary should not be trusted yet, one sentence each.
    pub warnings: Vec<String>,
}

/// The draws a summary covers.
#[derive(Debug, Clone, Serialize)]
pub struct Draws {
    /// Steps of each chain left out (`burnIn`).
    pub burn_in: u64,
    /// The first step summarised (1-based, as the chain files' rows after the header).
    pub first_step: u64,
    /// The last step summarised.
    pub last_step: u64,
    /// Draws per cold chain.
    pub per_chain: u64,
    /// Cold chains (one per stack).
    pub chains: usize,
    /// Steps of adaptation (`adaptationSteps`): draws before it come from a changing kernel.
    pub adaptation_steps: u64,
    /// Draws per chain the quantiles, R-hat, ESS and MCSE come from: every `stride`-th, so
    /// that a run of any length is summarised in bounded memory (the mean and sd always come
    /// from every draw). With a stride above 1, ESS is at most the draws kept, so MCSE errs
    /// large, never small.
    pub kept_per_chain: u64,
    /// Every how many draws one was kept (1: all of them).
    pub stride: u64,
}

/// One chain's rates over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ChainSummary {
    /// Chain index.
    pub chain: usize,
    /// Its stack.
    pub stack: usize,
    /// Its temperature index (0: cold).
    pub temperature_index: usize,
    /// Its final inverse temperature.
    pub beta: f64,
    /// Proposals accepted.
    pub accept_rate: f64,
    /// Swaps with the next hotter chain accepted (none attempted: null).
    pub swap_rate: Option<f64>,
    /// Proposals whose energy was NaN or infinite.
    pub invalid_energies: u64,
    /// Proposals outside the bounds (rejected without evaluation).
    pub out_of_bounds: u64,
}

/// One dimension's posterior summary.
#[derive(Debug, Clone, Serialize)]
pub struct DimensionSummary {
    /// The config's `names` entry, else `x0`, `x1`, …
    pub name: String,
    /// The statistics.
    #[serde(flatten)]
    pub summary: diagnostics::Summary,
}

/// The evidence and what it means.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceSummary {
    /// The estimate.
    #[serde(flatten)]
    pub evidence: Evidence,
    /// How it is defined.
    pub prior: String,
    /// The first step whose energies it uses (after adaptation, with the ladder fixed).
    pub from_step: u64,
}

/// The steps a summary of chains `steps` long leaves out: the burn-in for the draws, and the
/// steps before `fixed_from` for the energies (the evidence and the energy spread need the
/// ladder fixed: draws after adaptation).
pub fn windows(config: &McmcConfig, steps: u64) -> (u64, u64) {
    let burn_in = config.burn_in.min(steps.saturating_sub(1));
    let fixed_from = burn_in
        .max(config.adaptation_steps)
        .min(steps.saturating_sub(1));
    (burn_in, fixed_from)
}

/// Summarises the run `sampler` finished, from `live` if it holds digests of the whole run
/// (see [`LiveDigests::finish`]), or else from the chain files in `dir`.
/// `prior` holds the energies of the evidence's independent prior draws
/// ([`prior_points`](ganger_core::mcmc::evidence::prior_points)); with none, there is no evidence.
pub fn summarize(
    dir: &Path,
    config: &McmcConfig,
    sampler: &Sampler,
    prior: &[f64],
    live: Option<LiveDigests>,
) -> Result<RunSummary, McmcError> {
    let n_temps = config.n_temperatures;
    let n_dims = config.n_dims();
    let steps = sampler.step();
    let (burn_in, fixed_from) = windows(config, steps);
    let digests: Vec<ChainDigest> = match live.and_then(|l| l.finish(burn_in, fixed_from, steps)) {
        Some(digests) => digests,
        // The files are independent: read them side by side, each in bounded memory.
        None => (0..sampler.n_chains())
            .into_par_iter()
            .map(|chain| {
                let path = ChainFiles::path(dir, chain);
                digest(&path, n_dims, burn_in, fixed_from, chain % n_temps == 0)
            })
            .collect::<Result<_, _>>()?,
    };
    let cold: Vec<&ChainDigest> = digests.iter().step_by(n_temps).collect();
    // Per temperature, each stack's energies.
    let energies: Vec<Vec<&[f64]>> = (0..n_temps)
        .map(|t| {
            digests[t..]
                .iter()
                .step_by(n_temps)
                .map(|d| d.energies.columns[0].as_slice())
                .collect()
        })
        .collect();
    let stride = cold.first().map_or(1, |c| c.states.stride);
    let names = config.dim_names();
    // One dimension at a time: their diagnostics' buffers are the summary's largest.
    let dimensions: Vec<DimensionSummary> = (0..n_dims)
        .map(|d| {
            let columns: Vec<&[f64]> = cold
                .iter()
                .map(|c| c.states.columns[d].as_slice())
                .collect();
            let mut summary = diagnostics::summarize(&columns);
            if stride > 1 {
                // Thinned draws: the mean and sd of every draw are known exactly.
                let mut all = Running::default();
                cold.iter().for_each(|c| all.merge(&c.moments[d]));
                (summary.mean, summary.sd) = (all.mean, all.sd());
            }
            DimensionSummary {
                name: names[d].clone(),
                summary,
            }
        })
        .collect();
    let mut warnings = convergence::warnings(
        &dimensions
            .iter()
            .map(|d| Diagnosed {
                name: &d.name,
                rhat: d.summary.rhat,
                ess_bulk: d.summary.ess_bulk,
            })
            .collect::<Vec<_>>(),
    );
    let (ladder, evidence) = if n_temps > 1 {
        let energy_views = &energies;
        // A few thousand draws per temperature, evenly spaced, are plenty for the barrier.
        let thinned: Vec<Vec<f64>> = energies
            .iter()
            .map(|stacks| {
                let n: usize = stacks.iter().map(|s| s.len()).sum();
                let stride = n.div_ceil(BARRIER_DRAWS).max(1);
                stacks
                    .iter()
                    .flat_map(|s| s.iter())
                    .step_by(stride)
                    .copied()
                    .collect()
            })
            .collect();
        let thinned: Vec<&[f64]> = thinned.iter().map(Vec::as_slice).collect();
        let rates = sampler.fixed_ladder_swaps().rates();
        let ladder = tempering::diagnose(sampler.betas(), &rates, Some(&thinned));
        warnings.extend(ladder.warning.clone());
        let evidence = if prior.is_empty() {
            None
        } else {
            let evidence = evidence::stepping_stone(sampler.betas(), energy_views, prior);
            match &evidence {
                Some(evidence) => warnings.extend(evidence_warning(evidence)),
                None => warnings.push(format!(
                    "no evidence: too few draws after adaptation (steps {}-{steps}) or no \
                     possible prior draw; run longer than adaptationSteps",
                    fixed_from + 1
                )),
            }
            evidence
        };
        let evidence = evidence.map(|evidence| EvidenceSummary {
            evidence,
            prior: "uniform on the box [min, max]; Z = ∫ exp(-energy) dx / volume(box)".into(),
            from_step: fixed_from + 1,
        });
        (Some(ladder), evidence)
    } else {
        (None, None)
    };
    let n_cold = cold
        .first()
        .and_then(|c| c.moments.first())
        .map_or(0, |m| m.n);
    let kept = cold
        .first()
        .and_then(|c| c.states.columns.first())
        .map_or(0, Vec::len) as u64;
    Ok(RunSummary {
        steps_per_chain: steps,
        seed: config.seed,
        draws: Draws {
            burn_in,
            first_step: burn_in + 1,
            last_step: steps,
            per_chain: n_cold,
            chains: cold.len(),
            adaptation_steps: config.adaptation_steps,
            kept_per_chain: kept,
            stride,
        },
        chains: chain_summaries(sampler, n_temps),
        round_trips_per_stack: sampler.round_trips(),
        round_trip_rate_per_1000_steps: sampler
            .round_trips()
            .iter()
            .map(|&n| 1000.0 * n as f64 / steps.max(1) as f64)
            .collect(),
        ladder,
        evidence,
        dimensions,
        warnings,
    })
}

/// A warning when some step of the evidence rests on a few draws.
fn evidence_warning(evidence: &Evidence) -> Option<String> {
    let worst = evidence
        .segments
        .iter()
        .min_by(|a, b| a.weight_efficiency.total_cmp(&b.weight_efficiency))?;
    (worst.weight_efficiency < 0.01).then(|| {
        let advice = if worst.beta_from == 0.0 {
            "raise maxTemperature so that the hottest chain is closer to the prior, or draw more \
             from the prior (evidenceDraws)"
        } else {
            "use more temperatures (nTemperatures)"
        };
        format!(
            "log Z rests on few draws between β = {:.3e} and {:.3e} (weight efficiency {:.4}): \
             its standard error is not to be trusted; {advice}",
            worst.beta_from, worst.beta_to, worst.weight_efficiency
        )
    })
}

fn chain_summaries(sampler: &Sampler, n_temps: usize) -> Vec<ChainSummary> {
    let ratio = |k: u64, n: u64| (n > 0).then(|| k as f64 / n as f64);
    (0..sampler.n_chains())
        .map(|i| {
            let stats = sampler.chain_stats(i);
            ChainSummary {
                chain: i,
                stack: i / n_temps,
                temperature_index: i % n_temps,
                beta: sampler.betas()[i % n_temps],
                accept_rate: ratio(stats.accepted, stats.proposals).unwrap_or(0.0),
                swap_rate: ratio(stats.swaps_accepted, stats.swaps_attempted),
                invalid_energies: stats.invalid,
                out_of_bounds: stats.out_of_bounds,
            }
        })
        .collect()
}

/// Writes `summary.json` through a synced temporary file: a crash leaves no half summary
/// beside finished chains.
pub fn write(dir: &Path, summary: &RunSummary) -> Result<(), McmcError> {
    let path = dir.join("summary.json");
    let mut text = serde_json::to_string_pretty(summary).map_err(|e| McmcError::Checkpoint {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    text.push('\n');
    write_atomically(&path, text.as_bytes())?;
    Ok(())
}

/// The summary as the console shows it at the end of a run.
pub fn render(summary: &RunSummary) -> String {
    let mut out = String::new();
    let draws = &summary.draws;
    let thinned = if draws.stride > 1 {
        format!(
            "; quantiles and diagnostics from every {}th, {} each",
            draws.stride, draws.kept_per_chain
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "posterior: {} cold chain(s), steps {}-{} ({} draws each; burn-in {}{thinned})",
        draws.chains, draws.first_step, draws.last_step, draws.per_chain, draws.burn_in
    );
    // Names left-aligned in a column as wide as the longest, as a data frame prints its index.
    let width = summary
        .dimensions
        .iter()
        .map(|d| d.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(2);
    let _ = writeln!(
        out,
        "{:<width$} {:>11} {:>10} {:>11} {:>11} {:>11} {:>7} {:>9} {:>9} {:>10}",
        "", "mean", "sd", "5%", "50%", "95%", "R-hat", "ESS bulk", "ESS tail", "MCSE"
    );
    for d in &summary.dimensions {
        let s = &d.summary;
        let _ = writeln!(
            out,
            "{:<width$} {:>11.4} {:>10.4} {:>11.4} {:>11.4} {:>11.4} {:>7.3} {:>9.0} {:>9.0} {:>10.2e}",
            d.name, s.mean, s.sd, s.q05, s.q50, s.q95, s.rhat, s.ess_bulk, s.ess_tail, s.mcse_mean
        );
    }
    if let Some(ladder) = &summary.ladder {
        let rates: Vec<String> = ladder
            .swap_rates
            .iter()
            .map(|r| r.map_or("-".into(), |r| format!("{r:.3}")))
            .collect();
        let _ = writeln!(
            out,
            "ladder: swap rates {} between neighbours; barrier Λ ≈ {:.2} from swaps, {} from \
             energies; round trips per 1000 steps {}",
            rates.join(" "),
            ladder.barrier_from_swaps,
            ladder
                .barrier_from_energies
                .map_or("-".into(), |b| format!("{b:.2}")),
            summary
                .round_trip_rate_per_1000_steps
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if let Some(evidence) = &summary.evidence {
        let _ = writeln!(
            out,
            "evidence: log Z = {:.4} ± {:.4} (stepping stones over the ladder; prior uniform on \
             the box)",
            evidence.evidence.log_z, evidence.evidence.standard_error
        );
    }
    for warning in &summary.warnings {
        let _ = writeln!(out, "WARNING: {warning}");
    }
    out
}
