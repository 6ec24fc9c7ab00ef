//! How chains move: walking their proposals with the energies that came back, making new ones,
//! and meeting other chains at swap steps, at the ends of adaptation windows and at the horizon.
//!
//! Everything that combines chains happens when all of them are there and goes in a fixed
//! order (pairs hottest first, tiers' moments in stack order), so that it does not depend on
//! which chain got there first.

use rand::Rng;

use super::adaptation::{adapted, Moments, Tier};
use super::ladder::{self, PairCounts};
use super::{Early, Phase, Row, Sampler, SwapType, Swaps};

impl Sampler {
    /// Applies chain `c`'s energies to its request: its start, or its walk down its tree.
    pub(super) fn apply(&mut self, c: usize, energies: &[f64], rows: &mut Vec<Row>) {
        let chain = &mut self.chains[c];
        chain.handed_out = false;
        match chain.phase {
            Phase::Starting => {
                // An impossible start: any possible proposal is accepted, and it is counted.
                let energy = energies[0];
                chain.energy = if energy.is_finite() {
                    energy
                } else {
                    chain.stats.invalid += 1;
                    f64::INFINITY
                };
                chain.phase = Phase::Proposing;
                self.ready.push_back(c);
            }
            Phase::Proposing => self.walk(c, energies, rows),
            // Held until its partner comes: the swap decides whether they are walked.
            Phase::Waiting if chain.early == Early::Asked => {
                chain.early = Early::Answered(energies.to_vec());
            }
            Phase::Waiting | Phase::Stopped => panic!("chain {c} asked for no evaluation"),
        }
    }

    /// Makes new proposals for every chain that needs them, and walks those whose early
    /// energies turned out to be needed. (A chain whose proposals all fall outside the bounds
    /// asks for no point; its request is completed with no energies.)
    pub(super) fn settle(&mut self, rows: &mut Vec<Row>) {
        while let Some(c) = self.ready.pop_front() {
            if self.chains[c].phase != Phase::Proposing || self.chains[c].handed_out {
                continue;
            }
            if let Early::Answered(energies) = std::mem::take(&mut self.chains[c].early) {
                self.walk(c, &energies, rows);
                continue;
            }
            if self.chains[c].step >= self.horizon {
                self.chains[c].phase = Phase::Stopped;
                continue;
            }
            self.propose(c);
        }
    }

    /// Builds chain `c`'s proposals from its state, up to the next step where it meets others.
    fn propose(&mut self, c: usize) {
        let depth = (self.stop(c) - self.chains[c].step) as usize;
        let tier = c % self.settings.n_temperatures;
        let chain = &mut self.chains[c];
        chain.generation += 1;
        chain.speculate(
            self.speculation,
            depth,
            &self.tiers[tier].cholesky,
            &self.settings,
        );
    }

    /// The next step after chain `c`'s where it meets other chains, or the horizon.
    fn stop(&self, c: usize) -> u64 {
        let step = self.chains[c].step;
        let swap = self.settings.swap_interval;
        let mut stop = (step / swap + 1) * swap;
        if let Some(sync) = self.schedule.next_sync(step) {
            stop = stop.min(sync);
        }
        stop.min(self.horizon.max(step + 1))
    }

    /// Walks chain `c` down its tree with the energies of its evaluated nodes, as far as its
    /// decisions stay in the tree; at the step where it meets others it waits.
    fn walk(&mut self, c: usize, energies: &[f64], rows: &mut Vec<Row>) {
        let d = self.settings.min.len();
        let stop = self.stop(c);
        let beta = self.betas[c % self.settings.n_temperatures];
        let adaptation_steps = self.settings.adaptation_steps;
        let target = self.settings.optimal_accept_rate;
        let chain = &mut self.chains[c];
        let tree = std::mem::take(&mut chain.tree);
        let mut node = (tree.len() > 0).then_some(0);
        let mut arrived = false;
        while let Some(k) = node {
            let (_, uniform) = chain.draws.pop_front().expect("a draw per speculated step");
            chain.step += 1;
            let accepted = match tree.slot(k) {
                Some(slot) => chain.decide(tree.point(slot, d), energies[slot], uniform, beta),
                None => chain.reject_outside(),
            };
            if chain.step <= adaptation_steps {
                let t = chain.step - chain.adapt_origin;
                chain.log_sigma = adapted(chain.log_sigma, t, accepted, target);
            }
            chain.accept_ewma = 0.9 * chain.accept_ewma + if accepted { 0.1 } else { 0.0 };
            if self.schedule.observes(chain.step) {
                chain.window.observe(&chain.state);
            }
            if chain.step == stop {
                // Its row waits for the chains it meets.
                chain.boundary_accepted = accepted;
                arrived = true;
                break;
            }
            rows.push(chain.row(c, beta, accepted, SwapType::NoAttempt));
            node = tree.child(k, accepted);
        }
        // Keep the buffers for the next proposals.
        chain.tree = tree;
        if arrived {
            chain.phase = Phase::Waiting;
            self.arrive(c, rows);
        } else {
            self.ready.push_back(c);
        }
    }

    /// Chain `c` waits at its step: if the chains it meets there are all waiting too, they meet.
    fn arrive(&mut self, c: usize, rows: &mut Vec<Row>) {
        let s = self.chains[c].step;
        let n_temps = self.settings.n_temperatures;
        let waiting = |chain: usize| {
            let x = &self.chains[chain];
            x.phase == Phase::Waiting && x.step == s
        };
        if self.schedule.syncs_at(s) {
            if (0..self.chains.len()).all(waiting) {
                self.meet_all(s, rows);
            }
            return;
        }
        let (stack, t) = (c / n_temps, c % n_temps);
        if n_temps < 2 || s % self.settings.swap_interval != 0 {
            // The horizon.
            self.release(c, SwapType::NoAttempt, self.betas[t], false, rows);
            return;
        }
        let base = stack * n_temps;
        match self.settings.swaps {
            Swaps::Classic => {
                if (base..base + n_temps).all(waiting) {
                    let kinds = self.swap_stack(stack, s);
                    let betas = self.betas.clone();
                    self.release_stack(stack, &kinds, &betas, rows);
                }
            }
            Swaps::NonReversible => match self.nonreversible_pair(s, t) {
                None => self.release(c, SwapType::NoAttempt, self.betas[t], true, rows),
                Some(pair) => {
                    if waiting(base + pair) && waiting(base + pair + 1) {
                        let kind = self.swap_pair(stack, pair, s);
                        let betas = (self.betas[pair], self.betas[pair + 1]);
                        self.release(base + pair + 1, kind, betas.1, true, rows);
                        self.release(base + pair, kind, betas.0, true, rows);
                    } else if self.speculation > 1 && s < self.horizon {
                        // Its partner is behind: ask now for what it proposes if it keeps its
                        // state. Only here: at a global sync its scale and covariance may change.
                        self.propose(c);
                        self.chains[c].early = Early::Asked;
                        self.chains[c].handed_out = false;
                    }
                }
            },
        }
    }

    /// The pair `(p, p + 1)` that position `t` belongs to at swap step `s` under non-reversible
    /// swaps (even pairs on odd-numbered swap steps, odd pairs on even ones), if any.
    fn nonreversible_pair(&self, s: u64, t: usize) -> Option<usize> {
        [t.checked_sub(1), Some(t)]
            .into_iter()
            .flatten()
            .find(|&p| self.attempted(s, p))
    }

    /// Whether pair `(p, p + 1)` attempts a non-reversible swap at swap step `s`.
    fn attempted(&self, s: u64, p: usize) -> bool {
        let parity = ((s / self.settings.swap_interval - 1) % 2) as usize;
        p % 2 == parity && p + 1 < self.settings.n_temperatures
    }

    /// Every chain is at step `s`, the end of the first buffer or of a covariance window:
    /// re-estimate the covariances, swap if it is a swap step, adapt the ladder, release all.
    fn meet_all(&mut self, s: u64, rows: &mut Vec<Row>) {
        let n_temps = self.settings.n_temperatures;
        let d = self.settings.min.len();
        if self.schedule.ends_at(s) {
            for t in 0..n_temps {
                let mut window = Moments::new(d);
                for chain in self.chains.iter().skip(t).step_by(n_temps) {
                    window.merge(&chain.window);
                }
                if !Tier::enough(&window) {
                    continue;
                }
                let refreshed = self.tiers[t].refresh(&window);
                for chain in self.chains.iter_mut().skip(t).step_by(n_temps) {
                    chain.window.clear();
                    if refreshed {
                        // The scale was tuned to the old covariance: start its adaptation afresh.
                        chain.log_sigma = 0.0;
                        chain.adapt_origin = s;
                    }
                }
            }
        }
        let betas = self.betas.clone();
        let swap_step = n_temps >= 2 && s % self.settings.swap_interval == 0;
        let kinds: Vec<Vec<SwapType>> = (0..self.stacks.len())
            .map(|stack| {
                if !swap_step {
                    return vec![SwapType::NoAttempt; n_temps];
                }
                match self.settings.swaps {
                    Swaps::Classic => self.swap_stack(stack, s),
                    Swaps::NonReversible => {
                        let mut kinds = vec![SwapType::NoAttempt; n_temps];
                        for pair in (0..n_temps - 1).rev() {
                            if self.attempted(s, pair) {
                                let kind = self.swap_pair(stack, pair, s);
                                kinds[pair] = kind;
                                kinds[pair + 1] = kind;
                            }
                        }
                        kinds
                    }
                }
            })
            .collect();
        if n_temps >= 2 && s <= self.settings.adaptation_steps {
            let counts =
                std::mem::replace(&mut self.ladder_counts, PairCounts::with_pairs(n_temps - 1));
            ladder::adapt(
                &mut self.betas,
                self.settings.swaps,
                self.settings.optimal_swap_rate,
                &counts,
                self.ladder_updates,
            );
            self.ladder_updates += 1;
        }
        for (stack, kinds) in kinds.iter().enumerate() {
            if swap_step {
                self.release_stack(stack, kinds, &betas, rows);
            } else {
                for t in (0..n_temps).rev() {
                    self.release(stack * n_temps + t, kinds[t], betas[t], false, rows);
                }
            }
        }
    }

    /// Classic swaps at step `s`: every pair of the stack, hottest first; each chain's swap
    /// type is that of the last pair it was in.
    fn swap_stack(&mut self, stack: usize, s: u64) -> Vec<SwapType> {
        let n_temps = self.settings.n_temperatures;
        let mut kinds = vec![SwapType::NoAttempt; n_temps];
        for pair in (0..n_temps - 1).rev() {
            let kind = self.swap_pair(stack, pair, s);
            kinds[pair] = kind;
            kinds[pair + 1] = kind;
        }
        kinds
    }

    /// Releases the chains of a stack that met at a swap step, hottest first (so that a
    /// replica counted at the top is counted before one at the bottom, as one step at a time).
    fn release_stack(
        &mut self,
        stack: usize,
        kinds: &[SwapType],
        betas: &[f64],
        rows: &mut Vec<Row>,
    ) {
        let n_temps = self.settings.n_temperatures;
        for t in (0..n_temps).rev() {
            self.release(stack * n_temps + t, kinds[t], betas[t], true, rows);
        }
    }

    /// Attempts the swap of pair `(p, p + 1)` of `stack` at step `s`, with the pair's own
    /// random stream.
    fn swap_pair(&mut self, stack: usize, p: usize, s: u64) -> SwapType {
        let n_temps = self.settings.n_temperatures;
        let (cold, hot) = (stack * n_temps + p, stack * n_temps + p + 1);
        let draw: f64 = self.stacks[stack].pair_rngs[p].random();
        let log_ratio = (self.betas[p] - self.betas[p + 1])
            * (self.chains[cold].energy - self.chains[hot].energy);
        let ok = log_ratio >= 0.0 || draw.ln() < log_ratio;
        self.ladder_counts.record(p, ok);
        if s > self.settings.adaptation_steps {
            self.fixed_ladder_swaps.record(p, ok);
        }
        self.chains[cold].stats.swaps_attempted += 1;
        if !ok {
            return SwapType::Reject;
        }
        self.chains[cold].stats.swaps_accepted += 1;
        let (a, b) = self.chains.split_at_mut(hot);
        std::mem::swap(&mut a[cold].state, &mut b[0].state);
        std::mem::swap(&mut a[cold].energy, &mut b[0].energy);
        self.stacks[stack].replica_at.swap(p, p + 1);
        SwapType::Accept
    }

    /// Emits the held row of chain `c` and lets it go on (or stop, at the horizon). After a
    /// swap step, a replica that reached the hottest temperature turns round, and one back at
    /// the coldest after that has made a round trip.
    fn release(
        &mut self,
        c: usize,
        swap_type: SwapType,
        beta: f64,
        swap_step: bool,
        rows: &mut Vec<Row>,
    ) {
        let n_temps = self.settings.n_temperatures;
        let chain = &mut self.chains[c];
        rows.push(chain.row(c, beta, chain.boundary_accepted, swap_type));
        if swap_type == SwapType::Accept && chain.early != Early::None {
            // Its state is its partner's now: what it asked for ahead is of no use.
            chain.early = Early::None;
            chain.generation += 1;
            chain.handed_out = false;
        }
        if chain.step >= self.horizon {
            chain.phase = Phase::Stopped;
            if chain.early != Early::None {
                chain.early = Early::None;
                chain.generation += 1;
                chain.handed_out = false;
            }
        } else if chain.early == Early::Asked {
            // Its proposals are asked for already; their energies walk it when they come.
            chain.phase = Phase::Proposing;
            chain.early = Early::None;
        } else {
            // Answered early ones are walked by `settle`.
            chain.phase = Phase::Proposing;
            self.ready.push_back(c);
        }
        if swap_step && n_temps >= 2 {
            let (stack, t) = (&mut self.stacks[c / n_temps], c % n_temps);
            if t == n_temps - 1 {
                let hot = stack.replica_at[t];
                stack.heading_hot[hot] = false;
            }
            if t == 0 {
                let cold = stack.replica_at[0];
                if !stack.heading_hot[cold] {
                    stack.heading_hot[cold] = true;
                    stack.round_trips += 1;
                }
            }
        }
    }
}
