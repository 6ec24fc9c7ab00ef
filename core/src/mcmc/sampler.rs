//! The parallel-tempering Metropolis–Hastings sampler as a state machine.
//!
//! Each chain advances on its own. It asks for points to evaluate (its starting state, then its
//! proposals), the driver evaluates them (the negative log-likelihood summed over the job types,
//! in any order, on any workers) and hands the energies back, and the chain moves on until it
//! reaches a step where it meets other chains:
//!
//! - a swap step (every `swap_interval`), with the neighbour it may exchange states with:
//!   non-reversible swaps pair each chain with at most one neighbour per swap step, so two
//!   chains meet; Stateline's classic scheme has every pair of the stack attempt in turn, so the
//!   stack meets; a chain in no attempted pair passes the step alone;
//! - while adapting, the end of each adaptation window (see `adaptation`), where every chain
//!   meets: the temperature tiers' covariances and the ladder are re-estimated there;
//! - the horizon, the run's last step.
//!
//! A chain never waits for chains it does not meet, so on workers of uneven speed, or with
//! likelihood costs that vary, the slots stay busy. Every random number comes from a stream
//! owned by one chain (or one pair of neighbours, for swaps), and everything that combines
//! chains is done when all of them are there, in a fixed order: the output is a function of the
//! seed alone, not of the number of workers, their speed, or the order in which results arrive.
//! Drivers either take each chain's request as it comes ([`Sampler::take_requests`],
//! [`Sampler::complete_chain`]) or every pending point at once ([`Sampler::points`],
//! [`Sampler::complete`]); the rows are the same.
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
//! Between the steps where it meets others a chain depends on nothing but its own stream, so a
//! request may carry several of its steps: a tree of proposals (see [`Sampler::set_speculation`]).
//! The root is its next proposal; below each proposal come the proposal of the step after it if
//! it is rejected and the one if it is accepted, each computed from the random draws of that
//! step along that history (adaptation included). Nodes are chosen most probable first from the
//! chain's recent acceptance rate, and the chain advances down the tree for as long as its
//! decisions stay inside it. Every proposal is the one the chain would make one step at a time,
//! so the output is the same whatever the speculation; only the number of round trips changes.

mod adaptation;
mod flow;
mod ladder;
mod tree;

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use adaptation::{Moments, Schedule, Tier};
pub use ladder::PairCounts;
use tree::Tree;

/// The version of the sampling algorithm. A checkpoint written by another version is refused
/// rather than resumed into a different sampler.
///
/// Version 2: proposals outside the bounds are rejected (version 1 reflected them); proposal
/// covariances are estimated over windows that forget the start (version 1 used every draw
/// since step 0); chains advance on their own between the steps where they meet, and swaps
/// draw from a stream per pair of neighbours.
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
    /// When the chains meet to re-estimate the covariances and the ladder.
    schedule: Schedule,
    /// Inverse temperatures of the ladder, coldest (1) first; shared by all stacks.
    betas: Vec<f64>,
    /// Swaps of each adjacent pair since the ladder last adapted, all stacks.
    ladder_counts: PairCounts,
    /// Ladder updates so far.
    ladder_updates: u64,
    /// Swap statistics per adjacent pair after adaptation, with the ladder fixed.
    fixed_ladder_swaps: PairCounts,
    /// Points each chain may offer per request (1: no speculation). Runtime only: the output
    /// does not depend on it.
    speculation: usize,
    /// No chain steps beyond this (the run's length).
    horizon: u64,
    /// Chains that need new proposals; emptied before any public call returns.
    #[serde(skip)]
    ready: VecDeque<usize>,
}

/// What a chain waiting for its swap partner has asked for ahead.
///
/// With speculation on (a cheap likelihood), a chain that reaches a non-reversible swap step
/// before its partner asks at once for the proposals it will make after the swap if it keeps
/// its own state, as it does unless the swap is accepted: its tree depends only on its state,
/// its own random draws and its scale, and nothing else changes at a pair's swap. If the swap
/// goes through, the early request is dropped (its energies, arriving or not, are ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
enum Early {
    /// Nothing asked ahead.
    #[default]
    None,
    /// Its tree awaits its energies.
    Asked,
    /// Its tree's energies are in, held until the swap.
    Answered(Vec<f64>),
}

/// Where a chain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    /// Its starting state awaits its energy.
    Starting,
    /// Its proposals (its tree) await their energies.
    Proposing,
    /// At a step where it meets other chains, its row held until they are all there.
    Waiting,
    /// At the horizon.
    Stopped,
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
    phase: Phase,
    /// Whether its request is with the driver (not serialised: a restored sampler asks again).
    #[serde(skip)]
    handed_out: bool,
    /// Counts its requests, so that the energies of one it no longer needs are recognised.
    #[serde(default)]
    generation: u64,
    /// While it waits for its swap partner: the proposals it will make if its state stays its
    /// own (see [`Early`]).
    #[serde(default)]
    early: Early,
    /// Random numbers drawn for upcoming steps (normal vector, uniform), next step first.
    draws: VecDeque<(Vec<f64>, f64)>,
    /// Its proposals, while proposing.
    tree: Tree,
    /// The moments of its states in the current covariance window.
    window: Moments,
    /// The decision at the step it waits at, for its row.
    boundary_accepted: bool,
    /// Smoothed acceptance, to predict decisions.
    accept_ewma: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stack {
    /// One stream per adjacent pair `(t, t + 1)`, for its swap decisions.
    pair_rngs: Vec<Xoshiro256PlusPlus>,
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
        let n_temps = settings.n_temperatures;
        let n_chains = settings.n_stacks * n_temps;
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
                    phase: Phase::Starting,
                    handed_out: false,
                    generation: 0,
                    early: Early::None,
                    draws: VecDeque::new(),
                    tree: Tree::default(),
                    window: Moments::new(d),
                    boundary_accepted: false,
                    accept_ewma: 0.0,
                }
            })
            .collect();
        let stacks = (0..settings.n_stacks)
            .map(|_| Stack {
                pair_rngs: (1..n_temps).map(|_| stream()).collect(),
                replica_at: (0..n_temps).collect(),
                heading_hot: vec![true; n_temps],
                round_trips: 0,
            })
            .collect();
        let initial_sd: Vec<f64> = (0..d)
            .map(|i| (settings.max[i] - settings.min[i]) / 20.0)
            .collect();
        let tiers = (0..n_temps).map(|_| Tier::new(&initial_sd)).collect();
        let betas = ladder::geometric(n_temps, settings.max_temperature);
        let pairs = n_temps.saturating_sub(1);
        Sampler {
            schedule: Schedule::new(settings.adaptation_steps),
            settings,
            chains,
            stacks,
            tiers,
            betas,
            ladder_counts: PairCounts::with_pairs(pairs),
            ladder_updates: 0,
            fixed_ladder_swaps: PairCounts::with_pairs(pairs),
            speculation: 1,
            horizon: u64::MAX,
            ready: VecDeque::new(),
        }
    }

    /// The settings this sampler runs with.
    pub fn settings(&self) -> &SamplerSettings {
        &self.settings
    }

    /// Steps completed by every chain.
    pub fn step(&self) -> u64 {
        self.chains.iter().map(|c| c.step).min().unwrap_or(0)
    }

    /// Steps chain `chain` has completed.
    pub fn chain_step(&self, chain: usize) -> u64 {
        self.chains[chain].step
    }

    /// Whether every chain has reached the horizon.
    pub fn is_finished(&self) -> bool {
        self.chains.iter().all(|c| c.phase == Phase::Stopped)
    }

    /// Chains whose points await evaluation and were not handed out since they were made (or
    /// since this sampler was restored), in chain order, each with its request's generation;
    /// each is now handed out. Evaluate [`request`](Self::request) of each and give the
    /// energies, with the generation, to [`complete_chain`](Self::complete_chain). A request
    /// may hold no point (every proposal fell outside the bounds): complete it with no
    /// energies.
    pub fn take_requests(&mut self) -> Vec<(usize, u64)> {
        let mut taken = Vec::new();
        for (i, chain) in self.chains.iter_mut().enumerate() {
            if chain.asks() && !chain.handed_out {
                chain.handed_out = true;
                taken.push((i, chain.generation));
            }
        }
        taken
    }

    /// The points chain `chain` asks to be evaluated, `d` values each (empty if none).
    pub fn request(&self, chain: usize) -> &[f64] {
        let c = &self.chains[chain];
        match c.phase {
            Phase::Starting => &c.state,
            Phase::Proposing => c.tree.points(),
            Phase::Waiting if c.early == Early::Asked => c.tree.points(),
            Phase::Waiting | Phase::Stopped => &[],
        }
    }

    /// Takes the energies of chain `chain`'s request of generation `generation` (in
    /// [`request`](Self::request) order) and advances it, and any chain it meets, as far as
    /// they can go. Returns every row that became final, each chain's in step order. The
    /// energies of a request the chain no longer needs (an earlier generation) are ignored.
    pub fn complete_chain(&mut self, chain: usize, generation: u64, energies: &[f64]) -> Vec<Row> {
        let mut rows = Vec::new();
        if self.chains[chain].generation != generation || !self.chains[chain].asks() {
            return rows;
        }
        let d = self.settings.min.len();
        assert_eq!(
            energies.len() * d,
            self.request(chain).len(),
            "one energy per point of the request"
        );
        self.apply(chain, energies, &mut rows);
        self.settle(&mut rows);
        rows
    }

    /// Every pending point, chain by chain: what [`complete`](Self::complete) takes the
    /// energies of. There may be none while chains still have requests to complete (every
    /// proposal outside the bounds).
    pub fn points(&self) -> impl Iterator<Item = &[f64]> {
        let d = self.settings.min.len().max(1);
        (0..self.chains.len()).flat_map(move |c| self.request(c).chunks_exact(d))
    }

    /// Number of pending points.
    pub fn n_points(&self) -> usize {
        let d = self.settings.min.len().max(1);
        (0..self.chains.len())
            .map(|c| self.request(c).len() / d)
            .sum()
    }

    /// Takes the energies of every pending point (in [`points`](Self::points) order) and
    /// advances every chain as far as it can go. Returns the rows that became final, each
    /// chain's in step order.
    pub fn complete(&mut self, energies: &[f64]) -> Vec<Row> {
        assert_eq!(energies.len(), self.n_points(), "one energy per point");
        let d = self.settings.min.len().max(1);
        let pending: Vec<(usize, u64, usize)> = (0..self.chains.len())
            .filter(|&c| self.chains[c].asks())
            .map(|c| (c, self.chains[c].generation, self.request(c).len() / d))
            .collect();
        let mut rows = Vec::new();
        let mut offset = 0;
        for (chain, generation, n) in pending {
            // A chain met by one completed before it may no longer need what it asked ahead.
            let current = &self.chains[chain];
            if current.generation == generation && current.asks() {
                self.apply(chain, &energies[offset..offset + n], &mut rows);
            }
            offset += n;
        }
        self.settle(&mut rows);
        rows
    }

    /// Lets each chain offer up to `points` proposals per request (at least 1), the most
    /// probable steps of its possible futures up to the next step where it meets others. Worth
    /// it when a round trip costs more than the evaluations it carries; the output does not
    /// change. Requests already handed out keep theirs.
    pub fn set_speculation(&mut self, points: usize) {
        self.speculation = points.max(1);
        self.respeculate();
    }

    /// Points each chain may offer per request.
    pub fn speculation(&self) -> usize {
        self.speculation
    }

    /// Stops every chain at `steps` steps; a larger value than before lets chains that stopped
    /// go on. Requests already handed out stay valid.
    pub fn set_horizon(&mut self, steps: u64) {
        self.horizon = steps;
        for (i, chain) in self.chains.iter_mut().enumerate() {
            if chain.phase == Phase::Stopped && chain.step < steps {
                chain.phase = Phase::Proposing;
                self.ready.push_back(i);
            }
        }
        self.respeculate();
    }

    /// Whether a checkpoint taken now captures the run exactly: always, since every chain's
    /// state matches the rows it has emitted, and requests in flight are asked for again by a
    /// restored sampler.
    pub fn at_boundary(&self) -> bool {
        true
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

    /// Rebuilds the proposals of chains whose request is not with the driver.
    fn respeculate(&mut self) {
        for (i, chain) in self.chains.iter().enumerate() {
            if chain.phase == Phase::Proposing && !chain.handed_out {
                self.ready.push_back(i);
            }
        }
        let mut rows = Vec::new();
        self.settle(&mut rows);
        debug_assert!(rows.is_empty(), "making proposals emits no row");
    }
}

impl Chain {
    /// Its output row for this step, as chain `c` at inverse temperature `beta`.
    fn row(&self, c: usize, beta: f64, accepted: bool, swap_type: SwapType) -> Row {
        Row {
            chain: c,
            state: self.state.clone(),
            energy: self.energy,
            sigma: self.log_sigma.exp(),
            beta,
            accepted,
            swap_type,
        }
    }

    /// Whether it asks for an evaluation: its start, its proposals, or proposals ahead.
    fn asks(&self) -> bool {
        match self.phase {
            Phase::Starting | Phase::Proposing => true,
            Phase::Waiting => self.early == Early::Asked,
            Phase::Stopped => false,
        }
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

    /// A proposal outside the bounds, where the target is zero: rejected.
    fn reject_outside(&mut self) -> bool {
        self.stats.proposals += 1;
        self.stats.out_of_bounds += 1;
        false
    }
}

#[cfg(test)]
mod tests;
