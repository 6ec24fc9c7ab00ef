//! The console table printed every `loggingRateSec`, in Stateline's columns, and a convergence
//! line from the cold chains' recent samples; and the same, with thinned traces of the cold
//! chains, as the [`McmcStatus`] the status board and the dashboard show.

use std::collections::VecDeque;
use std::fmt::Write as _;

use ganger_core::mcmc::diagnostics;
use ganger_core::mcmc::sampler::{ChainStats, Row, Sampler};

use crate::status::{ChainStatus, ConvergenceStatus, McmcStatus, TierStatus, TraceStatus};

/// Recent cold-chain samples kept per dimension for the convergence line.
const CONVERGENCE_WINDOW: usize = 4096;

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
    min_energy: Vec<f64>,
    current_energy: Vec<f64>,
    /// Each reader's copy of the chains' counters when it last looked.
    marks: [Vec<ChainStats>; 2],
    /// Per stack, per dimension: the cold chain's latest samples.
    cold: Vec<Vec<VecDeque<f64>>>,
    /// Per stack: the cold chain's thinned trace.
    traces: Vec<Trace>,
    /// Steps each chain has taken, as rows arrived.
    lengths: Vec<u64>,
}

/// A cold chain's samples at every `stride`-th step.
#[derive(Debug, Clone, Default)]
struct Trace {
    stride: u64,
    steps: Vec<u64>,
    values: Vec<Vec<f64>>,
}

impl Trace {
    fn observe(&mut self, step: u64, state: &[f64]) {
        if self.stride == 0 {
            self.stride = 1;
            self.values = vec![Vec::new(); state.len()];
        }
        if step % self.stride != 0 {
            return;
        }
        if self.steps.len() >= TRACE_POINTS {
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
    /// A table for `n_chains` chains of `n_temperatures` per stack, whose chains have taken
    /// `steps` steps (and whose counters are `sampler`'s).
    pub fn new(sampler: &Sampler, n_temperatures: usize) -> Table {
        let n_chains = sampler.n_chains();
        let stats: Vec<ChainStats> = (0..n_chains)
            .map(|c| sampler.chain_stats(c).clone())
            .collect();
        Table {
            n_temperatures,
            min_energy: vec![f64::INFINITY; n_chains],
            current_energy: vec![f64::NAN; n_chains],
            marks: [stats.clone(), stats],
            cold: vec![Vec::new(); n_chains / n_temperatures.max(1)],
            traces: vec![Trace::default(); n_chains / n_temperatures.max(1)],
            lengths: vec![sampler.step(); n_chains],
        }
    }

    /// Takes one step's rows into account.
    pub fn observe(&mut self, rows: &[Row]) {
        for row in rows {
            let c = row.chain;
            self.min_energy[c] = self.min_energy[c].min(row.energy);
            self.current_energy[c] = row.energy;
            self.lengths[c] += 1;
            if c % self.n_temperatures == 0 {
                let stack = c / self.n_temperatures;
                let history = &mut self.cold[stack];
                history.resize_with(row.state.len(), VecDeque::new);
                for (column, &x) in history.iter_mut().zip(&row.state) {
                    if column.len() == CONVERGENCE_WINDOW {
                        column.pop_front();
                    }
                    column.push_back(x);
                }
                self.traces[stack].observe(self.lengths[c], &row.state);
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
                    length: sampler.step(),
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
        McmcStatus {
            step: sampler.step(),
            total_steps,
            n_stacks: self.cold.len(),
            n_temperatures: n_temps,
            n_dims: sampler.settings().min.len(),
            chains,
            tiers,
            convergence: self.convergence(),
            round_trips: sampler.round_trips(),
            invalid_proposals: (0..sampler.n_chains())
                .map(|c| sampler.chain_stats(c).invalid)
                .sum(),
            rhat_history: Vec::new(),
            traces,
        }
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
                "{:>4} {:>10} {:>12.4} {:>12.4} {:>10.4} {:>7.3} {:>9.3} {:>10.3e} {:>7} {:>9}",
                row.id,
                row.length,
                row.min_energy,
                row.current_energy,
                row.sigma,
                row.accept_rate,
                row.global_accept_rate,
                row.beta,
                shown(row.swap_rate),
                shown(row.global_swap_rate),
            );
        }
        let c = self.convergence();
        let _ = writeln!(
            out,
            "step {}/{} ({:.1}%): cold chains over the last {} steps: max R-hat {:.3}, min bulk ESS {:.0}; round trips {:?}",
            sampler.step(),
            total_steps,
            100.0 * sampler.step() as f64 / total_steps.max(1) as f64,
            c.window,
            c.max_rhat.unwrap_or(f64::NAN),
            c.min_ess_bulk.unwrap_or(f64::NAN),
            sampler.round_trips()
        );
        out
    }

    /// R-hat and bulk ESS of the cold chains' recent samples, per dimension.
    fn convergence(&self) -> ConvergenceStatus {
        let n_dims = self.cold.first().map_or(0, Vec::len);
        let finite = |x: f64| x.is_finite().then_some(x);
        let (mut rhat, mut ess_bulk) = (Vec::new(), Vec::new());
        for d in 0..n_dims {
            let columns: Vec<Vec<f64>> = self
                .cold
                .iter()
                .map(|c| c[d].iter().copied().collect())
                .collect();
            let views: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
            rhat.push(finite(diagnostics::rank_normalized_split_rhat(&views)));
            ess_bulk.push(finite(diagnostics::ess_bulk(&views)));
        }
        ConvergenceStatus {
            window: self
                .cold
                .first()
                .and_then(|c| c.first())
                .map_or(0, VecDeque::len),
            max_rhat: rhat.iter().flatten().copied().reduce(f64::max),
            min_ess_bulk: ess_bulk.iter().flatten().copied().reduce(f64::min),
            rhat,
            ess_bulk,
        }
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
    use super::*;

    #[test]
    fn traces_keep_a_bounded_evenly_strided_sample_of_the_whole_run() {
        let mut trace = Trace::default();
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
}
