//! The parallel-tempering Metropolis–Hastings sampler as a state machine.
//!
//! The sampler advances in rounds. Each round it offers points to evaluate
//! ([`Sampler::points`]); the driver evaluates every point (the negative log-likelihood summed
//! over the job types, in any order, on any workers) and hands all energies back at once
//! ([`Sampler::complete`]). Because a round only advances once every energy is in, and every
//! random number comes from a stream owned by one chain (or one stack, for swaps), the output is
//! a function of the seed alone: not of the number of workers, their speed, or the order in
//! which results arrive.
//!
//! The target of a chain at inverse temperature β is `exp(-β E(x))` on the box `[min, max]` and
//! zero outside it: the box is a uniform prior. A proposal is `x + σ L z` with `z` standard
//! normal, a symmetric proposal, and one that falls outside the box is rejected without being
//! evaluated. That is exact Metropolis–Hastings for any target truncated by the box, whatever
//! the proposal covariance (folding proposals back into the box, as Stateline does, is not: it
//! breaks the symmetry the acceptance ratio relies on as soon as the covariance is correlated).
//!
//! Each chain draws the same random numbers every step whether or not its proposal is accepted
//! or even evaluated (one standard-normal vector and one uniform), so streams never drift
//! between runs.
//!
//! Proposals adapt during the first `adaptation_steps` steps (see `adaptation`): each
//! temperature tier's covariance over windows that forget the start, each chain's scale towards
//! the target acceptance rate, and the ladder's temperatures. After that the chains are plain
//! Markov chains.
//!
//! Between swap points chains do not interact, so a round may carry several steps of one chain:
//! each chain offers a tree of proposals (see [`Sampler::set_speculation`]). The root is its next
//! proposal; below each proposal come the proposal of the step after it if it is rejected and
//! the one if it is accepted, each computed from the random draws of that step along that
//! history (adaptation included). Nodes are chosen most probable first from the chain's recent
//! acceptance rate, and the chain advances down the tree for as long as its decisions stay inside
//! it. Every proposal is the one the chain would make one step at a time, so the output is the
//! same whatever the speculation; only the number of round trips changes.

mod adaptation;
mod ladder;
mod tree;

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use adaptation::{adapted, Schedule, Tier};
pub use ladder::PairCounts;
use ladder::{LadderWindow, LADDER_WINDOW};
use tree::Tree;

/// The version of the sampling algorithm. A checkpoint written by another version is refused
/// rather than resumed into a different sampler.
///
/// Version 2: proposals outside the bounds are rejected (version 1 reflected them), and
/// proposal covariances are estimated over windows that forget the start (version 1 used every
/// draw since step 0).
pub const SAMPLER_VERSION: u32 = 2;

/// How adjacent temperatures exchange states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Swaps {
    /// Every pair from the hottest down attempts a swap at each swap step (Stateline's scheme).
    Classic,
    /// Deterministic even/odd swaps with schedule adaptation (Syed, Bouchard-Côté,
    /// Deligiannidis & Doucet 2021): even pairs on even swap steps, odd pairs on odd ones.
    NonReversible,
}

/// What the sampler needs to know; built from a run's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerSettings {
    /// Lower bound of each dimension.
    pub min: Vec<f64>,
    /// Upper bound of each dimension.
    pub max: Vec<f64>,
    /// Independent stacks of tempered chains.
    pub n_stacks: usize,
    /// Chains per stack; chain 0 of each stack is the cold one (beta = 1).
    pub n_temperatures: usize,
    /// Steps between swap attempts.
    pub swap_interval: u64,
    /// Target acceptance rate of proposals.
    pub optimal_accept_rate: f64,
    /// Target acceptance rate of swaps (classic scheme).
    pub optimal_swap_rate: f64,
    /// Swap scheme.
    pub swaps: Swaps,
    /// Hottest temperature of the initial ladder (geometric from 1).
    pub max_temperature: f64,
    /// Steps during which proposals and temperatures adapt (diminishing), then stay fixed.
    pub adaptation_steps: u64,
    /// Start every chain here instead of at a uniform draw within the bounds.
    pub initial: Option<Vec<f64>>,
    /// Seed of every random stream.
    pub seed: u64,
}

/// Whether and how a chain took part in a swap at a step (Stateline's `swap_type` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SwapType {
    /// No swap was attempted.
    NoAttempt = 0,
    /// A swap was attempted and accepted.
    Accept = 1,
    /// A swap was attempted and rejected.
    Reject = 2,
}

/// One output row: a chain's state after a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Chain index: `stack * n_temperatures + temperature`.
    pub chain: usize,
    /// The state.
    pub state: Vec<f64>,
    /// Its energy (negative log-likelihood).
    pub energy: f64,
    /// The chain's proposal scale.
    pub sigma: f64,
    /// The chain's inverse temperature.
    pub beta: f64,
    /// Whether this step's proposal was accepted.
    pub accepted: bool,
    /// This step's swap.
    pub swap_type: SwapType,
}

/// Acceptance counters of one chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainStats {
    /// Proposals made.
    pub proposals: u64,
    /// Proposals accepted.
    pub accepted: u64,
    /// Proposals whose energy was NaN or infinite (rejected), and a starting state's.
    pub invalid: u64,
    /// Proposals outside the bounds (rejected without being evaluated).
    pub out_of_bounds: u64,
    /// Swaps attempted with the next hotter chain.
    pub swaps_attempted: u64,
    /// Swaps accepted with the next hotter chain.
    pub swaps_accepted: u64,
}

/// The sampler. See the module documentation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sampler {
    settings: SamplerSettings,
    chains: Vec<Chain>,
    stacks: Vec<Stack>,
    tiers: Vec<Tier>,
    /// When the tiers' covariances are re-estimated.
    schedule: Schedule,
    /// Inverse temperatures of the ladder, coldest (1) first; shared by all stacks.
    betas: Vec<f64>,
    /// Swap statistics per adjacent pair since the ladder last adapted.
    ladder_window: LadderWindow,
    /// Swap statistics per adjacent pair after adaptation, with the ladder fixed.
    fixed_ladder_swaps: PairCounts,
    /// Steps completed by every chain: the start of the current window between boundaries.
    step: u64,
    initialised: bool,
    /// Points each chain may offer per round (1: no speculation). Runtime only: the output does
    /// not depend on it.
    speculation: usize,
    /// No chain steps beyond this (the run's length).
    horizon: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chain {
    state: Vec<f64>,
    energy: f64,
    log_sigma: f64,
    /// The step after which the scale's adaptation last (re)started.
    adapt_origin: u64,
    rng: Xoshiro256PlusPlus,
    stats: ChainStats,
    /// Steps this chain has taken.
    step: u64,
    /// Random numbers drawn for upcoming steps (normal vector, uniform), next step first.
    draws: VecDeque<(Vec<f64>, f64)>,
    /// This round's proposals, rebuilt after every round.
    tree: Tree,
    /// States after each step since the window started that feed the tier's covariance.
    window_states: Vec<Vec<f64>>,
    /// The decision at the boundary step, for its row.
    boundary_accepted: bool,
    /// Smoothed acceptance, to predict decisions.
    accept_ewma: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stack {
    rng: Xoshiro256PlusPlus,
    swap_steps: u64,
    /// Which replica sits at each temperature, and where each replica is heading
    /// (true: towards the hot end), for counting round trips.
    replica_at: Vec<usize>,
    heading_hot: Vec<bool>,
    round_trips: u64,
}

impl Sampler {
    /// A sampler about to evaluate its chains' initial states.
    pub fn new(settings: SamplerSettings) -> Sampler {
        let d = settings.min.len();
        let n_chains = settings.n_stacks * settings.n_temperatures;
        let mut master = Xoshiro256PlusPlus::seed_from_u64(settings.seed);
        let mut stream = || {
            // Each jump moves 2^128 draws ahead: streams never overlap.
            let rng = master.clone();
            master.jump();
            rng
        };
        let chains: Vec<Chain> = (0..n_chains)
            .map(|_| {
                let mut rng = stream();
                let state: Vec<f64> = match &settings.initial {
                    Some(initial) => initial.clone(),
                    None => (0..d)
                        .map(|i| rng.random_range(settings.min[i]..settings.max[i]))
                        .collect(),
                };
                Chain {
                    state,
                    energy: f64::INFINITY,
                    log_sigma: 0.0,
                    adapt_origin: 0,
                    rng,
                    stats: ChainStats::default(),
                    step: 0,
                    draws: VecDeque::new(),
                    tree: Tree::default(),
                    window_states: Vec::new(),
                    boundary_accepted: false,
                    accept_ewma: 0.0,
                }
            })
            .collect();
        let stacks = (0..settings.n_stacks)
            .map(|_| Stack {
                rng: stream(),
                swap_steps: 0,
                replica_at: (0..settings.n_temperatures).collect(),
                heading_hot: vec![true; settings.n_temperatures],
                round_trips: 0,
            })
            .collect();
        let initial_sd: Vec<f64> = (0..d)
            .map(|i| (settings.max[i] - settings.min[i]) / 20.0)
            .collect();
        let tiers = (0..settings.n_temperatures)
            .map(|_| Tier::new(&initial_sd))
            .collect();
        let betas = ladder::geometric(settings.n_temperatures, settings.max_temperature);
        let pairs = settings.n_temperatures.saturating_sub(1);
        Sampler {
            schedule: Schedule::new(settings.adaptation_steps),
            settings,
            chains,
            stacks,
            tiers,
            betas,
            ladder_window: LadderWindow {
                counts: PairCounts::with_pairs(pairs),
                ..LadderWindow::default()
            },
            fixed_ladder_swaps: PairCounts::with_pairs(pairs),
            step: 0,
            initialised: false,
            speculation: 1,
            horizon: u64::MAX,
        }
    }

    /// The settings this sampler runs with.
    pub fn settings(&self) -> &SamplerSettings {
        &self.settings
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The points to evaluate this round, chain by chain: each chain's state in the first
    /// round, then each chain's proposals inside the bounds (see the module documentation). A
    /// round may have none, when every proposal fell outside the bounds.
    pub fn points(&self) -> impl Iterator<Item = &[f64]> {
        let d = self.settings.min.len();
        let initial = (!self.initialised).then(|| self.chains.iter().map(|c| c.state.as_slice()));
        let speculative = self.initialised.then(|| {
            self.chains
                .iter()
                .flat_map(move |c| c.tree.points().chunks_exact(d))
        });
        initial
            .into_iter()
            .flatten()
            .chain(speculative.into_iter().flatten())
    }

    /// Number of points this round.
    pub fn n_points(&self) -> usize {
        let d = self.settings.min.len();
        if self.initialised {
            self.chains.iter().map(|c| c.tree.n_evaluated(d)).sum()
        } else {
            self.chains.len()
        }
    }

    /// Lets each chain offer up to `points` proposals per round (at least 1), the most probable
    /// steps of its possible futures up to the next swap. Worth it when a round trip costs more
    /// than the evaluations it carries; the output does not change.
    pub fn set_speculation(&mut self, points: usize) {
        self.speculation = points.max(1);
        self.speculate_all();
    }

    /// Points each chain may offer per round.
    pub fn speculation(&self) -> usize {
        self.speculation
    }

    /// Stops every chain at `steps` steps.
    pub fn set_horizon(&mut self, steps: u64) {
        self.horizon = steps;
        self.speculate_all();
    }

    /// Whether every chain stands at the same step with nothing held for a swap: the moments
    /// at which a checkpoint captures the run exactly.
    pub fn at_boundary(&self) -> bool {
        self.chains
            .iter()
            .all(|c| c.step == self.step && c.window_states.is_empty())
    }

    /// Number of chains (`n_stacks * n_temperatures`).
    pub fn n_chains(&self) -> usize {
        self.chains.len()
    }

    /// Counters of chain `chain`.
    pub fn chain_stats(&self, chain: usize) -> &ChainStats {
        &self.chains[chain].stats
    }

    /// The proposal scale of chain `chain`.
    pub fn sigma(&self, chain: usize) -> f64 {
        self.chains[chain].log_sigma.exp()
    }

    /// The covariance estimate temperature tier `tier`'s proposals are built from (row-major
    /// d × d): a proposal's covariance is `sigma² · 2.38² / d` times it.
    pub fn proposal_covariance(&self, tier: usize) -> &[f64] {
        &self.tiers[tier].covariance
    }

    /// Round trips (cold → hot → cold) completed by the replicas of each stack.
    pub fn round_trips(&self) -> Vec<u64> {
        self.stacks.iter().map(|s| s.round_trips).collect()
    }

    /// The current inverse temperatures, coldest first.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// Swap attempts and acceptances of each adjacent pair of temperatures, over all stacks,
    /// since adaptation ended (the ladder no longer moves).
    pub fn fixed_ladder_swaps(&self) -> &PairCounts {
        &self.fixed_ladder_swaps
    }

    /// Takes the energies of this round's points (in [`Sampler::points`] order) and advances.
    /// Returns a row for every step any chain took (none for the initial round), each chain's
    /// rows in step order.
    pub fn complete(&mut self, energies: &[f64]) -> Vec<Row> {
        assert_eq!(energies.len(), self.n_points(), "one energy per point");
        if !self.initialised {
            for (chain, &energy) in self.chains.iter_mut().zip(energies) {
                // An impossible start: any possible proposal is accepted, and it is counted.
                chain.energy = if energy.is_finite() {
                    energy
                } else {
                    chain.stats.invalid += 1;
                    f64::INFINITY
                };
            }
            self.initialised = true;
            self.speculate_all();
            return Vec::new();
        }
        let window_end = self.window_end();
        let d = self.settings.min.len();
        let n_temps = self.settings.n_temperatures;
        let adaptation_steps = self.settings.adaptation_steps;
        let target = self.settings.optimal_accept_rate;
        let mut rows = Vec::with_capacity(self.chains.len());
        let mut offset = 0;
        for (i, chain) in self.chains.iter_mut().enumerate() {
            let beta = self.betas[i % n_temps];
            let tree = std::mem::take(&mut chain.tree);
            let mut node = (tree.len() > 0).then_some(0);
            while let Some(k) = node {
                let (_, uniform) = chain.draws.pop_front().expect("a draw per speculated step");
                chain.step += 1;
                let accepted = match tree.slot(k) {
                    Some(slot) => {
                        let energy = energies[offset + slot];
                        chain.decide(tree.point(slot, d), energy, uniform, beta)
                    }
                    None => chain.reject_outside(),
                };
                if chain.step <= adaptation_steps {
                    let t = chain.step - chain.adapt_origin;
                    chain.log_sigma = adapted(chain.log_sigma, t, accepted, target);
                }
                chain.accept_ewma = 0.9 * chain.accept_ewma + if accepted { 0.1 } else { 0.0 };
                if self.schedule.observes(chain.step) {
                    chain.window_states.push(chain.state.clone());
                }
                if chain.step == window_end {
                    // Its row waits for the swap.
                    chain.boundary_accepted = accepted;
                    break;
                }
                rows.push(Row {
                    chain: i,
                    state: chain.state.clone(),
                    energy: chain.energy,
                    sigma: chain.log_sigma.exp(),
                    beta,
                    accepted,
                    swap_type: SwapType::NoAttempt,
                });
                node = tree.child(k, accepted);
            }
            offset += tree.n_evaluated(d);
            // Keep the buffers for the next round.
            chain.tree = tree;
        }
        if self.chains.iter().all(|c| c.step == window_end) {
            self.close_window(window_end, &mut rows);
        }
        self.speculate_all();
        rows
    }

    /// The step at which the current window ends: the next swap, the end of a covariance
    /// window, or the horizon.
    fn window_end(&self) -> u64 {
        let swap = self.settings.swap_interval;
        let mut end = (self.step / swap + 1) * swap;
        if let Some(covariance_end) = self.schedule.next_end(self.step) {
            end = end.min(covariance_end);
        }
        end.min(self.horizon.max(self.step + 1))
    }

    /// Every chain has reached `end`: update the tiers' moments in step-then-chain order (the
    /// order in which one step at a time would), end a covariance window, swap, and emit the
    /// boundary rows.
    fn close_window(&mut self, end: u64, rows: &mut Vec<Row>) {
        let n_temps = self.settings.n_temperatures;
        let window = self.chains[0].window_states.len();
        for k in 0..window {
            for (i, chain) in self.chains.iter().enumerate() {
                self.tiers[i % n_temps].observe(&chain.window_states[k]);
            }
        }
        for chain in &mut self.chains {
            chain.window_states.clear();
        }
        self.step = end;
        if self.schedule.ends_at(end) {
            for (t, tier) in self.tiers.iter_mut().enumerate() {
                if tier.end_window() {
                    // The scale was tuned to the old covariance: start its adaptation afresh.
                    for chain in self.chains.iter_mut().skip(t).step_by(n_temps) {
                        chain.log_sigma = 0.0;
                        chain.adapt_origin = end;
                    }
                }
            }
        }
        let mut swap_types = vec![SwapType::NoAttempt; self.chains.len()];
        // The rows carry the temperatures the step ran at, not those a ladder update brings.
        let betas = self.betas.clone();
        if end % self.settings.swap_interval == 0 {
            self.swap(&mut swap_types);
        }
        for (i, chain) in self.chains.iter().enumerate() {
            rows.push(Row {
                chain: i,
                state: chain.state.clone(),
                energy: chain.energy,
                sigma: chain.log_sigma.exp(),
                beta: betas[i % n_temps],
                accepted: chain.boundary_accepted,
                swap_type: swap_types[i],
            });
        }
    }

    /// Builds each chain's proposals for this round.
    fn speculate_all(&mut self) {
        if !self.initialised {
            return;
        }
        let window_end = self.window_end();
        let n_temps = self.settings.n_temperatures;
        for (i, chain) in self.chains.iter_mut().enumerate() {
            let depth = window_end.saturating_sub(chain.step) as usize;
            chain.speculate(
                self.speculation,
                depth,
                &self.tiers[i % n_temps].cholesky,
                &self.settings,
            );
        }
    }

    fn swap(&mut self, swap_types: &mut [SwapType]) {
        let n_temps = self.settings.n_temperatures;
        if n_temps < 2 {
            return;
        }
        let adapting = self.step <= self.settings.adaptation_steps;
        self.ladder_window.swap_steps += 1;
        for (s, stack) in self.stacks.iter_mut().enumerate() {
            let base = s * n_temps;
            let parity = stack.swap_steps % 2;
            stack.swap_steps += 1;
            // Pairs (t, t + 1), hottest first.
            for t in (0..n_temps - 1).rev() {
                let draw: f64 = stack.rng.random();
                let attempt = match self.settings.swaps {
                    Swaps::Classic => true,
                    Swaps::NonReversible => t as u64 % 2 == parity,
                };
                if !attempt {
                    continue;
                }
                let (cold, hot) = (base + t, base + t + 1);
                let log_ratio = (self.betas[t] - self.betas[t + 1])
                    * (self.chains[cold].energy - self.chains[hot].energy);
                let ok = log_ratio >= 0.0 || draw.ln() < log_ratio;
                self.ladder_window.counts.record(t, ok);
                if !adapting {
                    self.fixed_ladder_swaps.record(t, ok);
                }
                self.chains[cold].stats.swaps_attempted += 1;
                let kind = if ok {
                    SwapType::Accept
                } else {
                    SwapType::Reject
                };
                swap_types[cold] = kind;
                swap_types[hot] = kind;
                if ok {
                    self.chains[cold].stats.swaps_accepted += 1;
                    let (a, b) = self.chains.split_at_mut(hot);
                    std::mem::swap(&mut a[cold].state, &mut b[0].state);
                    std::mem::swap(&mut a[cold].energy, &mut b[0].energy);
                    stack.replica_at.swap(t, t + 1);
                }
            }
            stack.count_round_trips();
        }
        if self.ladder_window.swap_steps >= LADDER_WINDOW {
            let pairs = n_temps - 1;
            let window = std::mem::replace(
                &mut self.ladder_window,
                LadderWindow {
                    counts: PairCounts::with_pairs(pairs),
                    ..LadderWindow::default()
                },
            );
            if adapting {
                ladder::adapt(
                    &mut self.betas,
                    self.settings.swaps,
                    self.settings.optimal_swap_rate,
                    &window.counts,
                    window.updates,
                );
            }
            self.ladder_window.updates = window.updates + 1;
        }
    }
}

impl Chain {
    /// Metropolis decision on an evaluated proposal; a NaN or infinite energy is a rejection.
    fn decide(&mut self, proposal: &[f64], energy: f64, uniform: f64, beta: f64) -> bool {
        self.stats.proposals += 1;
        if !energy.is_finite() {
            self.stats.invalid += 1;
            return false;
        }
        let log_ratio = -beta * (energy - self.energy);
        let ok = log_ratio >= 0.0 || uniform.ln() < log_ratio;
        if ok {
            self.stats.accepted += 1;
            self.state.copy_from_slice(proposal);
            self.energy = energy;
        }
        ok
    }

    /// A proposal outside the bounds, where the target is zero: rejected.
    fn reject_outside(&mut self) -> bool {
        self.stats.proposals += 1;
        self.stats.out_of_bounds += 1;
        false
    }
}

impl Stack {
    /// A replica that reached the hottest temperature turns round; one back at the coldest after
    /// that has made a round trip.
    fn count_round_trips(&mut self) {
        let top = self.replica_at.len() - 1;
        let hot = self.replica_at[top];
        self.heading_hot[hot] = false;
        let cold = self.replica_at[0];
        if !self.heading_hot[cold] {
            self.heading_hot[cold] = true;
            self.round_trips += 1;
        }
    }
}

#[cfg(test)]
mod tests;
