//! The parallel-tempering Metropolis–Hastings sampler as a state machine.
//!
//! The sampler advances in rounds. Each round it offers one point per chain
//! ([`Sampler::points`]); the driver evaluates every point (the negative log-likelihood summed
//! over the job types, in any order, on any workers) and hands all energies back at once
//! ([`Sampler::complete`]). Because a round only advances once every energy is in, and every
//! random number comes from a stream owned by one chain (or one stack, for swaps), the output is
//! a function of the seed alone: not of the number of workers, their speed, or the order in
//! which results arrive.
//!
//! Each chain draws the same random numbers every step whether or not its proposal is accepted
//! (one standard-normal vector and one uniform), so streams never drift between runs.
//!
//! Between swap points chains do not interact, so a round may carry several steps of one chain:
//! each chain offers a tree of proposals (see [`Sampler::set_speculation`]). The root is its next
//! proposal; below each proposal come the proposal of the step after it if it is rejected and
//! the one if it is accepted, each computed from the random draws of that step along that
//! history (adaptation included). Nodes are chosen most probable first from the chain's recent
//! acceptance rate, and the chain advances down the tree for as long as its decisions stay inside
//! it. Every proposal is the one the chain would make one step at a time, so the output is the
//! same whatever the speculation; only the number of round trips changes.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

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
    /// Proposals whose energy was NaN or infinite (rejected).
    pub invalid: u64,
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
    /// Inverse temperatures of the ladder, coldest (1) first; shared by all stacks.
    betas: Vec<f64>,
    /// Swap statistics per adjacent pair since the ladder last adapted.
    ladder_window: LadderWindow,
    /// Steps completed by every chain: the start of the current window between boundaries.
    step: u64,
    initialised: bool,
    /// Points each chain may offer per round (1: no speculation). Runtime only: the output does
    /// not depend on it.
    #[serde(default = "one")]
    speculation: usize,
    /// No chain steps beyond this (the run's length).
    #[serde(default = "no_horizon")]
    horizon: u64,
}

fn one() -> usize {
    1
}

fn no_horizon() -> u64 {
    u64::MAX
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chain {
    state: Vec<f64>,
    energy: f64,
    log_sigma: f64,
    rng: Xoshiro256PlusPlus,
    stats: ChainStats,
    /// Steps this chain has taken.
    step: u64,
    /// Random numbers drawn for upcoming steps (normal vector, uniform), next step first.
    draws: VecDeque<(Vec<f64>, f64)>,
    /// This round's proposals, rebuilt after every round.
    #[serde(default)]
    tree: Tree,
    /// States after each step since the window started, for the tiers' moments.
    window_states: Vec<Vec<f64>>,
    /// The decision at the boundary step, for its row.
    boundary_accepted: bool,
    /// Smoothed acceptance, to predict decisions.
    accept_ewma: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LadderWindow {
    attempted: Vec<u64>,
    accepted: Vec<u64>,
    swap_steps: u64,
    updates: u64,
}

/// Swap steps whose statistics one ladder update uses: single attempts are too noisy.
const LADDER_WINDOW: u64 = 25;

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

/// Running moments of one temperature tier's samples (all stacks), for the proposal covariance.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tier {
    n: u64,
    mean: Vec<f64>,
    /// Sum of outer products of deviations (row-major d × d).
    comoment: Vec<f64>,
    /// Lower Cholesky factor of the proposal covariance (row-major d × d).
    cholesky: Vec<f64>,
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
            .map(|_| Tier {
                n: 0,
                mean: vec![0.0; d],
                comoment: vec![0.0; d * d],
                cholesky: diagonal(&initial_sd),
            })
            .collect();
        let betas = geometric_ladder(settings.n_temperatures, settings.max_temperature);
        Sampler {
            settings,
            chains,
            stacks,
            tiers,
            betas,
            ladder_window: LadderWindow::default(),
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
    /// round, then each chain's proposals (see the module documentation).
    pub fn points(&self) -> impl Iterator<Item = &[f64]> {
        let d = self.settings.min.len();
        let initial = (!self.initialised).then(|| self.chains.iter().map(|c| c.state.as_slice()));
        let speculative = self.initialised.then(|| {
            self.chains
                .iter()
                .flat_map(move |c| c.tree.points.chunks_exact(d))
        });
        initial
            .into_iter()
            .flatten()
            .chain(speculative.into_iter().flatten())
    }

    /// Number of points this round.
    pub fn n_points(&self) -> usize {
        if self.initialised {
            self.chains.iter().map(|c| c.tree.len()).sum()
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

    /// Round trips (cold → hot → cold) completed by the replicas of each stack.
    pub fn round_trips(&self) -> Vec<u64> {
        self.stacks.iter().map(|s| s.round_trips).collect()
    }

    /// The current inverse temperatures, coldest first.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// Takes the energies of this round's points (in [`Sampler::points`] order) and advances.
    /// Returns a row for every step any chain took (none for the initial round), each chain's
    /// rows in step order.
    pub fn complete(&mut self, energies: &[f64]) -> Vec<Row> {
        assert_eq!(energies.len(), self.n_points(), "one energy per point");
        if !self.initialised {
            for (chain, &energy) in self.chains.iter_mut().zip(energies) {
                chain.energy = energy;
            }
            self.initialised = true;
            self.speculate_all();
            return Vec::new();
        }
        let window_end = self.window_end();
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
                let accepted = chain.decide(tree.point(k), energies[offset + k], uniform, beta);
                if chain.step <= adaptation_steps {
                    chain.log_sigma = adapted(chain.log_sigma, chain.step, accepted, target);
                }
                chain.accept_ewma = 0.9 * chain.accept_ewma + if accepted { 0.1 } else { 0.0 };
                chain.window_states.push(chain.state.clone());
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
            offset += tree.len();
            // Keep the buffers for the next round.
            chain.tree = tree;
        }
        if self.chains.iter().all(|c| c.step == window_end) {
            self.close_window(window_end, &mut rows);
        }
        self.speculate_all();
        rows
    }

    /// The step at which the current window ends: the next swap, covariance refresh (while
    /// adapting) or the horizon.
    fn window_end(&self) -> u64 {
        let swap = self.settings.swap_interval;
        let refresh = refresh_interval(swap);
        let mut end = (self.step / swap + 1) * swap;
        let next_refresh = (self.step / refresh + 1) * refresh;
        if next_refresh <= self.settings.adaptation_steps {
            end = end.min(next_refresh);
        }
        end.min(self.horizon.max(self.step + 1))
    }

    /// Every chain has reached `end`: update the tiers' moments in step-then-chain order (the
    /// order in which one step at a time would), refresh covariances, swap, and emit the
    /// boundary rows.
    fn close_window(&mut self, end: u64, rows: &mut Vec<Row>) {
        let n_temps = self.settings.n_temperatures;
        let d = self.settings.min.len();
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
        let refresh = refresh_interval(self.settings.swap_interval);
        if end <= self.settings.adaptation_steps && end % refresh == 0 {
            for tier in &mut self.tiers {
                if tier.n as usize > 10 * d {
                    tier.refresh_cholesky();
                }
            }
        }
        let mut swap_types = vec![SwapType::NoAttempt; self.chains.len()];
        if end % self.settings.swap_interval == 0 {
            self.swap(&mut swap_types);
        }
        for (i, chain) in self.chains.iter().enumerate() {
            rows.push(Row {
                chain: i,
                state: chain.state.clone(),
                energy: chain.energy,
                sigma: chain.log_sigma.exp(),
                beta: self.betas[i % n_temps],
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
        let window = &mut self.ladder_window;
        window.attempted.resize(n_temps - 1, 0);
        window.accepted.resize(n_temps - 1, 0);
        window.swap_steps += 1;
        let (attempted, accepted) = (&mut window.attempted, &mut window.accepted);
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
                attempted[t] += 1;
                self.chains[cold].stats.swaps_attempted += 1;
                let kind = if ok {
                    SwapType::Accept
                } else {
                    SwapType::Reject
                };
                swap_types[cold] = kind;
                swap_types[hot] = kind;
                if ok {
                    accepted[t] += 1;
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
            let window = std::mem::take(&mut self.ladder_window);
            if self.step <= self.settings.adaptation_steps {
                self.adapt_ladder(&window.attempted, &window.accepted, window.updates);
            }
            self.ladder_window.updates = window.updates + 1;
        }
    }

    /// Moves the ladder with a shrinking step size: towards the target swap rate between
    /// neighbours (classic), or towards the schedule that spreads the communication barrier evenly
    /// (non-reversible: Syed et al. 2021, with the barrier's density estimated by the rejection
    /// rates; the hottest beta stays put). The coldest beta stays 1.
    fn adapt_ladder(&mut self, attempted: &[u64], accepted: &[u64], update: u64) {
        let gamma = adaptation_rate(update);
        let n = self.betas.len();
        let rate = |i: usize| -> Option<f64> {
            (attempted[i] > 0).then(|| accepted[i] as f64 / attempted[i] as f64)
        };
        let target_betas: Vec<f64> = match self.settings.swaps {
            Swaps::Classic => {
                // Work on log temperature gaps, which keeps the ladder ordered.
                let temps: Vec<f64> = self.betas.iter().map(|b| 1.0 / b).collect();
                let mut t = 1.0;
                let mut betas = vec![1.0];
                for i in 0..n - 1 {
                    let mut log_gap = (temps[i + 1] - temps[i]).max(1e-12).ln();
                    if let Some(rate) = rate(i) {
                        log_gap += rate - self.settings.optimal_swap_rate;
                    }
                    t += log_gap.exp();
                    betas.push(1.0 / t);
                }
                betas
            }
            Swaps::NonReversible => {
                // Cumulative barrier at each beta, then the betas at evenly spaced barrier levels.
                let mut barrier = vec![0.0];
                for i in 0..n - 1 {
                    let rejection = rate(i).map_or(0.5, |r| 1.0 - r);
                    barrier.push(barrier[i] + rejection.max(1e-3));
                }
                let total = barrier[n - 1];
                let log_betas: Vec<f64> = self.betas.iter().map(|b| b.ln()).collect();
                let mut betas = vec![1.0];
                let mut segment = 0;
                for k in 1..n - 1 {
                    let level = total * k as f64 / (n - 1) as f64;
                    while segment < n - 2 && barrier[segment + 1] < level {
                        segment += 1;
                    }
                    let span = barrier[segment + 1] - barrier[segment];
                    let fraction = ((level - barrier[segment]) / span).clamp(0.0, 1.0);
                    let log_beta = log_betas[segment]
                        + fraction * (log_betas[segment + 1] - log_betas[segment]);
                    betas.push(log_beta.exp());
                }
                betas.push(self.betas[n - 1]);
                betas
            }
        };
        // Blend in log space with the shrinking step: the ladder settles, then stays put.
        for (beta, target) in self.betas.iter_mut().zip(&target_betas).skip(1) {
            let (old, new) = (beta.ln(), target.ln());
            *beta = (old + gamma.min(1.0) * (new - old)).exp();
        }
        for i in 1..n {
            // Keep the ladder strictly decreasing whatever the estimates said.
            self.betas[i] = self.betas[i].min(self.betas[i - 1] * (1.0 - 1e-9));
        }
    }
}

impl Chain {
    /// Builds the tree of at most `budget` proposals for the next `depth` steps at most (see
    /// the module documentation). A proposal is `reflect(base + sigma · L z)`, where the base is
    /// the state along that node's history and sigma the scale that history's adaptation gives:
    /// exactly what the chain computes when it gets there one step at a time.
    fn speculate(
        &mut self,
        budget: usize,
        depth: usize,
        cholesky: &[f64],
        settings: &SamplerSettings,
    ) {
        let d = self.state.len();
        let Chain {
            tree,
            draws,
            rng,
            state,
            ..
        } = self;
        tree.clear();
        if depth == 0 {
            return;
        }
        let p = self.accept_ewma.clamp(0.05, 0.95);
        let mut seq = 0;
        tree.heap.push(Candidate {
            probability: 1.0,
            seq,
            depth: 0,
            base: NONE,
            log_sigma: self.log_sigma,
            parent: NONE,
            accepted: false,
        });
        while tree.len() < budget {
            let Some(c) = tree.heap.pop() else { break };
            let level = c.depth as usize;
            while draws.len() <= level {
                let z: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
                let uniform: f64 = rng.random();
                draws.push_back((z, uniform));
            }
            while tree.steps.len() <= level * d {
                let z = &draws[tree.steps.len() / d].0;
                tree.steps.extend(
                    (0..d).map(|i| (0..=i).map(|k| cholesky[i * d + k] * z[k]).sum::<f64>()),
                );
            }
            let node = tree.len() as u32;
            let sigma = c.log_sigma.exp();
            let start = tree.points.len();
            match c.base {
                NONE => tree.points.extend_from_slice(state),
                base => tree
                    .points
                    .extend_from_within(base as usize * d..(base as usize + 1) * d),
            }
            let step = &tree.steps[level * d..(level + 1) * d];
            for (i, x) in tree.points[start..].iter_mut().enumerate() {
                *x = reflect(*x + sigma * step[i], settings.min[i], settings.max[i]);
            }
            tree.next.push([NONE; 2]);
            if c.parent != NONE {
                tree.next[c.parent as usize][usize::from(c.accepted)] = node;
            }
            if level + 1 >= depth {
                continue;
            }
            let step = self.step + level as u64 + 1;
            for accepted in [false, true] {
                let log_sigma = if step <= settings.adaptation_steps {
                    adapted(c.log_sigma, step, accepted, settings.optimal_accept_rate)
                } else {
                    c.log_sigma
                };
                seq += 1;
                tree.heap.push(Candidate {
                    probability: c.probability * if accepted { p } else { 1.0 - p },
                    seq,
                    depth: c.depth + 1,
                    base: if accepted { node } else { c.base },
                    log_sigma,
                    parent: node,
                    accepted,
                });
            }
        }
        tree.heap.clear();
    }

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

impl Tier {
    fn observe(&mut self, x: &[f64]) {
        let d = x.len();
        self.n += 1;
        let n = self.n as f64;
        let delta: Vec<f64> = x.iter().zip(&self.mean).map(|(x, m)| x - m).collect();
        for (m, dx) in self.mean.iter_mut().zip(&delta) {
            *m += dx / n;
        }
        for (row, di) in self.comoment.chunks_exact_mut(d).zip(&delta) {
            for ((c, xj), mj) in row.iter_mut().zip(x).zip(&self.mean) {
                *c += di * (xj - mj);
            }
        }
    }

    /// The proposal covariance is the sample covariance scaled by 2.38²/d (Roberts, Gelman &
    /// Gilks 1997), regularised so that it stays positive definite.
    fn refresh_cholesky(&mut self) {
        let d = self.mean.len();
        let scale = 2.38 * 2.38 / d as f64 / (self.n as f64 - 1.0);
        let mut cov: Vec<f64> = self.comoment.iter().map(|c| c * scale).collect();
        for i in 0..d {
            cov[i * d + i] += 1e-10 + 1e-6 * cov[i * d + i].abs();
        }
        if let Some(l) = cholesky(&cov, d) {
            self.cholesky = l;
        }
    }
}

/// Steps between refreshes of the proposal covariances while adapting.
fn refresh_interval(swap_interval: u64) -> u64 {
    swap_interval.max(10)
}

/// Step size of diminishing adaptation at step `t`.
fn adaptation_rate(t: u64) -> f64 {
    (1.0 + t as f64).powf(-0.6)
}

/// The proposal scale after a step's adaptation: Robbins–Monro towards the target rate.
fn adapted(log_sigma: f64, step: u64, accepted: bool, target: f64) -> f64 {
    let indicator = if accepted { 1.0 } else { 0.0 };
    (log_sigma + adaptation_rate(step) * (indicator - target)).clamp(-20.0, 5.0)
}

/// No node (`u32` indices keep the tree small).
const NONE: u32 = u32::MAX;

/// One chain's proposals for a round: node 0 is its next step; each node's children are the
/// next step's proposal if the node is rejected and if it is accepted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tree {
    /// Node k's proposal is `points[k * d..(k + 1) * d]`.
    points: Vec<f64>,
    /// Node k's children, if rejected and if accepted ([`NONE`] when not in the tree).
    next: Vec<[u32; 2]>,
    /// `L z` of each step ahead, `d` values per step, computed as the tree reaches it.
    #[serde(skip)]
    steps: Vec<f64>,
    /// Nodes not yet in the tree, most probable first.
    #[serde(skip)]
    heap: BinaryHeap<Candidate>,
}

impl Tree {
    fn clear(&mut self) {
        self.points.clear();
        self.next.clear();
        self.steps.clear();
        self.heap.clear();
    }

    fn len(&self) -> usize {
        self.next.len()
    }

    fn point(&self, node: usize) -> &[f64] {
        let d = self.points.len() / self.next.len();
        &self.points[node * d..(node + 1) * d]
    }

    fn child(&self, node: usize, accepted: bool) -> Option<usize> {
        let child = self.next[node][usize::from(accepted)];
        (child != NONE).then_some(child as usize)
    }
}

/// A node that could join a tree.
#[derive(Debug, Clone)]
struct Candidate {
    /// Chance that the chain's path passes through it.
    probability: f64,
    /// Order of creation: ties go to the earlier, so trees are deterministic.
    seq: u32,
    /// Steps ahead of the chain's next step.
    depth: u32,
    /// The node whose proposal is this one's starting state ([`NONE`]: the chain's state).
    base: u32,
    /// Proposal scale along its history.
    log_sigma: f64,
    /// Its parent node ([`NONE`] for the root), and on which decision it follows.
    parent: u32,
    accepted: bool,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.probability
            .total_cmp(&other.probability)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Betas for temperatures geometric from 1 to `max_temperature`.
fn geometric_ladder(n: usize, max_temperature: f64) -> Vec<f64> {
    if n == 1 {
        return vec![1.0];
    }
    (0..n)
        .map(|i| max_temperature.powf(-(i as f64) / (n - 1) as f64))
        .collect()
}

/// Folds `x` back into `[min, max]` by reflecting at the bounds.
fn reflect(x: f64, min: f64, max: f64) -> f64 {
    if (min..=max).contains(&x) {
        return x;
    }
    // One reflection covers nearly every overshoot without a floating-point remainder.
    let width = max - min;
    if x > max && x - max <= width {
        return max - (x - max);
    }
    if x < min && min - x <= width {
        return min + (min - x);
    }
    if !x.is_finite() {
        return min + (max - min) / 2.0;
    }
    let y = (x - min).rem_euclid(2.0 * width);
    min + if y > width { 2.0 * width - y } else { y }
}

fn diagonal(sd: &[f64]) -> Vec<f64> {
    let d = sd.len();
    let mut m = vec![0.0; d * d];
    for i in 0..d {
        m[i * d + i] = sd[i];
    }
    m
}

/// Lower Cholesky factor of a symmetric positive-definite matrix, or `None`.
fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - sum;
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i * d + j] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - sum) / l[j * d + j];
            }
        }
    }
    Some(l)
}

#[cfg(test)]
mod tests;
