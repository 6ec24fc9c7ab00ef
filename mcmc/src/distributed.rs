//! Evaluating a sampler's requests on workers: one open job per likelihood term, extended as
//! requests come.
//!
//! Each chain's request (its proposals) goes out as soon as the sampler makes it, together with
//! the other requests made at that moment: their points split into a few units per term (job
//! type `mcmc/LIKELIHOOD/TERM`, payload `[term, n_terms, [[x…], …]]`: PROTOCOL.md, MCMC units),
//! one point per unit while there are no more points than worker slots, so that an expensive
//! likelihood spreads over every slot, and at most two units per slot and term beyond, so that a
//! cheap one does not pay the engine's per-unit cost per point. A chain is completed as soon as
//! every term of its points is in, whatever the other chains are waiting for: chains meet only
//! where the sampler says they must, and no slot idles while any chain could move.
//!
//! Each point's terms are summed in term order, so the energies are bitwise the same as an
//! in-process run's, whichever workers answered and in whatever order.
//!
//! While it waits for results, the driver runs the engine's loop itself, on loan from the
//! engine thread (`engine::EngineLoan`): a cheap likelihood's round trip then costs no
//! hand-off between the two threads. The run gives the engine back before anything slow
//! ([`Evaluator::pause`]).
//!
//! [`OnWorkers::set_lockstep`] keeps the earlier driver for comparison: every pending point of
//! every chain in one round, all results awaited before any chain moves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use tracing::warn;

use ganger_core::mcmc::likelihood::{
    encode_points, job_type_name, read_energies, unit_payload_with,
};
use ganger_core::mcmc::sampler::{Row, Sampler};

use super::run::{Evaluator, McmcError};
use super::speculation::SpeculationTuner;
use ganger_cluster::scheduler::Outcome;
use ganger_cluster::{next_raw_of_any, AnyOutcome, Delegator, EngineLoan, Job, JobOptions};
use ganger_core::payload::Payload;

/// How often a wait for results looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Submissions between two looks at how many worker slots there are.
const SLOTS_EVERY: u64 = 64;

/// Evaluates requests on the delegator's workers.
///
/// Between calls to [`Evaluator::advance`] it may hold the delegator's engine (see the module
/// documentation): until [`Evaluator::pause`] or a drop, nothing else turns it, so call one of
/// them before using the delegator otherwise or leaving the evaluator idle. [`run`] does.
///
/// [`run`]: super::run::run
#[derive(Debug)]
pub struct OnWorkers<'a> {
    delegator: &'a Delegator,
    /// The engine, while this thread runs its loop (see the module documentation).
    loan: Option<EngineLoan<'a>>,
    jobs: Vec<Job<f64>>,
    /// The first term's job type.
    job_type: String,
    /// Units added to each term's job so far: the index of the next unit.
    submitted: u64,
    failed_units: u64,
    points_evaluated: u64,
    /// Worker slots serving the run's job types, as last seen.
    slots: usize,
    submissions: u64,
    tuner: SpeculationTuner,
    /// Points per chain and request when fixed by the caller instead of tuned.
    fixed: Option<usize>,
    lockstep: bool,
    /// When the tuner last recorded.
    last_record: Option<Instant>,
    /// Units in flight, by index: the chains' points they carry, and terms still to come.
    units: FxHashMap<u64, UnitInFlight>,
    /// Requests in flight, by chain.
    requests: FxHashMap<Request, RequestInFlight>,
    /// Requests completed and their summed latency since the tuner last recorded.
    completed: (u64, f64),
}

/// A chain's request: the chain and the request's generation.
type Request = (usize, u64);

/// The points of one unit: `(request, first point of the request, points)` segments.
#[derive(Debug)]
struct UnitInFlight {
    segments: Vec<(Request, usize, usize)>,
    points: usize,
    terms_left: usize,
}

#[derive(Debug)]
struct RequestInFlight {
    points: usize,
    /// Term-major: term `t` of point `p` at `t * points + p`.
    terms: Vec<f64>,
    /// Unit-and-term results still to come.
    left: usize,
    sent: Instant,
}

impl<'a> OnWorkers<'a> {
    /// Opens one job per term of the likelihood called `likelihood`.
    pub fn new(
        delegator: &'a Delegator,
        likelihood: &str,
        n_terms: usize,
    ) -> Result<OnWorkers<'a>, McmcError> {
        // The terms travel together: a worker serving several gets a request's units of all of
        // them in one message, one round trip instead of one per term.
        let options = JobOptions {
            group: Some(format!("mcmc/{likelihood}")),
            ..JobOptions::default()
        };
        let jobs = (0..n_terms)
            .map(|term| delegator.open(&job_type_name(likelihood, term), options.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| McmcError::Evaluation(e.to_string()))?;
        Ok(OnWorkers {
            delegator,
            loan: None,
            jobs,
            job_type: job_type_name(likelihood, 0),
            submitted: 0,
            failed_units: 0,
            points_evaluated: 0,
            slots: 1,
            submissions: 0,
            tuner: SpeculationTuner::new(),
            fixed: None,
            lockstep: false,
            last_record: None,
            units: FxHashMap::default(),
            requests: FxHashMap::default(),
            completed: (0, 0.0),
        })
    }

    /// Units whose evaluation failed on every attempt (their proposals were rejected).
    pub fn failed_units(&self) -> u64 {
        self.failed_units
    }

    /// Points sent for evaluation so far (each evaluated once per term).
    pub fn points_evaluated(&self) -> u64 {
        self.points_evaluated
    }

    /// Fixes how many points per chain each request carries (1: no speculation) instead of
    /// letting measurement choose; `None` goes back to measuring. The output is the same
    /// either way, only the speed differs.
    pub fn set_speculation(&mut self, points: Option<usize>) {
        self.fixed = points;
    }

    /// Drives the chains in lockstep rounds, as before chains moved on their own: every
    /// pending point in one round, every result awaited before any chain moves. For
    /// comparison; the output is the same.
    pub fn set_lockstep(&mut self, lockstep: bool) {
        self.lockstep = lockstep;
    }

    /// Counts the slots of the workers that serve this run's first job type.
    fn refresh_slots(&mut self) {
        // With the engine on loan, from the loan: this thread would wait on itself.
        let stats = match &self.loan {
            Some(loan) => loan.stats(),
            None => match self.delegator.stats() {
                Ok(stats) => stats,
                Err(_) => return,
            },
        };
        let job_type = &self.job_type;
        let slots: u64 = stats
            .workers
            .iter()
            .filter(|w| {
                w.job_types
                    .iter()
                    .any(|t| ganger_core::protocol::job_type_matches(t, job_type))
            })
            .map(|w| u64::from(w.slots))
            .sum();
        self.slots = (slots as usize).max(1);
    }

    /// Submits `points` as units of every term: one point per unit up to the slots, at most
    /// two units per slot beyond. Returns the index of the first unit and the units' bounds.
    fn submit(&mut self, points: &[&[f64]]) -> Result<(u64, Vec<usize>), McmcError> {
        if self.submissions % SLOTS_EVERY == 0 {
            self.refresh_slots();
        }
        self.submissions += 1;
        let n_terms = self.jobs.len();
        let n_points = points.len();
        self.points_evaluated += n_points as u64;
        let n_units = n_points.clamp(1, 2 * self.slots);
        let bounds: Vec<usize> = (0..=n_units).map(|i| i * n_points / n_units).collect();
        // Every term evaluates the same points: encode them once.
        let encoded: Vec<Vec<u8>> = bounds
            .windows(2)
            .map(|w| encode_points(points[w[0]..w[1]].iter().copied()))
            .collect();
        for term in 0..n_terms {
            let payloads = encoded
                .iter()
                .map(|points| unit_payload_with(term, n_terms, points))
                .collect();
            self.extend(term, payloads)?;
        }
        let first = self.submitted;
        self.submitted += n_units as u64;
        Ok((first, bounds))
    }

    /// Adds `payloads` to term `term`'s job. With the engine on loan, this thread cannot wait
    /// for room in the queue: it turns the engine until there is some.
    fn extend(&mut self, term: usize, payloads: Vec<Payload>) -> Result<(), McmcError> {
        let failed = |e: ganger_cluster::Error| McmcError::Evaluation(e.to_string());
        let Some(loan) = self.loan.as_mut() else {
            return self.jobs[term].extend(payloads).map_err(failed);
        };
        let mut payloads = payloads;
        while let Some(back) = self.jobs[term].try_extend(payloads).map_err(failed)? {
            if !loan.turn(STOP_CHECK) {
                return Err(McmcError::Evaluation("the delegator stopped".into()));
            }
            payloads = back;
        }
        Ok(())
    }

    /// The next outcome of any term's job, waiting for it; `None` once `stop` is set.
    fn next(&mut self, stop: &AtomicBool) -> Result<Option<(usize, Outcome)>, McmcError> {
        if self.loan.is_none() {
            self.loan = self.delegator.lend_engine();
        }
        if let Some(loan) = self.loan.as_mut() {
            loop {
                for (term, job) in self.jobs.iter_mut().enumerate() {
                    if let Some(outcome) = job.try_next_raw() {
                        return Ok(Some((term, outcome)));
                    }
                }
                if stop.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                if !loan.turn(STOP_CHECK) {
                    return Err(McmcError::Evaluation("the delegator stopped".into()));
                }
            }
        }
        loop {
            match next_raw_of_any(&mut self.jobs, STOP_CHECK) {
                AnyOutcome::Outcome(term, outcome) => return Ok(Some((term, outcome))),
                AnyOutcome::TimedOut if stop.load(Ordering::SeqCst) => return Ok(None),
                AnyOutcome::TimedOut => {}
                AnyOutcome::Finished => {
                    return Err(McmcError::Evaluation("the delegator stopped".into()))
                }
            }
        }
    }

    /// Decodes an outcome into `values` (NaN, counted and warned about once, if it failed).
    fn decode(&mut self, outcome: Outcome, values: &mut [f64]) {
        let decoded = match outcome.result {
            Ok(bytes) => read_energies(&bytes, values),
            Err(failure) => Err(failure.to_string()),
        };
        if let Err(error) = decoded {
            // Impossible states for this run: the proposals are rejected and counted.
            if self.failed_units == 0 {
                warn!("an MCMC unit failed (its proposals are rejected; later failures are only counted): {error}");
            }
            self.failed_units += 1;
            values.fill(f64::NAN);
        }
    }

    /// The next points per chain, from the tuner or the caller.
    fn record(&mut self, steps: usize, latency: f64) -> usize {
        let now = Instant::now();
        let points = match self.last_record {
            Some(last) => {
                let seconds = now.duration_since(last).as_secs_f64();
                self.tuner.record(steps, seconds, latency)
            }
            None => self.tuner.points(),
        };
        self.last_record = Some(now);
        self.fixed.unwrap_or(points)
    }

    /// One lockstep round: every pending point, every result.
    fn lockstep_round(
        &mut self,
        sampler: &mut Sampler,
        stop: &AtomicBool,
    ) -> Result<Vec<Row>, McmcError> {
        let started = Instant::now();
        let points: Vec<&[f64]> = sampler.points().collect();
        let energies = match self.evaluate_all(&points, stop) {
            Err(McmcError::Stopped) => return Ok(Vec::new()),
            other => other?,
        };
        let rows = sampler.complete(&energies);
        let points = self.record(rows.len(), started.elapsed().as_secs_f64());
        if points != sampler.speculation() {
            sampler.set_speculation(points);
        }
        Ok(rows)
    }

    /// Evaluates `points` and waits for all of them (nothing else may be in flight).
    fn evaluate_all(
        &mut self,
        points: &[&[f64]],
        stop: &AtomicBool,
    ) -> Result<Vec<f64>, McmcError> {
        let n_points = points.len();
        let n_terms = self.jobs.len();
        let mut terms = vec![f64::NAN; n_terms * n_points];
        if n_points > 0 {
            let (first, bounds) = self.submit(points)?;
            for _ in 0..(bounds.len() - 1) * n_terms {
                let (term, outcome) = self.next(stop)?.ok_or(McmcError::Stopped)?;
                let unit = (outcome.index - first) as usize;
                let at = term * n_points;
                let mut values = vec![0.0; bounds[unit + 1] - bounds[unit]];
                self.decode(outcome, &mut values);
                terms[at + bounds[unit]..at + bounds[unit + 1]].copy_from_slice(&values);
            }
        }
        Ok(sum_terms(&terms, n_terms, n_points))
    }

    /// Sends every new request; requests with no point are completed at once.
    fn send_requests(
        &mut self,
        sampler: &mut Sampler,
        rows: &mut Vec<Row>,
    ) -> Result<(), McmcError> {
        let d = sampler.settings().min.len().max(1);
        loop {
            let taken = sampler.take_requests();
            if taken.is_empty() {
                return Ok(());
            }
            let (empty, full): (Vec<Request>, Vec<Request>) = taken
                .into_iter()
                .partition(|&(c, _)| sampler.request(c).is_empty());
            if !full.is_empty() {
                let mut points: Vec<&[f64]> = Vec::new();
                let mut owners: Vec<(Request, usize)> = Vec::new();
                for &request in &full {
                    for (k, x) in sampler.request(request.0).chunks_exact(d).enumerate() {
                        points.push(x);
                        owners.push((request, k));
                    }
                }
                let (first, bounds) = self.submit(&points)?;
                self.track(first, &bounds, &owners, &full, sampler);
            }
            if empty.is_empty() {
                return Ok(());
            }
            for (chain, generation) in empty {
                rows.extend(sampler.complete_chain(chain, generation, &[]));
            }
        }
    }

    /// Remembers which chains' points the units from `first` carry.
    fn track(
        &mut self,
        first: u64,
        bounds: &[usize],
        owners: &[(Request, usize)],
        requests: &[Request],
        sampler: &Sampler,
    ) {
        let n_terms = self.jobs.len();
        let d = sampler.settings().min.len().max(1);
        let sent = Instant::now();
        for &request in requests {
            let points = sampler.request(request.0).len() / d;
            self.requests.insert(
                request,
                RequestInFlight {
                    points,
                    terms: vec![f64::NAN; n_terms * points],
                    left: 0,
                    sent,
                },
            );
        }
        for (u, w) in bounds.windows(2).enumerate() {
            let mut segments: Vec<(Request, usize, usize)> = Vec::new();
            for &(owner, k) in &owners[w[0]..w[1]] {
                match segments.last_mut() {
                    Some((r, _, n)) if *r == owner => *n += 1,
                    _ => segments.push((owner, k, 1)),
                }
            }
            for &(owner, _, _) in &segments {
                if let Some(request) = self.requests.get_mut(&owner) {
                    request.left += n_terms;
                }
            }
            self.units.insert(
                first + u as u64,
                UnitInFlight {
                    segments,
                    points: w[1] - w[0],
                    terms_left: n_terms,
                },
            );
        }
    }

    /// Takes one unit's outcome for `term`; completes the chains whose every term is in.
    fn take(&mut self, term: usize, outcome: Outcome, sampler: &mut Sampler, rows: &mut Vec<Row>) {
        let index = outcome.index;
        let Some(points) = self.units.get(&index).map(|u| u.points) else {
            return;
        };
        let mut values = vec![0.0; points];
        self.decode(outcome, &mut values);
        let n_terms = self.jobs.len();
        let unit = self.units.get_mut(&index).expect("looked up above");
        unit.terms_left -= 1;
        let segments = if unit.terms_left == 0 {
            self.units.remove(&index).expect("present").segments
        } else {
            unit.segments.clone()
        };
        let mut offset = 0;
        for (owner, first, n) in segments {
            let request = self
                .requests
                .get_mut(&owner)
                .expect("a request per unit's chain");
            let at = term * request.points + first;
            request.terms[at..at + n].copy_from_slice(&values[offset..offset + n]);
            offset += n;
            request.left -= 1;
            if request.left == 0 {
                let request = self.requests.remove(&owner).expect("present");
                let energies = sum_terms(&request.terms, n_terms, request.points);
                self.completed.0 += 1;
                self.completed.1 += request.sent.elapsed().as_secs_f64();
                rows.extend(sampler.complete_chain(owner.0, owner.1, &energies));
            }
        }
    }
}

impl Evaluator for OnWorkers<'_> {
    fn advance(&mut self, sampler: &mut Sampler, stop: &AtomicBool) -> Result<Vec<Row>, McmcError> {
        if self.lockstep {
            return self.lockstep_round(sampler, stop);
        }
        let mut rows = Vec::new();
        self.send_requests(sampler, &mut rows)?;
        if !rows.is_empty() || self.requests.is_empty() {
            return Ok(rows);
        }
        let Some((term, outcome)) = self.next(stop)? else {
            return Ok(rows);
        };
        self.take(term, outcome, sampler, &mut rows);
        // Whatever else has arrived, without waiting.
        for term in 0..self.jobs.len() {
            while let Some(outcome) = self.jobs[term].try_next_raw() {
                self.take(term, outcome, sampler, &mut rows);
            }
        }
        if self.completed.0 > 0 {
            let latency = self.completed.1 / self.completed.0 as f64;
            self.completed = (0, 0.0);
            let points = self.record(rows.len(), latency);
            if points != sampler.speculation() {
                sampler.set_speculation(points);
            }
        }
        // The chains these results moved ask again at once, before their rows are written,
        // and on a borrowed engine their requests go out now: the round trip then overlaps
        // the caller's bookkeeping instead of waiting for the next turn.
        self.send_requests(sampler, &mut rows)?;
        if let Some(loan) = self.loan.as_mut() {
            if !loan.turn(Duration::ZERO) {
                return Err(McmcError::Evaluation("the delegator stopped".into()));
            }
        }
        Ok(rows)
    }

    fn evaluate_points(
        &mut self,
        points: &[Vec<f64>],
        stop: &AtomicBool,
    ) -> Result<Vec<f64>, McmcError> {
        let points: Vec<&[f64]> = points.iter().map(Vec::as_slice).collect();
        let energies = self.evaluate_all(&points, stop);
        // A one-off evaluation: nothing follows at once that would need the engine here.
        self.pause();
        energies
    }

    fn pause(&mut self) {
        // Back to its thread, which serves the workers and the status while this one is busy.
        self.loan = None;
    }
}

/// Each point's energy: its terms added in term order, as in-process evaluation adds them.
fn sum_terms(terms: &[f64], n_terms: usize, n_points: usize) -> Vec<f64> {
    (0..n_points)
        .map(|point| {
            (0..n_terms)
                .map(|term| terms[term * n_points + point])
                .sum()
        })
        .collect()
}
