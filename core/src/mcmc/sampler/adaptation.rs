//! How proposals adapt: each temperature tier's proposal covariance, estimated over windows that
//! forget the start, and each chain's proposal scale, tuned towards the target acceptance rate.
//!
//! The adaptation phase (the first `adaptation_steps` steps of every chain) is split as Stan
//! splits its warm-up (Stan Reference Manual, "Automatic parameter tuning"): a first buffer in
//! which only the scale adapts, so that chains reach the bulk of the target; then *slow windows*
//! of doubling length, at the end of each of which a tier's covariance is re-estimated from the
//! draws of that window alone and its chains' scales restart; and a last buffer in which only
//! the scale adapts again, to the final covariance. Because every window starts afresh, the
//! draws of the transient (a chain started far out in wide bounds) leave no trace in the final
//! covariance, unlike a running covariance over every draw since the start.

use serde::{Deserialize, Serialize};

/// Share of the adaptation phase before the first slow window (scale only), in per cent.
const FIRST_BUFFER_PERCENT: u64 = 15;

/// Share of the adaptation phase after the last slow window (scale only), in per cent.
const LAST_BUFFER_PERCENT: u64 = 10;

/// Steps of the first slow window; each next one is twice as long, the last stretched to fill.
const BASE_WINDOW: u64 = 25;

/// A window's draws re-estimate a covariance only once there are this many per dimension;
/// fewer, and the window runs on into the next one.
const DRAWS_PER_DIMENSION: u64 = 10;

/// Shrinkage of the window's correlations towards none: `n / (n + SHRINKAGE · d)` of each
/// off-diagonal entry of a d-dimensional estimate from n draws is kept. Random-walk draws are
/// strongly autocorrelated, so a window's n draws hold far fewer independent ones; without this,
/// a short window's noisy correlations made nearly singular proposals from d = 20 up (one
/// direction 50 times too narrow at d = 40 with one stack).
const SHRINKAGE: f64 = 10.0;

/// The ends of the slow windows of an adaptation phase of `adaptation_steps` steps, and where
/// the first one starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Schedule {
    /// The step after which draws start to count (the end of the first buffer).
    pub(super) first: u64,
    /// The last step of each slow window, increasing.
    pub(super) ends: Vec<u64>,
}

impl Schedule {
    pub(super) fn new(adaptation_steps: u64) -> Schedule {
        let first = adaptation_steps * FIRST_BUFFER_PERCENT / 100;
        let last = adaptation_steps - adaptation_steps * LAST_BUFFER_PERCENT / 100;
        let mut ends = Vec::new();
        let (mut start, mut length) = (first, BASE_WINDOW);
        while start + length <= last {
            // Stretch the last window to the buffer rather than leave a short one after it.
            let end = if start + 3 * length > last {
                last
            } else {
                start + length
            };
            ends.push(end);
            start = end;
            length *= 2;
        }
        Schedule { first, ends }
    }

    /// Whether the state after step `step` is a draw of a slow window.
    pub(super) fn observes(&self, step: u64) -> bool {
        step > self.first && self.ends.last().is_some_and(|&last| step <= last)
    }

    /// The first window end after `step`, if any.
    pub(super) fn next_end(&self, step: u64) -> Option<u64> {
        self.ends.iter().copied().find(|&end| end > step)
    }

    /// Whether a slow window ends at step `step`.
    pub(super) fn ends_at(&self, step: u64) -> bool {
        self.ends.binary_search(&step).is_ok()
    }

    /// Whether every chain meets at step `step`: the end of the first buffer or of a slow
    /// window, where the ladder adapts and the covariances are re-estimated.
    pub(super) fn syncs_at(&self, step: u64) -> bool {
        step > 0 && (step == self.first || self.ends_at(step))
    }

    /// The first step after `step` at which every chain meets, if any.
    pub(super) fn next_sync(&self, step: u64) -> Option<u64> {
        if self.first > step {
            return Some(self.first);
        }
        self.next_end(step)
    }
}

/// Running moments of draws (Welford's update, stable in one pass), mergeable (Chan, Golub &
/// LeVeque 1979) so that each chain keeps its own and a tier combines them in chain order: the
/// result does not depend on when the chains got there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Moments {
    n: u64,
    mean: Vec<f64>,
    /// Sum of outer products of deviations (row-major d × d).
    comoment: Vec<f64>,
}

impl Moments {
    pub(super) fn new(d: usize) -> Moments {
        Moments {
            n: 0,
            mean: vec![0.0; d],
            comoment: vec![0.0; d * d],
        }
    }

    /// Adds one draw.
    pub(super) fn observe(&mut self, x: &[f64]) {
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

    /// Adds another set's draws.
    pub(super) fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            self.clone_from(other);
            return;
        }
        let d = self.mean.len();
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let delta: Vec<f64> = other
            .mean
            .iter()
            .zip(&self.mean)
            .map(|(b, a)| b - a)
            .collect();
        for i in 0..d {
            for j in 0..d {
                self.comoment[i * d + j] +=
                    other.comoment[i * d + j] + delta[i] * delta[j] * na * nb / n;
            }
        }
        for (m, dx) in self.mean.iter_mut().zip(&delta) {
            *m += dx * nb / n;
        }
        self.n += other.n;
    }

    pub(super) fn clear(&mut self) {
        self.n = 0;
        self.mean.fill(0.0);
        self.comoment.fill(0.0);
    }
}

/// One temperature tier's proposal (all stacks share it): the covariance estimate and the
/// Cholesky factor of `2.38² / d` times it (Roberts, Gelman & Gilks 1997).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Tier {
    /// The covariance the proposal is built from (row-major d × d).
    pub(super) covariance: Vec<f64>,
    /// Lower Cholesky factor of `2.38² / d × covariance` (row-major d × d).
    pub(super) cholesky: Vec<f64>,
}

impl Tier {
    /// A tier whose proposal has standard deviation `initial_sd` along each axis.
    pub(super) fn new(initial_sd: &[f64]) -> Tier {
        let d = initial_sd.len();
        let mut covariance = vec![0.0; d * d];
        let mut cholesky = vec![0.0; d * d];
        let unscale = d as f64 / (2.38 * 2.38);
        for (i, sd) in initial_sd.iter().enumerate() {
            covariance[i * d + i] = sd * sd * unscale;
            cholesky[i * d + i] = *sd;
        }
        Tier {
            covariance,
            cholesky,
        }
    }

    /// Whether a window's draws are enough to estimate a covariance from.
    pub(super) fn enough(window: &Moments) -> bool {
        let d = window.mean.len() as u64;
        window.n >= DRAWS_PER_DIMENSION * d && window.n >= 2
    }

    /// Ends a window with `window`'s draws (see [`Tier::enough`]): the proposal covariance
    /// becomes the window's, regularised so that it stays positive definite; returns whether it
    /// did. A coordinate that never moved keeps its previous variance.
    pub(super) fn refresh(&mut self, window: &Moments) -> bool {
        let d = window.mean.len();
        let n = window.n as f64;
        let keep = n / (n + SHRINKAGE * d as f64);
        let mut covariance: Vec<f64> = window.comoment.iter().map(|c| c / (n - 1.0)).collect();
        for i in 0..d {
            for j in 0..d {
                if i != j {
                    covariance[i * d + j] *= keep;
                }
            }
            let variance = &mut covariance[i * d + i];
            if !(*variance > 0.0 && variance.is_finite()) {
                *variance = self.covariance[i * d + i];
                for j in (0..d).filter(|&j| j != i) {
                    covariance[i * d + j] = 0.0;
                    covariance[j * d + i] = 0.0;
                }
            }
        }
        let scale = 2.38 * 2.38 / d as f64;
        let mut scaled: Vec<f64> = covariance.iter().map(|c| c * scale).collect();
        for i in 0..d {
            scaled[i * d + i] *= 1.0 + 1e-9;
        }
        match cholesky(&scaled, d) {
            Some(l) => {
                self.cholesky = l;
                self.covariance = covariance;
                true
            }
            None => false,
        }
    }
}

/// Step size of the scale's Robbins–Monro adaptation `t` steps after it (re)started:
/// diminishing, so the scale settles.
pub(super) fn adaptation_rate(t: u64) -> f64 {
    (1.0 + t as f64).powf(-0.6)
}

/// The proposal scale after a step's adaptation, `t` steps after the scale's adaptation
/// (re)started: Robbins–Monro towards the target acceptance rate.
pub(super) fn adapted(log_sigma: f64, t: u64, accepted: bool, target: f64) -> f64 {
    adapted_at_rate(log_sigma, adaptation_rate(t), accepted, target)
}

/// [`adapted`] with its step size [`adaptation_rate`] already computed: the speculation tree
/// adapts many nodes of one depth at the same rate.
pub(super) fn adapted_at_rate(log_sigma: f64, rate: f64, accepted: bool, target: f64) -> f64 {
    let indicator = if accepted { 1.0 } else { 0.0 };
    (log_sigma + rate * (indicator - target)).clamp(-20.0, 5.0)
}

/// Lower Cholesky factor of a symmetric positive-definite matrix, or `None`.
pub(super) fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
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
mod tests {
    use super::*;

    #[test]
    fn slow_windows_double_and_fill_the_middle_of_the_phase() {
        let schedule = Schedule::new(1000);
        assert_eq!(schedule.first, 150);
        assert_eq!(schedule.ends, vec![175, 225, 325, 900]);
        assert!(!schedule.observes(150) && schedule.observes(151) && schedule.observes(900));
        assert!(!schedule.observes(901));
        assert_eq!(schedule.next_end(225), Some(325));
        assert_eq!(schedule.next_end(900), None);
        assert!(schedule.ends_at(325) && !schedule.ends_at(326));
        // Too short for a window: only the scale adapts.
        assert!(Schedule::new(20).ends.is_empty());
        assert!(Schedule::new(0).ends.is_empty());
        // Long phases: the windows still double, and the last one is the longest.
        let long = Schedule::new(50_000);
        let lengths: Vec<u64> = std::iter::once(long.first)
            .chain(long.ends.iter().copied())
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect();
        assert!(lengths.windows(2).all(|w| w[1] >= 2 * w[0]), "{lengths:?}");
        assert_eq!(*long.ends.last().unwrap(), 45_000);
    }

    #[test]
    fn a_window_estimates_the_covariance_of_its_own_draws_only() {
        let mut tier = Tier::new(&[1.0, 1.0]);
        // A first window far away, then one around the origin with sds 2 and 0.5.
        let mut window = Moments::new(2);
        for k in 0..100 {
            window.observe(&[1000.0 + k as f64, -500.0]);
        }
        assert!(Tier::enough(&window) && tier.refresh(&window));
        window.clear();
        for k in 0..400 {
            let (a, b) = if k % 2 == 0 { (2.0, 0.5) } else { (-2.0, -0.5) };
            let sign = if (k / 2) % 2 == 0 { 1.0 } else { -1.0 };
            window.observe(&[a, sign * b]);
        }
        assert!(tier.refresh(&window));
        let var = |i: usize| tier.covariance[i * 2 + i];
        assert!((var(0) - 4.0).abs() < 0.02, "{:?}", tier.covariance);
        assert!((var(1) - 0.25).abs() < 0.01, "{:?}", tier.covariance);
    }

    #[test]
    fn merged_moments_equal_those_of_all_the_draws() {
        let draws: Vec<[f64; 2]> = (0..50)
            .map(|k| {
                [
                    (k as f64).sin() * 3.0 + 1.0,
                    (k as f64 * 0.7).cos() - 2.0 * k as f64,
                ]
            })
            .collect();
        let mut all = Moments::new(2);
        draws.iter().for_each(|x| all.observe(x));
        let (mut a, mut b, mut c) = (Moments::new(2), Moments::new(2), Moments::new(2));
        draws[..13].iter().for_each(|x| a.observe(x));
        draws[13..].iter().for_each(|x| b.observe(x));
        a.merge(&c);
        c.merge(&a);
        c.merge(&b);
        assert_eq!(c.n, all.n);
        for (x, y) in c
            .mean
            .iter()
            .chain(&c.comoment)
            .zip(all.mean.iter().chain(&all.comoment))
        {
            assert!((x - y).abs() < 1e-9 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn a_coordinate_that_never_moved_keeps_its_variance() {
        let mut tier = Tier::new(&[2.38, 2.38 * 3.0]);
        let before = tier.covariance.clone();
        let mut window = Moments::new(2);
        for k in 0..40 {
            window.observe(&[k as f64, 7.0]);
        }
        assert!(Tier::enough(&window) && tier.refresh(&window));
        assert_eq!(tier.covariance[3], before[3]);
        assert_eq!(tier.covariance[1], 0.0);
        // Too few draws: the window runs on.
        window.clear();
        window.observe(&[1.0, 2.0]);
        assert!(!Tier::enough(&window));
    }

    #[test]
    fn every_chain_meets_at_the_first_buffers_end_and_each_windows() {
        let schedule = Schedule::new(1000);
        assert_eq!(schedule.next_sync(0), Some(150));
        assert_eq!(schedule.next_sync(150), Some(175));
        assert_eq!(schedule.next_sync(900), None);
        assert!(schedule.syncs_at(150) && schedule.syncs_at(900) && !schedule.syncs_at(160));
        assert!(!Schedule::new(5).syncs_at(0));
    }
}
