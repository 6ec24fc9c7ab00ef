//! A chain's proposals for one round: the tree of its possible next steps, most probable first
//! (see the sampler's module documentation).
//!
//! A proposal outside the bounds is part of the tree but is never evaluated: the target is zero
//! there, so it is rejected whatever its energy, and only its "rejected" branch goes on.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::adaptation::{adaptation_rate, adapted_at_rate};
use super::{Chain, SamplerSettings};

/// No node (`u32` indices keep the tree small).
const NONE: u32 = u32::MAX;

/// One chain's proposals for a round: node 0 is its next step; each node's children are the
/// next step's proposal if the node is rejected and if it is accepted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Tree {
    /// The proposals to evaluate, `d` values each, in node order.
    points: Vec<f64>,
    /// Node k's proposal is `points[slot[k] * d..]`, or outside the bounds ([`NONE`]).
    slot: Vec<u32>,
    /// Node k's children, if rejected and if accepted ([`NONE`] when not in the tree).
    next: Vec<[u32; 2]>,
    /// `L z` of each step ahead, `d` values per step, computed as the tree reaches it.
    #[serde(skip)]
    steps: Vec<f64>,
    /// The scale's adaptation rate after each step ahead, computed as the tree reaches it
    /// (`powf` per node was a tenth of a cheap run's driver thread).
    #[serde(skip)]
    rates: Vec<f64>,
    /// Nodes not yet in the tree, most probable first.
    #[serde(skip)]
    heap: BinaryHeap<Candidate>,
}

impl Tree {
    fn clear(&mut self) {
        self.points.clear();
        self.slot.clear();
        self.next.clear();
        self.steps.clear();
        self.rates.clear();
        self.heap.clear();
    }

    /// Nodes, evaluated or not.
    pub(super) fn len(&self) -> usize {
        self.next.len()
    }

    /// The proposals to evaluate, `d` values each.
    pub(super) fn points(&self) -> &[f64] {
        &self.points
    }

    /// Proposals to evaluate.
    pub(super) fn n_evaluated(&self, d: usize) -> usize {
        self.points.len() / d.max(1)
    }

    /// Node `node`'s index among the evaluated proposals, or `None` if it lies outside the
    /// bounds.
    pub(super) fn slot(&self, node: usize) -> Option<usize> {
        let slot = self.slot[node];
        (slot != NONE).then_some(slot as usize)
    }

    /// Evaluated proposal `slot`.
    pub(super) fn point(&self, slot: usize, d: usize) -> &[f64] {
        &self.points[slot * d..(slot + 1) * d]
    }

    pub(super) fn child(&self, node: usize, accepted: bool) -> Option<usize> {
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
    /// The evaluated proposal that is this one's starting state ([`NONE`]: the chain's state).
    base: u32,
    /// Proposal scale along its history, and its exponential when already known (NaN: not
    /// yet; after adaptation every node shares the chain's).
    log_sigma: f64,
    sigma: f64,
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

impl Chain {
    /// Builds the tree of at most `budget` proposals to evaluate for the next `depth` steps at
    /// most. A proposal is `base + sigma · L z`, where the base is the state along that node's
    /// history and sigma the scale that history's adaptation gives: exactly what the chain
    /// computes when it gets there one step at a time.
    pub(super) fn speculate(
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
            sigma: self.log_sigma.exp(),
            parent: NONE,
            accepted: false,
        });
        let mut proposal = vec![0.0; d];
        while tree.n_evaluated(d) < budget {
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
            let sigma = if c.sigma.is_nan() {
                c.log_sigma.exp()
            } else {
                c.sigma
            };
            let base = match c.base {
                NONE => state.as_slice(),
                slot => &tree.points[slot as usize * d..(slot as usize + 1) * d],
            };
            let step = &tree.steps[level * d..(level + 1) * d];
            for (i, x) in proposal.iter_mut().enumerate() {
                *x = base[i] + sigma * step[i];
            }
            let inside = proposal
                .iter()
                .zip(settings.min.iter().zip(&settings.max))
                .all(|(x, (lo, hi))| (lo..=hi).contains(&x));
            let node = tree.len() as u32;
            let slot = if inside {
                let slot = tree.n_evaluated(d) as u32;
                tree.points.extend_from_slice(&proposal);
                slot
            } else {
                NONE
            };
            tree.slot.push(slot);
            tree.next.push([NONE; 2]);
            if c.parent != NONE {
                tree.next[c.parent as usize][usize::from(c.accepted)] = node;
            }
            if level + 1 >= depth {
                continue;
            }
            let step = self.step + level as u64 + 1;
            let adapting = step <= settings.adaptation_steps;
            if adapting {
                while tree.rates.len() <= level {
                    let t = self.step + tree.rates.len() as u64 + 1 - self.adapt_origin;
                    tree.rates.push(adaptation_rate(t));
                }
            }
            // Outside the bounds the proposal is rejected for sure.
            let outcomes: &[bool] = if inside { &[false, true] } else { &[false] };
            for &accepted in outcomes {
                let (log_sigma, sigma) = if adapting {
                    let rate = tree.rates[level];
                    let log_sigma =
                        adapted_at_rate(c.log_sigma, rate, accepted, settings.optimal_accept_rate);
                    (log_sigma, f64::NAN)
                } else {
                    (c.log_sigma, sigma)
                };
                let chance = match (inside, accepted) {
                    (false, _) => 1.0,
                    (true, true) => p,
                    (true, false) => 1.0 - p,
                };
                seq += 1;
                tree.heap.push(Candidate {
                    probability: c.probability * chance,
                    seq,
                    depth: c.depth + 1,
                    base: if accepted { slot } else { c.base },
                    log_sigma,
                    sigma,
                    parent: node,
                    accepted,
                });
            }
        }
        tree.heap.clear();
    }
}
