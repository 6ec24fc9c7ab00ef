//! A socket-free driver of the delegator's message handling, for property tests and fuzzing.
//!
//! Frames from simulated peers go through what the engine does with a frame (the size limit,
//! [`protocol::decode`], the dispatch of each message type to the [`Scheduler`]) and client
//! steps (submit, extend, seal, cancel) through what it does with commands; after every step the
//! scheduler is filled, its actions carried out as the engine would, and its invariants checked
//! along with what only an observer of its actions can check: every outcome is delivered at most
//! once, and failed attempts are kept across requeues.
//! [`Harness::finish`] then lets one well-behaved worker drain everything and checks that every
//! unit of every job not cancelled was delivered exactly once.
//!
//! The dispatch mirrors `engine.rs`'s `handle_frame`/`handle_message` (which need the ROUTER to
//! answer peers); keep the two in step.

use std::collections::{HashMap, HashSet};

use ganger_core::payload::Payload;
use ganger_core::protocol::{
    self, Goodbye, Hello, Message, Results, UnitResultRef, PROTOCOL_VERSION,
};

use crate::scheduler::{
    split_unit_id, Action, JobId, Millis, Scheduler, SchedulerConfig, WorkerId,
};
use crate::DroppedFrames;

/// The job types the harness's jobs use; peers serve a subset (or a wildcard).
pub const JOB_TYPES: [&str; 3] = ["mcmc/a", "mcmc/b", "square"];

/// One step of a simulated session. Selectors (`pick`) choose among what exists at the time
/// (modulo its count), so that arbitrary values mostly hit real batches, units and jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Raw bytes from a peer, through the size limit and the decoder.
    Frame {
        /// The sending peer.
        peer: u8,
        /// The frame.
        bytes: Vec<u8>,
    },
    /// A `hello` frame.
    Hello {
        /// The sending peer.
        peer: u8,
        /// Speak the right protocol version, or another one.
        right_version: bool,
        /// Bit i set: serve `JOB_TYPES[i]`; bit 3: serve the wildcard `mcmc/*`; 0: none.
        job_types: u8,
        /// Slots advertised (0 is odd but legal).
        slots: u32,
        /// Prefetch advertised (may be huge).
        prefetch: u32,
    },
    /// A `results` frame for a batch currently leased (to this peer or, wrongly, to another).
    Answer {
        /// The sending peer.
        peer: u8,
        /// Which leased batch.
        pick: u16,
        /// How many of its outstanding units to answer (modulo their count + 1).
        count: u16,
        /// Answer with errors instead of outputs.
        fail: bool,
        /// Repeat the first answered unit in the same message.
        duplicate: bool,
        /// Send it twice.
        resend: bool,
    },
    /// A `results` frame with made-up ids: late, bogus or foreign.
    BogusResults {
        /// The sending peer.
        peer: u8,
        /// The batch named.
        batch: u64,
        /// The unit ids named.
        ids: Vec<u64>,
        /// Answer with errors instead of outputs.
        fail: bool,
    },
    /// A `heartbeat` frame.
    Heartbeat {
        /// The sending peer.
        peer: u8,
    },
    /// A `goodbye` frame returning some of the peer's leased units and some made-up ids.
    Goodbye {
        /// The sending peer.
        peer: u8,
        /// Every how-many-th leased unit to return (0: none).
        every: u8,
        /// Made-up ids returned as well.
        bogus: Vec<u64>,
    },
    /// The peer's connection is gone (what the engine does on an unreachable peer).
    Disconnect {
        /// The peer.
        peer: u8,
    },
    /// Time passes, then the scheduler ticks (expiring silent workers).
    Advance {
        /// Milliseconds.
        ms: u32,
    },
    /// A client submits a job.
    Submit {
        /// Index into [`JOB_TYPES`] (modulo).
        job_type: u8,
        /// Priority.
        priority: i8,
        /// Units in its first chunk.
        units: u8,
        /// Payload bytes per unit.
        payload_len: u8,
        /// Seal it at once.
        seal: bool,
    },
    /// A client adds units to an open job.
    Extend {
        /// Which job.
        pick: u8,
        /// Units.
        units: u8,
    },
    /// A client seals a job.
    Seal {
        /// Which job.
        pick: u8,
    },
    /// A client drops a job before it finishes.
    Cancel {
        /// Which job.
        pick: u8,
    },
}

/// What the harness knows of a job from the client side.
#[derive(Debug)]
struct ClientJob {
    id: JobId,
    total: u64,
    payload_len: usize,
    sealed: bool,
    cancelled: bool,
    done: bool,
    /// Deliveries per unit index.
    delivered: Vec<u8>,
}

/// The driver. See the module documentation.
#[derive(Debug)]
pub struct Harness {
    scheduler: Scheduler,
    now: Millis,
    /// Peer index → the worker it is registered as.
    peers: Vec<Option<WorkerId>>,
    jobs: Vec<ClientJob>,
    /// Failed attempts the scheduler accepted, per unit, as seen from outside.
    attempts: HashMap<u64, usize>,
    dropped: DroppedFrames,
}

impl Harness {
    /// A harness with `n_peers` simulated peers and a scheduler with `config`.
    pub fn new(config: SchedulerConfig, n_peers: usize) -> Self {
        Harness {
            scheduler: Scheduler::new(config),
            now: 0,
            peers: vec![None; n_peers.max(1)],
            jobs: Vec::new(),
            attempts: HashMap::new(),
            dropped: DroppedFrames::default(),
        }
    }

    /// The scheduler, for assertions.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Frames dropped or refused so far, by cause.
    pub fn dropped(&self) -> &DroppedFrames {
        &self.dropped
    }

    /// Takes one step, then fills, carries out actions and checks every invariant.
    pub fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Frame { peer, bytes } => self.frame(*peer, bytes),
            Step::Hello {
                peer,
                right_version,
                job_types,
                slots,
                prefetch,
            } => {
                let mut types: Vec<String> = JOB_TYPES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| job_types & (1 << i) != 0)
                    .map(|(_, t)| (*t).to_owned())
                    .collect();
                if job_types & 8 != 0 {
                    types.push("mcmc/*".to_owned());
                }
                let hello = Hello {
                    protocol: if *right_version {
                        PROTOCOL_VERSION
                    } else {
                        PROTOCOL_VERSION + 1
                    },
                    name: format!("peer-{peer}"),
                    host: "harness".into(),
                    job_types: types,
                    slots: *slots,
                    prefetch: *prefetch,
                    nonce: None,
                };
                self.send(*peer, &Message::Hello(hello));
            }
            Step::Answer {
                peer,
                pick,
                count,
                fail,
                duplicate,
                resend,
            } => self.answer(*peer, *pick, *count, *fail, *duplicate, *resend),
            Step::BogusResults {
                peer,
                batch,
                ids,
                fail,
            } => {
                let results = ids
                    .iter()
                    .map(|&id| UnitResultRef {
                        id,
                        outcome: if *fail { Err("bogus") } else { Ok(&[7u8][..]) },
                    })
                    .collect();
                self.send(
                    *peer,
                    &Message::Results(Results {
                        batch: *batch,
                        elapsed_us: 1,
                        results,
                    }),
                );
            }
            Step::Heartbeat { peer } => self.send(*peer, &Message::Heartbeat),
            Step::Goodbye { peer, every, bogus } => {
                let mut returned = bogus.clone();
                if let Some(worker) = self.worker(*peer) {
                    let mine = self.units_of(worker);
                    if *every > 0 {
                        returned.extend(mine.into_iter().step_by(usize::from(*every)));
                    }
                }
                self.send(*peer, &Message::Goodbye(Goodbye { returned }));
            }
            Step::Disconnect { peer } => {
                if let Some(worker) = self.worker(*peer) {
                    self.scheduler
                        .worker_lost(worker, "connection closed (unreachable)");
                }
            }
            Step::Advance { ms } => {
                self.now += u64::from(*ms);
                self.scheduler.tick(self.now);
            }
            Step::Submit {
                job_type,
                priority,
                units,
                payload_len,
                seal,
            } => {
                let job_type = JOB_TYPES[usize::from(*job_type) % JOB_TYPES.len()];
                let id = self.scheduler.submit(job_type, i32::from(*priority));
                self.jobs.push(ClientJob {
                    id,
                    total: 0,
                    payload_len: usize::from(*payload_len),
                    sealed: false,
                    cancelled: false,
                    done: false,
                    delivered: Vec::new(),
                });
                let at = self.jobs.len() - 1;
                self.extend(at, *units);
                if *seal {
                    self.seal(at);
                }
            }
            Step::Extend { pick, units } => {
                if let Some(at) = self.pick_job(*pick) {
                    self.extend(at, *units);
                }
            }
            Step::Seal { pick } => {
                if let Some(at) = self.pick_job(*pick) {
                    self.seal(at);
                }
            }
            Step::Cancel { pick } => {
                if let Some(at) = self.pick_job(*pick) {
                    let job = &mut self.jobs[at];
                    job.cancelled = true;
                    self.scheduler.cancel(job.id);
                }
            }
        }
        self.settle()
    }

    /// Seals every job, replaces every peer by one well-behaved worker serving every job type,
    /// lets it drain the queues, and checks that every unit of every job not cancelled was
    /// delivered exactly once and every such job finished.
    pub fn finish(&mut self) -> Result<(), String> {
        for at in 0..self.jobs.len() {
            self.seal(at);
        }
        for peer in 0..self.peers.len() {
            if let Some(worker) = self.peers[peer] {
                self.scheduler.worker_lost(worker, "finishing");
            }
        }
        self.settle()?;
        let good = 0u8;
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            name: "drainer".into(),
            host: "harness".into(),
            job_types: vec!["*".into()],
            slots: 64,
            prefetch: 1024,
            nonce: None,
        };
        self.send(good, &Message::Hello(hello));
        self.settle()?;
        if self.worker(good).is_none() {
            return Err("the draining worker was not registered".into());
        }
        let mut rounds = 0u64;
        while self.scheduler.open_jobs() > 0 {
            rounds += 1;
            if rounds > 1_000_000 {
                return Err("draining does not make progress".into());
            }
            let worker = self.worker(good).ok_or("the draining worker was dropped")?;
            let batches: Vec<u64> = self
                .scheduler
                .leased_batches()
                .into_iter()
                .filter(|&b| self.scheduler.lease_worker(b) == Some(worker))
                .collect();
            if batches.is_empty() {
                return Err(format!(
                    "{} job(s) open but nothing leased to the draining worker; queues: {:?}",
                    self.scheduler.open_jobs(),
                    self.scheduler.queue_depths()
                ));
            }
            // Every batch it holds per round: the checks after each round cost O(units).
            for batch in batches {
                self.answer_batch(good, batch, usize::MAX, false, false, false);
            }
            self.settle()?;
        }
        if self.scheduler.queued_bytes() != 0 {
            return Err(format!(
                "every job is done but {} bytes are still queued",
                self.scheduler.queued_bytes()
            ));
        }
        for job in self.jobs.iter().filter(|j| !j.cancelled) {
            if !job.done {
                return Err(format!("job {} never finished", job.id));
            }
            if let Some(index) = job.delivered.iter().position(|&n| n != 1) {
                return Err(format!(
                    "job {} unit {index} was delivered {} times",
                    job.id, job.delivered[index]
                ));
            }
        }
        Ok(())
    }

    fn worker(&self, peer: u8) -> Option<WorkerId> {
        self.peers[usize::from(peer) % self.peers.len()]
    }

    fn pick_job(&self, pick: u8) -> Option<usize> {
        (!self.jobs.is_empty()).then(|| usize::from(pick) % self.jobs.len())
    }

    fn extend(&mut self, at: usize, units: u8) {
        let job = &mut self.jobs[at];
        let payloads: Vec<Payload> = (0..units)
            .map(|i| Payload::from_slice(&vec![i; job.payload_len]))
            .collect();
        if self.scheduler.extend(job.id, payloads) {
            job.total += u64::from(units);
            job.delivered.resize(job.total as usize, 0);
        }
    }

    fn seal(&mut self, at: usize) {
        let job = &mut self.jobs[at];
        job.sealed = true;
        self.scheduler.seal(job.id);
    }

    /// Ids of the units leased to `worker`, in batch order.
    fn units_of(&self, worker: WorkerId) -> Vec<u64> {
        self.scheduler
            .leased_batches()
            .into_iter()
            .filter(|&b| self.scheduler.lease_worker(b) == Some(worker))
            .flat_map(|b| self.scheduler.lease_units(b))
            .collect()
    }

    fn answer(&mut self, peer: u8, pick: u16, count: u16, fail: bool, dup: bool, resend: bool) {
        let batches = self.scheduler.leased_batches();
        if batches.is_empty() {
            return;
        }
        let batch = batches[usize::from(pick) % batches.len()];
        self.answer_batch(peer, batch, usize::from(count), fail, dup, resend);
    }

    fn answer_batch(
        &mut self,
        peer: u8,
        batch: u64,
        count: usize,
        fail: bool,
        duplicate: bool,
        resend: bool,
    ) {
        let units = self.scheduler.lease_units(batch);
        let n = if count == usize::MAX {
            units.len()
        } else {
            count % (units.len() + 1)
        };
        let mut ids: Vec<u64> = units[..n].to_vec();
        // The scheduler accepts a failure as an attempt only from the lease's holder, and only
        // while the unit is open: that is what its retry state must then show.
        let holder = self.scheduler.lease_worker(batch);
        if fail && holder.is_some() && holder == self.worker(peer) {
            for &id in &ids {
                if self.is_open(id) {
                    *self.attempts.entry(id).or_default() += 1;
                }
            }
        }
        if duplicate && !ids.is_empty() {
            ids.push(ids[0]);
        }
        let outputs: Vec<[u8; 8]> = ids.iter().map(|id| id.to_le_bytes()).collect();
        let results = ids
            .iter()
            .zip(&outputs)
            .map(|(&id, output)| UnitResultRef {
                id,
                outcome: if fail { Err("boom") } else { Ok(&output[..]) },
            })
            .collect();
        let message = Message::Results(Results {
            batch,
            elapsed_us: 1 + n as u64,
            results,
        });
        self.send(peer, &message);
        if resend {
            self.send(peer, &message);
        }
    }

    /// Whether unit `id` belongs to a job that is neither cancelled nor done, and has no
    /// outcome yet.
    fn is_open(&self, id: u64) -> bool {
        let (job, index) = split_unit_id(id);
        self.jobs.iter().any(|j| {
            j.id == job
                && !j.cancelled
                && !j.done
                && j.delivered.get(index as usize).is_some_and(|&n| n == 0)
        })
    }

    fn send(&mut self, peer: u8, message: &Message<'_>) {
        let mut frame = Vec::new();
        protocol::encode(message, &mut frame);
        self.frame(peer, &frame);
    }

    /// What the engine's `handle_frame` does with one body frame from `peer`.
    fn frame(&mut self, peer: u8, bytes: &[u8]) {
        let peer = usize::from(peer) % self.peers.len();
        let worker = self.peers[peer];
        let bad = if bytes.len() as u64 > self.scheduler.config().max_frame {
            self.dropped.oversize += 1;
            true
        } else {
            match protocol::decode(bytes) {
                Ok(message) => {
                    self.message(peer, worker, message);
                    false
                }
                Err(e) => {
                    match e.kind() {
                        "unknown_type" => self.dropped.unknown_type += 1,
                        _ => self.dropped.malformed += 1,
                    }
                    true
                }
            }
        };
        if bad {
            if let Some(worker) = worker {
                self.scheduler.worker_lost(worker, "bad frame");
            }
        }
    }

    /// What the engine's `handle_message` does with a decoded message.
    fn message(&mut self, peer: usize, worker: Option<WorkerId>, message: Message<'_>) {
        let now = self.now;
        match (worker, message) {
            (Some(worker), Message::Results(results)) => {
                self.scheduler.results(now, worker, &results)
            }
            (Some(worker), Message::Heartbeat) => self.scheduler.heard_from(now, worker),
            (Some(worker), Message::Goodbye(goodbye)) => {
                self.scheduler.goodbye(now, worker, &goodbye)
            }
            (registered, Message::Hello(hello)) => {
                if let Some(old) = registered {
                    self.scheduler.worker_lost(old, "registered again");
                    self.peers[peer] = None;
                }
                match self.scheduler.hello(now, &hello) {
                    Ok(welcome) => self.peers[peer] = Some(welcome.worker_id),
                    Err(_) => self.dropped.rejected += 1,
                }
            }
            (None, Message::Heartbeat | Message::Results(_) | Message::Goodbye(_)) => {
                self.dropped.unregistered += 1
            }
            (registered, _) => {
                self.dropped.unexpected += 1;
                if let Some(worker) = registered {
                    self.scheduler.worker_lost(worker, "unexpected message");
                }
            }
        }
    }

    /// Fills, carries out the actions as the engine would, and checks every invariant.
    fn settle(&mut self) -> Result<(), String> {
        self.scheduler.fill(self.now);
        let actions: Vec<Action> = self.scheduler.drain_actions().collect();
        let max_attempts = self.scheduler.config().max_attempts as usize;
        for action in actions {
            match action {
                Action::Forget { worker, .. } => {
                    for slot in &mut self.peers {
                        if *slot == Some(worker) {
                            *slot = None;
                        }
                    }
                }
                Action::Deliver { job, outcomes } => {
                    let client = self
                        .jobs
                        .iter_mut()
                        .find(|j| j.id == job)
                        .ok_or_else(|| format!("delivery for unknown job {job}"))?;
                    if client.cancelled {
                        // The engine drops deliveries for a cancelled job: nobody listens.
                        continue;
                    }
                    for outcome in outcomes {
                        let slot = client
                            .delivered
                            .get_mut(outcome.index as usize)
                            .ok_or_else(|| {
                                format!(
                                    "job {job}: delivery for unit {} never submitted",
                                    outcome.index
                                )
                            })?;
                        *slot += 1;
                        if *slot > 1 {
                            return Err(format!(
                                "job {job} unit {} delivered twice",
                                outcome.index
                            ));
                        }
                        let id = crate::scheduler::unit_id(job, outcome.index);
                        let seen = self.attempts.remove(&id).unwrap_or(0);
                        if let Err(failure) = &outcome.result {
                            if failure.errors.len() != max_attempts || seen != max_attempts {
                                return Err(format!(
                                    "job {job} unit {} failed after {} recorded errors, {seen} \
                                     failed attempts seen, max_attempts {max_attempts}",
                                    outcome.index,
                                    failure.errors.len()
                                ));
                            }
                        }
                    }
                }
                Action::JobDone(job) => {
                    let client = self
                        .jobs
                        .iter_mut()
                        .find(|j| j.id == job)
                        .ok_or_else(|| format!("unknown job {job} done"))?;
                    if client.done || !client.sealed || client.delivered.iter().any(|&n| n != 1) {
                        return Err(format!("job {job} reported done before its time"));
                    }
                    client.done = true;
                }
                Action::SendWork { .. } | Action::SendHeartbeat(_) => {}
            }
        }
        self.scheduler.check_invariants()?;
        let registered: HashSet<WorkerId> = self.peers.iter().flatten().copied().collect();
        if registered.len() != self.peers.iter().flatten().count()
            || registered.iter().any(|&w| !self.scheduler.has_worker(w))
        {
            return Err(format!(
                "peer table {:?} disagrees with the scheduler",
                self.peers
            ));
        }
        for (&id, &seen) in &self.attempts {
            if self.is_open(id) && self.scheduler.attempts(id) != seen {
                return Err(format!(
                    "unit {id:#x}: {seen} failed attempts seen, the scheduler keeps {}",
                    self.scheduler.attempts(id)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
