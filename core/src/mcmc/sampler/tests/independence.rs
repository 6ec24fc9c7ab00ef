//! Chains that advance on their own: completing requests in any order, holding some back, or
//! restoring the sampler with requests in flight gives the rows of one step at a time.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{gaussian, per_chain, run, settings};
use crate::mcmc::sampler::{Row, Sampler, SamplerSettings, Swaps};

/// Drives `sampler` to `steps` the way a distributed driver does: requests are taken as they
/// appear and completed in a random order; `held` chains are completed only when nothing else
/// can move. Checkpoints and restores the sampler every `restore_every` completions, if asked.
fn drive(
    s: &SamplerSettings,
    speculation: usize,
    steps: u64,
    seed: u64,
    held: &[usize],
    restore_every: Option<usize>,
) -> (Vec<Row>, usize) {
    let mut sampler = Sampler::new(s.clone());
    sampler.set_speculation(speculation);
    sampler.set_horizon(steps);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut outstanding: Vec<(usize, u64)> = Vec::new();
    let mut rows = Vec::new();
    let (mut completions, mut held_back_most) = (0, 0);
    while !sampler.is_finished() {
        outstanding.extend(sampler.take_requests());
        let free: Vec<usize> = (0..outstanding.len())
            .filter(|&i| !held.contains(&outstanding[i].0))
            .collect();
        let pick = if free.is_empty() {
            rng.random_range(0..outstanding.len())
        } else {
            free[rng.random_range(0..free.len())]
        };
        let (chain, generation) = outstanding.swap_remove(pick);
        let energies: Vec<f64> = sampler
            .request(chain)
            .chunks_exact(s.min.len())
            .map(gaussian)
            .collect();
        rows.extend(sampler.complete_chain(chain, generation, &energies));
        completions += 1;
        let ahead = (0..sampler.n_chains())
            .map(|c| sampler.chain_step(c))
            .max()
            .unwrap()
            - held
                .iter()
                .map(|&c| sampler.chain_step(c))
                .min()
                .unwrap_or(0);
        held_back_most = held_back_most.max(ahead as usize);
        if restore_every.is_some_and(|every| completions % every == 0) {
            let saved = rmp_serde::to_vec_named(&sampler).unwrap();
            sampler = rmp_serde::from_slice(&saved).unwrap();
            // A restored sampler asks again for what was in flight.
            outstanding.clear();
        }
    }
    (per_chain(rows), held_back_most)
}

#[test]
fn requests_completed_in_any_order_give_the_rows_of_one_step_at_a_time() {
    for swaps in [Swaps::NonReversible, Swaps::Classic] {
        let mut s = settings(3, 2, 4, swaps);
        s.adaptation_steps = 700;
        s.swap_interval = 7;
        let reference = per_chain(run(&mut Sampler::new(s.clone()), &gaussian, 1000));
        assert_eq!(reference.len(), 1000 * 8);
        for (seed, speculation, restore_every) in [(1, 1, None), (2, 5, None), (3, 3, Some(97))] {
            let (rows, _) = drive(&s, speculation, 1000, seed, &[], restore_every);
            assert!(
                rows == reference,
                "order {seed}, speculation {speculation}, restores {restore_every:?}: \
                 other rows ({swaps:?})"
            );
        }
    }
}

#[test]
fn after_adaptation_a_slow_chain_holds_back_only_the_chains_it_meets() {
    // Chain 7 (stack 1's hottest) is completed only when nothing else can move. After the
    // 100 steps of adaptation, stack 0 never meets it: its chains run to the horizon, hundreds
    // of steps ahead, and the rows are still those of one step at a time.
    let mut s = settings(3, 2, 4, Swaps::NonReversible);
    s.adaptation_steps = 100;
    let reference = per_chain(run(&mut Sampler::new(s.clone()), &gaussian, 2000));
    let (rows, ahead) = drive(&s, 1, 2000, 4, &[7], None);
    assert!(rows == reference, "other rows");
    assert!(
        ahead > 1500,
        "the other stack waited for the slow chain: {ahead} steps ahead at most"
    );
}
