//! How far chains speculate in a distributed run, chosen by measuring.
//!
//! Speculation (see `Sampler::set_speculation`) trades evaluations for round trips: worth a lot
//! for a cheap likelihood, where a round trip costs far more than the evaluations it carries,
//! and a waste for an expensive one on busy workers. What it is worth depends on the likelihood,
//! the workers and the network, so the tuner measures it: it runs each setting for a period,
//! records the chain steps per second it gave, and climbs to the best neighbouring setting,
//! re-measuring a neighbour now and then to follow changes (workers joining or leaving). The
//! output of a run never depends on the setting, only its speed does.
//!
//! An expensive likelihood never pays for speculation: once a request takes
//! [`EXPENSIVE_ROUND_SECONDS`] or more from sending to its last result, evaluations outweigh any
//! round trip they could save, so the tuner goes back to one point per chain and stops probing
//! until requests are quick again.
//! Only a cheap likelihood, whose round trips dominate, gets the extra evaluations (1.9-2.9
//! times the steps taken, measured on the demo's targets).
//!
//! A state machine without clocks: the caller reports the steps taken since its last report,
//! the time that took, and how long requests took on average.

/// Points per chain and round the tuner chooses from.
const LEVELS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// A measurement period lasts at least this many rounds ...
const PERIOD_ROUNDS: u32 = 8;

/// ... and at least this long, so that one slow round does not decide.
const PERIOD_SECONDS: f64 = 0.02;

/// Every this many periods, a neighbouring setting is measured again.
const PROBE_EVERY: u64 = 8;

/// Requests this long are spent evaluating, not waiting on round trips (a round trip on a LAN
/// takes well under a millisecond, on loopback about 0.1 ms): no speculation then.
pub const EXPENSIVE_ROUND_SECONDS: f64 = 0.05;

/// Chooses the speculation of a distributed run. See the module documentation.
#[derive(Debug, Clone)]
pub struct SpeculationTuner {
    /// Index into [`LEVELS`] of the current setting.
    current: usize,
    /// Chain steps per second measured at each setting (smoothed), and in which period.
    rates: [Option<(f64, u64)>; LEVELS.len()],
    periods: u64,
    steps: u64,
    seconds: f64,
    /// Summed mean request latency of the reports this period.
    latency: f64,
    rounds: u32,
}

impl Default for SpeculationTuner {
    fn default() -> Self {
        SpeculationTuner::new()
    }
}

impl SpeculationTuner {
    /// Starts without speculation: nothing is wasted until measurement says it pays.
    pub fn new() -> Self {
        SpeculationTuner {
            current: 0,
            rates: [None; LEVELS.len()],
            periods: 0,
            steps: 0,
            seconds: 0.0,
            latency: 0.0,
            rounds: 0,
        }
    }

    /// Points per chain for the next round.
    pub fn points(&self) -> usize {
        LEVELS[self.current]
    }

    /// Records that the chains advanced by `steps` steps in all over `seconds`, with requests
    /// taking `latency` seconds on average (in lockstep, a round's time); returns the points
    /// per chain for the next requests.
    pub fn record(&mut self, steps: usize, seconds: f64, latency: f64) -> usize {
        self.steps += steps as u64;
        self.seconds += seconds.max(0.0);
        self.latency += latency.max(0.0);
        self.rounds += 1;
        if self.rounds >= PERIOD_ROUNDS && self.seconds >= PERIOD_SECONDS {
            let rate = self.steps as f64 / self.seconds;
            self.end_period(rate);
        }
        self.points()
    }

    fn end_period(&mut self, rate: f64) {
        let cur = self.current;
        let expensive = self.latency / f64::from(self.rounds) >= EXPENSIVE_ROUND_SECONDS;
        self.periods += 1;
        let smoothed = match self.rates[cur] {
            Some((old, _)) => 0.5 * old + 0.5 * rate,
            None => rate,
        };
        self.rates[cur] = Some((smoothed, self.periods));
        (self.steps, self.seconds, self.latency, self.rounds) = (0, 0.0, 0.0, 0);
        if expensive {
            // Forget what cheap rounds measured: they no longer say anything.
            self.rates = [None; LEVELS.len()];
            self.current = 0;
            return;
        }
        let down = cur.checked_sub(1);
        let up = (cur + 1 < LEVELS.len()).then_some(cur + 1);
        let rate_of = |level: Option<usize>| level.and_then(|l| self.rates[l]).map(|r| r.0);
        // Climb into the unknown only while climbing has paid.
        if let Some(up) = up {
            if self.rates[up].is_none() && rate_of(down).is_none_or(|r| smoothed >= r) {
                self.current = up;
                return;
            }
        }
        if self.periods % PROBE_EVERY == 0 {
            // Re-measure the neighbour measured longest ago.
            let stalest = [down, up]
                .into_iter()
                .flatten()
                .min_by_key(|&l| self.rates[l].map_or(0, |r| r.1));
            if let Some(level) = stalest {
                self.current = level;
                return;
            }
        }
        self.current = [down, Some(cur), up]
            .into_iter()
            .flatten()
            .filter_map(|l| rate_of(Some(l)).map(|r| (l, r)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(cur, |(l, _)| l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the tuner for `periods` periods against `rate(points)` (steps per second), and
    /// returns the settings it used, period by period.
    fn drive(rate: impl Fn(usize) -> f64, periods: usize) -> Vec<usize> {
        let mut tuner = SpeculationTuner::new();
        let mut used = Vec::new();
        for _ in 0..periods {
            used.push(tuner.points());
            period(&mut tuner, &rate);
        }
        used
    }

    /// Rounds of 100 steps each at `rate(points)` steps per second, until a period ends.
    fn period(tuner: &mut SpeculationTuner, rate: &impl Fn(usize) -> f64) {
        let periods = tuner.periods;
        while tuner.periods == periods {
            let seconds = 100.0 / rate(tuner.points());
            tuner.record(100, seconds, seconds);
        }
    }

    /// The setting used most over the last half of a run.
    fn settled(used: &[usize]) -> usize {
        let tail = &used[used.len() / 2..];
        *LEVELS
            .iter()
            .max_by_key(|l| tail.iter().filter(|u| u == l).count())
            .unwrap()
    }

    #[test]
    fn a_cheap_likelihood_climbs_to_the_best_setting_and_stays_there() {
        // Round trips dominate until 16 points per chain, then evaluations do.
        let rate = |points: usize| {
            let steps_per_round = 10.0 * (points as f64).sqrt();
            steps_per_round / (200e-6 + 2e-7 * 10.0 * points as f64 * 30.0)
        };
        let used = drive(rate, 80);
        let best = *LEVELS
            .iter()
            .max_by(|a, b| rate(**a).total_cmp(&rate(**b)))
            .unwrap();
        assert_eq!(settled(&used), best, "{used:?}");
        let at_best = used[40..].iter().filter(|&&p| p == best).count();
        assert!(at_best >= 30, "probes should be rare: {used:?}");
    }

    #[test]
    fn an_expensive_likelihood_on_busy_workers_does_not_speculate() {
        // Every extra point costs a whole evaluation on saturated workers.
        let rate = |points: usize| 10.0 / (points as f64 * 0.5);
        let used = drive(rate, 40);
        assert_eq!(settled(&used), 1, "{used:?}");
        assert!(used.iter().all(|&p| p <= 2), "{used:?}");
    }

    #[test]
    fn an_expensive_likelihood_never_speculates_even_with_idle_workers() {
        // Idle slots: two points per chain would take the same 0.2 s per round and advance the
        // chains 1.6 times as far, but each step would cost twice the evaluations.
        let rate = |points: usize| if points == 1 { 500.0 } else { 800.0 };
        let used = drive(rate, 200);
        assert!(used.iter().all(|&p| p == 1), "{used:?}");
        // The same at a tenth of the cost per round speculates: the guard is about cost.
        let cheap = |points: usize| 100.0 * rate(points);
        assert!(drive(cheap, 40).iter().any(|&p| p > 1));
    }

    #[test]
    fn the_tuner_follows_a_change_in_costs() {
        let mut tuner = SpeculationTuner::new();
        // Steps per second: cheap rounds of 100 steps take milliseconds, expensive ones seconds.
        let cheap = |points: usize| 1e4 * ((points as f64).min(32.0) - 0.01 * points as f64);
        let expensive = |points: usize| 100.0 / points as f64;
        let mut used = Vec::new();
        for i in 0..160 {
            used.push(tuner.points());
            if i < 60 {
                period(&mut tuner, &cheap);
            } else {
                period(&mut tuner, &expensive);
            }
        }
        assert_eq!(settled(&used[..60]), 32, "{used:?}");
        assert_eq!(settled(&used[60..]), 1, "{used:?}");
    }
}
