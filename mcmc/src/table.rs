//! The console table printed every `loggingRateSec`, in Stateline's columns, and a convergence
//! line from the cold chains' draws after the burn-in; and the same, with thinned traces of the
//! cold chains, warnings and the ladder's diagnosis, as the [`McmcStatus`] the status board and
//! the dashboard show.

use std::fmt::Write as _;

use ganger_core::mcmc::convergence::{self, Diagnosed};
use ganger_core::mcmc::diagnostics;
use ganger_core::mcmc::sampler::{ChainStats, Row, Sampler};
use ganger_core::mcmc::tempering::{self, LadderReport};

use crate::observer::{
    ChainStatus, ConvergenceStatus, McmcStatus, PosteriorStatus, TierStatus, TraceStatus,
};

/// Cold-chain draws after the burn-in kept per chain for the convergence figures; the stride
/// between them doubles as the run grows, so they always span every draw since the burn-in.
const CONVERGENCE_DRAWS: usize = 4096;

/// Energies kept per chain for the ladder's barrier once the ladder is fixed.
const ENERGY_DRAWS: usize = 1024;

/// Points kept per cold-chain trace; the stride between them doubles as the run grows.
const TRACE_POINTS: usize = 400;

/// Who reads "recent" rates: each keeps its own mark of the counters it last saw.
#[derive(Debug, Clone, Copy)]
pub enum Reader {
    /// The console table.
    Console,
    /// The status board.
    Board,
}

/// Counters between two tables, and the history the convergence line needs.
#[derive(Debug)]
pub struct Table {
    n_temperatures: usize,
    /// Steps each chain's diagnostics leave out.
    burn_in: u64,
    /// Steps after which the ladder stays fixed.
    adaptation_steps: u64,
    min_energy: Vec<f64>,
    current_energy: Vec<f64>,
    /// Each reader's copy of the chains' counters when it last looked.
    marks: [Vec<ChainStats>; 2],
    /// Per stack: the cold chain's draws after the burn-in, thinned (steps count from it).
    cold: Vec<Trace>,
    /// Per stack: the cold chain's thinned trace.
    traces: Vec<Trace>,
    /// Per chain: its energies since the ladder was fixed, thinned.
    energies: Vec<Trace>,
    /// Steps each chain has taken, as rows arrived.
    lengths: Vec<u64>,
    /// The dimensions' names (the config's `names`, else `x0`, `x1`, …).
    names: Vec<String>,
}

/// A cold chain's samples at every `stride`-th step, at most `capacity` of them.
#[derive(Debug, Clone)]
struct Trace {
    capacity: usize,
    stride: u64,
    steps: Vec<u64>,
    values: Vec<Vec<f64>>,
}

impl Trace {
    fn new(capacity: usize) -> Trace {
        Trace {
            capacity,
            stride: 0,
            steps: Vec::new(),
            values: Vec::new(),
        }
    }

    fn observe(&mut self, step: u64, state: &[f64]) {
        if self.stride == 0 {
            self.stride = 1;
            self.values = vec![Vec::new(); state.len()];
        }
        if step % self.stride != 0 {
            return;
        }
        if self.steps.len() >= self.capacity {
            // Keep the points still on the doubled stride.
            self.stride *= 2;
            let keep: Vec<bool> = self.steps.iter().map(|s| s % self.stride == 0).collect();
            let mut k = keep.iter();
            self.steps.retain(|_| *k.next().unwrap_or(&false));
            for column in &mut self.values {
                let mut k = keep.iter();
                column.retain(|_| *k.next().unwrap_or(&false));
            }
            if step % self.stride != 0 {
                return;
            }
        }
        self.steps.push(step);
        for (column, &x) in self.values.iter_mut().zip(state) {
            column.push(x);
        }
    }
}

impl Table {
    /// A table for `sampler`'s chains, `n_temperatures` per stack, whose diagnostics leave out
    /// the first `burn_in` steps and whose ladder is fixed after `adaptation_steps`. A sampler
    /// resumed from a checkpoint starts the table at its step: draws before it are not seen.
    pub fn new(
        sampler: &Sampler,
        n_temperatures: usize,
        burn_in: u64,
        adaptation_steps: u64,
        names: Vec<String>,
    ) -> Table {
        let n_chains = sampler.n_chains();
        let n_stacks = n_chains / n_temperatures.max(1);
        let stats: Vec<ChainStats> = (0..n_chains)
            .map(|c| sampler.chain_stats(c).clone())
            .collect();
        Table {
            n_temperatures,
            burn_in,
            adaptation_steps,
            min_energy: vec![f64::INFINITY; n_chains],
            current_energy: vec![f64::NAN; n_chains],
            marks: [stats.clone(), stats],
            cold: vec![Trace::new(CONVERGENCE_DRAWS); n_stacks],
            traces: vec![Trace::new(TRACE_POINTS); n_stacks],
            energies: vec![Trace::new(ENERGY_DRAWS); n_chains],
            lengths: vec![sampler.step(); n_chains],
            names,
        }
    }

    /// Takes one step's rows into account.
    pub fn observe(&mut self, rows: &[Row]) {
        let fixed_from = self.burn_in.max(self.adaptation_steps);
        for row in rows {
            let c = row.chain;
            self.min_energy[c] = self.min_energy[c].min(row.energy);
            self.current_energy[c] = row.energy;
            self.lengths[c] += 1;
            let step = self.lengths[c];
            if step > fixed_from {
                self.energies[c].observe(step - fixed_from, &[row.energy]);
            }
            if c % self.n_temperatures == 0 {
                let stack = c / self.n_temperatures;
                if step > self.burn_in {
                    self.cold[stack].observe(step - self.burn_in, &row.state);
                }
                self.traces[stack].observe(step, &row.state);
            }
        }
    }

    /// Each chain's row since `reader` last looked (which this resets).
    fn chain_rows(&mut self, sampler: &Sampler, reader: Reader) -> Vec<ChainStatus> {
        let mark = &mut self.marks[reader as usize];
        (0..self.min_energy.len())
            .map(|c| {
                let stats = sampler.chain_stats(c);
                let before = std::mem::replace(&mut mark[c], stats.clone());
                ChainStatus {
                    id: c,
                    length: sampler.chain_step(c),
                    min_energy: self.min_energy[c],
                    current_energy: self.current_energy[c],
                    sigma: sampler.sigma(c),
                    accept_rate: rate(
                        stats.accepted - before.accepted,
                        stats.proposals - before.proposals,
                    ),
                    global_accept_rate: rate(stats.accepted, stats.proposals),
                    beta: sampler.betas()[c % self.n_temperatures],
                    swap_rate: optional_rate(
                        stats.swaps_accepted - before.swaps_accepted,
                        stats.swaps_attempted - before.swaps_attempted,
                    ),
                    global_swap_rate: optional_rate(stats.swaps_accepted, stats.swaps_attempted),
                }
            })
            .collect()
    }

    /// The status board's view: the table since the board last looked, tiers, convergence and
    /// the cold chains' traces.
    pub fn status(&mut self, sampler: &Sampler, total_steps: u64) -> McmcStatus {
        let chains = self.chain_rows(sampler, Reader::Board);
        let n_temps = self.n_temperatures;
        let tiers = (0..n_temps)
            .map(|t| {
                let tier_stats = || {
                    (t..sampler.n_chains())
                        .step_by(n_temps)
                        .map(|c| sampler.chain_stats(c))
                };
                let accepted: u64 = tier_stats().map(|s| s.accepted).sum();
                let proposals: u64 = tier_stats().map(|s| s.proposals).sum();
                let swaps: u64 = tier_stats().map(|s| s.swaps_attempted).sum();
                let swapped: u64 = tier_stats().map(|s| s.swaps_accepted).sum();
                TierStatus {
                    tier: t,
                    beta: sampler.betas()[t],
                    accept_rate: rate(accepted, proposals),
                    swap_rate: optional_rate(swapped, swaps),
                }
            })
            .collect();
        let traces = self
            .traces
            .iter()
            .enumerate()
            .map(|(stack, trace)| TraceStatus {
                chain: stack * n_temps,
                steps: trace.steps.clone(),
                values: trace.values.clone(),
            })
            .collect();
        let convergence = self.convergence();
        let mut warnings = self.warnings(&convergence);
        let ladder = self.ladder(sampler);
        warnings.extend(ladder.as_ref().and_then(|l| l.warning.clone()));
        let count = |f: fn(&ChainStats) -> u64| -> u64 {
            (0..sampler.n_chains())
                .map(|c| f(sampler.chain_stats(c)))
                .sum()
        };
        McmcStatus {
            step: sampler.step(),
            total_steps,
            n_stacks: self.cold.len(),
            n_temperatures: n_temps,
            n_dims: sampler.settings().min.len(),
            names: self.names.clone(),
            chains,
            tiers,
            burn_in: self.burn_in,
            convergence,
            warnings,
            ladder,
            round_trips: sampler.round_trips(),
            invalid_proposals: count(|s| s.invalid),
            out_of_bounds_proposals: count(|s| s.out_of_bounds),
            rhat_history: Vec::new(),
            traces,
        }
    }

    /// The convergence warnings, once there are draws after the burn-in.
    fn warnings(&self, convergence: &ConvergenceStatus) -> Vec<String> {
        if convergence.window < 4 {
            return Vec::new();
        }
        let diagnosed: Vec<Diagnosed<'_>> = self
            .names
            .iter()
            .take(convergence.rhat.len())
            .enumerate()
            .map(|(d, name)| Diagnosed {
                name,
                rhat: convergence.rhat[d].unwrap_or(f64::NAN),
                ess_bulk: convergence.ess_bulk[d].unwrap_or(f64::NAN),
            })
            .collect();
        convergence::warnings(&diagnosed)
    }

    /// The ladder's diagnosis: from the swaps since the ladder was fixed, or over the run while
    /// it still adapts.
    fn ladder(&self, sampler: &Sampler) -> Option<LadderReport> {
        let n_temps = self.n_temperatures;
        if n_temps < 2 {
            return None;
        }
        let fixed = sampler.fixed_ladder_swaps();
        let rates = if fixed.attempted.iter().any(|&n| n > 0) {
            fixed.rates()
        } else {
            (0..n_temps - 1)
                .map(|t| {
                    let stats = (t..sampler.n_chains()).step_by(n_temps);
                    let (k, n) = stats.fold((0, 0), |(k, n), c| {
                        let s = sampler.chain_stats(c);
                        (k + s.swaps_accepted, n + s.swaps_attempted)
                    });
                    optional_rate(k, n)
                })
                .collect()
        };
        let pooled: Vec<Vec<f64>> = (0..n_temps)
            .map(|t| {
                self.energies[t..]
                    .iter()
                    .step_by(n_temps)
                    .flat_map(|trace| trace.values.first().into_iter().flatten().copied())
                    .collect()
            })
            .collect();
        let pooled: Vec<&[f64]> = pooled.iter().map(Vec::as_slice).collect();
        Some(tempering::diagnose(sampler.betas(), &rates, Some(&pooled)))
    }

    /// The table for the period since the last one (which this resets), and a convergence line.
    pub fn render(&mut self, sampler: &Sampler, total_steps: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>4} {:>10} {:>12} {:>12} {:>10} {:>7} {:>9} {:>10} {:>7} {:>9}",
            "ID",
            "Length",
            "MinEngy",
            "CurrEngy",
            "Sigma",
            "AcptRt",
            "GlbAcptRt",
            "Beta",
            "SwapRt",
            "GlbSwapRt"
        );
        let shown = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"));
        for row in self.chain_rows(sampler, Reader::Console) {
            let _ = writeln!(
                out,
                "{:>4} {:>10} {:>12.4} {:>12.4} {:>10.4} {:>7.3} {:>9.3} {:>10} {:>7} {:>9}",
                row.id,
                row.length,
                row.min_energy,
                row.current_energy,
                row.sigma,
                row.accept_rate,
                row.global_accept_rate,
                beta_text(row.beta),
                shown(row.swap_rate),
                shown(row.global_swap_rate),
            );
        }
        let c = self.convergence();
        let step = sampler.step();
        let _ = write!(
            out,
            "step {step}/{total_steps} ({:.1}%): ",
            100.0 * step as f64 / total_steps.max(1) as f64,
        );
        if c.window < 4 {
            let _ = write!(out, "burn-in until step {}", self.burn_in);
        } else {
            let _ = write!(
                out,
                "cold chains after the burn-in (steps {}-{step}, every {}): max R-hat {:.3}, \
                 min bulk ESS {:.0}",
                c.from_step,
                c.stride,
                c.max_rhat.unwrap_or(f64::NAN),
                c.min_ess_bulk.unwrap_or(f64::NAN),
            );
        }
        let _ = writeln!(out, "; round trips {:?}", sampler.round_trips());
        for warning in self.warnings(&c) {
            let _ = writeln!(out, "WARNING: {warning}");
        }
        out
    }

    /// R-hat and bulk ESS of the cold chains' draws after the burn-in (thinned), per
    /// dimension, over the steps every stack has reached.
    fn convergence(&self) -> ConvergenceStatus {
        // Chains move on their own: a stack whose cold chain is still in its burn-in has no
        // draws yet, and then there is nothing to compare.
        let n_dims = self.cold.iter().map(|t| t.values.len()).min().unwrap_or(0);
        let stride = self.cold.iter().map(|t| t.stride).max().unwrap_or(0);
        let last = self
            .cold
            .iter()
            .map(|t| t.steps.last().copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        let kept = |t: &Trace, d: usize| -> Vec<f64> {
            t.steps
                .iter()
                .zip(&t.values[d])
                .filter(|(s, _)| **s % stride.max(1) == 0 && **s <= last)
                .map(|(_, x)| *x)
                .collect()
        };
        let finite = |x: f64| x.is_finite().then_some(x);
        let (mut rhat, mut ess_bulk, mut posterior) = (Vec::new(), Vec::new(), Vec::new());
        let mut window = 0;
        for d in 0..n_dims {
            let columns: Vec<Vec<f64>> = self.cold.iter().map(|t| kept(t, d)).collect();
            window = columns.first().map_or(0, Vec::len);
            let views: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
            rhat.push(finite(diagnostics::rank_normalized_split_rhat(&views)));
            ess_bulk.push(finite(diagnostics::ess_bulk(&views)));
            let mut pooled: Vec<f64> = columns.concat();
            pooled.sort_unstable_by(f64::total_cmp);
            posterior.push(PosteriorStatus {
                mean: finite(diagnostics::mean(&pooled)),
                sd: finite(diagnostics::sd(&pooled)),
                q05: finite(diagnostics::quantile(&pooled, 0.05)),
                q50: finite(diagnostics::quantile(&pooled, 0.5)),
                q95: finite(diagnostics::quantile(&pooled, 0.95)),
            });
        }
        ConvergenceStatus {
            window,
            from_step: if window > 0 { self.burn_in + 1 } else { 0 },
            stride,
            max_rhat: rhat.iter().flatten().copied().reduce(f64::max),
            min_ess_bulk: ess_bulk.iter().flatten().copied().reduce(f64::min),
            rhat,
            ess_bulk,
            posterior,
        }
    }
}

/// An inverse temperature as people read it: four significant digits without trailing zeros
/// (1, 0.1306, 0.001), in scientific notation only below 10⁻⁴.
fn beta_text(beta: f64) -> String {
    if beta != 0.0 && beta.abs() < 1e-4 {
        return format!("{beta:.3e}");
    }
    let decimals = if beta == 0.0 {
        0
    } else {
        (3 - beta.abs().log10().floor() as i32).clamp(0, 8) as usize
    };
    let text = format!("{beta:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn rate(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

fn optional_rate(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn betas_read_as_decimals() {
        use super::beta_text;
        assert_eq!(beta_text(1.0), "1");
        assert_eq!(beta_text(0.130_612_3), "0.1306");
        assert_eq!(beta_text(0.031_622_78), "0.03162");
        assert_eq!(beta_text(1e-3), "0.001");
        assert_eq!(beta_text(2.5e-6), "2.500e-6");
        assert_eq!(beta_text(0.0), "0");
    }

    use super::*;

    #[test]
    fn traces_keep_a_bounded_evenly_strided_sample_of_the_whole_run() {
        let mut trace = Trace::new(TRACE_POINTS);
        for step in 1..=100_000u64 {
            trace.observe(step, &[step as f64, -(step as f64)]);
        }
        assert!(trace.steps.len() <= TRACE_POINTS && trace.steps.len() > TRACE_POINTS / 2);
        assert!(trace.steps.windows(2).all(|w| w[1] - w[0] == trace.stride));
        assert_eq!(
            trace.steps[0], trace.stride,
            "the trace starts at the run's start"
        );
        assert!(100_000 - trace.steps.last().unwrap() < trace.stride);
        assert_eq!(trace.values[1][3], -(trace.steps[3] as f64));
    }

    fn row(chain: usize, x: f64) -> Row {
        Row {
            chain,
            state: vec![x, -x],
            energy: x * x,
            sigma: 1.0,
            beta: 1.0,
            accepted: true,
            swap_type: ganger_core::mcmc::sampler::SwapType::NoAttempt,
        }
    }

    #[test]
    fn a_stack_still_in_its_burn_in_leaves_the_convergence_figures_empty() {
        let sampler = Sampler::new(ganger_core::mcmc::sampler::SamplerSettings {
            min: vec![-1.0; 2],
            max: vec![1.0; 2],
            n_stacks: 2,
            n_temperatures: 1,
            swap_interval: 10,
            optimal_accept_rate: 0.24,
            optimal_swap_rate: 0.24,
            swaps: ganger_core::mcmc::sampler::Swaps::NonReversible,
            max_temperature: 1.0,
            adaptation_steps: 5,
            initial: None,
            seed: 1,
        });
        let mut table = Table::new(&sampler, 1, 5, 5, vec!["x0".into(), "x1".into()]);
        // Chains move on their own: stack 0 is 40 steps past the burn-in, stack 1 not there.
        let ahead: Vec<Row> = (0..45).map(|k| row(0, (k as f64 * 0.7).sin())).collect();
        table.observe(&ahead);
        table.observe(&[row(1, 0.5), row(1, 0.25)]);
        let c = table.convergence();
        assert_eq!((c.window, c.max_rhat), (0, None));
        let behind: Vec<Row> = (0..43).map(|k| row(1, (k as f64 * 1.3).cos())).collect();
        table.observe(&behind);
        let c = table.convergence();
        assert_eq!(c.window, 40, "the steps both stacks have reached");
        assert!(c.max_rhat.is_some());
        // The live posterior is of exactly those draws: steps 6 to 45 of both stacks, pooled.
        let mut pooled: Vec<f64> = (5..45)
            .map(|k| (k as f64 * 0.7).sin())
            .chain((3..43).map(|k| (k as f64 * 1.3).cos()))
            .collect();
        let mean = pooled.iter().sum::<f64>() / 80.0;
        pooled.sort_unstable_by(f64::total_cmp);
        let posterior = &c.posterior;
        assert_eq!(posterior.len(), 2);
        assert!((posterior[0].mean.unwrap() - mean).abs() < 1e-12);
        assert_eq!(posterior[0].q50, Some((pooled[39] + pooled[40]) / 2.0));
        assert!(posterior[0].q05 < posterior[0].q50 && posterior[0].q50 < posterior[0].q95);
    }
}
