//! The console table printed every `loggingRateSec`, in Stateline's columns, and a convergence
//! line from the cold chains' recent samples.

use std::collections::VecDeque;
use std::fmt::Write as _;

use ganger_core::mcmc::diagnostics;
use ganger_core::mcmc::sampler::{Row, Sampler, SwapType};

/// Recent cold-chain samples kept per dimension for the convergence line.
const CONVERGENCE_WINDOW: usize = 4096;

/// Counters between two tables, and the history the convergence line needs.
#[derive(Debug)]
pub struct Table {
    n_temperatures: usize,
    min_energy: Vec<f64>,
    current_energy: Vec<f64>,
    recent_steps: Vec<u64>,
    recent_accepted: Vec<u64>,
    recent_swaps: Vec<u64>,
    recent_swaps_accepted: Vec<u64>,
    /// Per stack, per dimension: the cold chain's latest samples.
    cold: Vec<Vec<VecDeque<f64>>>,
}

impl Table {
    /// A table for `n_chains` chains of `n_temperatures` per stack.
    pub fn new(n_chains: usize, n_temperatures: usize) -> Table {
        Table {
            n_temperatures,
            min_energy: vec![f64::INFINITY; n_chains],
            current_energy: vec![f64::NAN; n_chains],
            recent_steps: vec![0; n_chains],
            recent_accepted: vec![0; n_chains],
            recent_swaps: vec![0; n_chains],
            recent_swaps_accepted: vec![0; n_chains],
            cold: vec![Vec::new(); n_chains / n_temperatures.max(1)],
        }
    }

    /// Takes one step's rows into account.
    pub fn observe(&mut self, rows: &[Row]) {
        for row in rows {
            let c = row.chain;
            self.min_energy[c] = self.min_energy[c].min(row.energy);
            self.current_energy[c] = row.energy;
            self.recent_steps[c] += 1;
            self.recent_accepted[c] += u64::from(row.accepted);
            if row.swap_type != SwapType::NoAttempt {
                self.recent_swaps[c] += 1;
                self.recent_swaps_accepted[c] += u64::from(row.swap_type == SwapType::Accept);
            }
            if c % self.n_temperatures == 0 {
                let history = &mut self.cold[c / self.n_temperatures];
                history.resize_with(row.state.len(), VecDeque::new);
                for (column, &x) in history.iter_mut().zip(&row.state) {
                    if column.len() == CONVERGENCE_WINDOW {
                        column.pop_front();
                    }
                    column.push_back(x);
                }
            }
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
        for c in 0..self.min_energy.len() {
            let stats = sampler.chain_stats(c);
            let beta = sampler.betas()[c % self.n_temperatures];
            let _ = writeln!(
                out,
                "{:>4} {:>10} {:>12.4} {:>12.4} {:>10.4} {:>7.3} {:>9.3} {:>10.3e} {:>7} {:>9}",
                c,
                sampler.step(),
                self.min_energy[c],
                self.current_energy[c],
                sampler.sigma(c),
                rate(self.recent_accepted[c], self.recent_steps[c]),
                rate(stats.accepted, stats.proposals),
                beta,
                optional_rate(self.recent_swaps_accepted[c], self.recent_swaps[c]),
                optional_rate(stats.swaps_accepted, stats.swaps_attempted),
            );
            self.recent_steps[c] = 0;
            self.recent_accepted[c] = 0;
            self.recent_swaps[c] = 0;
            self.recent_swaps_accepted[c] = 0;
        }
        let _ = writeln!(out, "{}", self.convergence(sampler, total_steps));
        out
    }

    fn convergence(&self, sampler: &Sampler, total_steps: u64) -> String {
        let n_dims = self.cold.first().map_or(0, Vec::len);
        let mut worst_rhat = f64::NAN;
        let mut least_ess = f64::NAN;
        for d in 0..n_dims {
            let columns: Vec<Vec<f64>> = self
                .cold
                .iter()
                .map(|c| c[d].iter().copied().collect())
                .collect();
            let views: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
            worst_rhat = worst_rhat.max(diagnostics::rank_normalized_split_rhat(&views));
            least_ess = least_ess.min(diagnostics::ess_bulk(&views));
        }
        format!(
            "step {}/{} ({:.1}%): cold chains over the last {} steps: max R-hat {:.3}, min bulk ESS {:.0}; round trips {:?}",
            sampler.step(),
            total_steps,
            100.0 * sampler.step() as f64 / total_steps.max(1) as f64,
            self.cold.first().and_then(|c| c.first()).map_or(0, VecDeque::len),
            worst_rhat,
            least_ess,
            sampler.round_trips()
        )
    }
}

fn rate(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

fn optional_rate(numerator: u64, denominator: u64) -> String {
    if denominator == 0 {
        "-".into()
    } else {
        format!("{:.3}", numerator as f64 / denominator as f64)
    }
}
