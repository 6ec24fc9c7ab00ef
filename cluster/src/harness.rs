//! A socket-free driver of the delegator's message handling, for property tests and fuzzing.
//!
//! Frames from simulated peers go through the engine's own dispatch (the size limits, the
//! authentication gate, [`protocol::decode`], each message type to the [`Scheduler`]; the code
//! the engine runs, lent a recording outbox instead of the ROUTER) and client steps (submit,
//! extend, seal, cancel) through what the engine does with commands. After every step the
//! scheduler is filled, its actions carried out as the engine would (work and heartbeats sent
//! through the dispatch, so sealed when a session exists), every frame sent read back as its
//! worker would read it, and the invariants checked along with what only an observer can check:
//! every outcome is delivered at most once, failed attempts are kept across requeues, and with a
//! secret no peer is registered without a genuine proof.
//! [`Harness::finish`] then lets one well-behaved worker drain everything and checks that every
//! unit of every job not cancelled was delivered exactly once.

mod check;
mod step;
mod wire;

use std::collections::HashMap;

use ganger_core::payload::Payload;
use ganger_core::protocol::secure::Secret;
use ganger_core::protocol::{
    self, Goodbye, Hello, Message, Results, UnitResultRef, PROTOCOL_VERSION,
};
use ganger_transport::frames::Incoming;

use crate::engine::{Dispatch, Gate, Turn};
use crate::scheduler::{split_unit_id, JobId, Millis, Scheduler, SchedulerConfig, WorkerId};
use crate::DroppedFrames;
pub use step::Step;
use wire::{Recorder, Session};

/// The job types the harness's jobs use; peers serve a subset (or a wildcard).
pub const JOB_TYPES: [&str; 3] = ["mcmc/a", "mcmc/b", "square"];

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
pub struct Harness {
    scheduler: Scheduler,
    dispatch: Dispatch,
    out: Recorder,
    secret: Option<Secret>,
    now: Millis,
    /// Each simulated peer's session, by peer index (its routing id is that index and its
    /// connection's number); the last is the drainer of [`Harness::finish`], which no step
    /// addresses.
    sessions: Vec<Session>,
    jobs: Vec<ClientJob>,
    /// Failed attempts the scheduler accepted, per unit, as seen from outside.
    attempts: HashMap<u64, usize>,
}

impl Harness {
    /// A harness with `n_peers` simulated peers (at most 255) and a scheduler with `config`;
    /// the delegator has no secret.
    pub fn new(config: SchedulerConfig, n_peers: usize) -> Self {
        Harness::build(config, n_peers, None)
    }

    /// The same with a cluster secret: every peer must pass the authentication gate, and the
    /// harness's peers do the handshake (a `hello` step, then an `auth` step).
    pub fn with_secret(config: SchedulerConfig, n_peers: usize, secret: &[u8]) -> Self {
        let secret = Secret::new(secret).expect("the harness's secret is long enough");
        Harness::build(config, n_peers, Some(secret))
    }

    fn build(config: SchedulerConfig, n_peers: usize, secret: Option<Secret>) -> Self {
        let gate = Gate::new(secret.clone(), config.timeout_ms);
        Harness {
            scheduler: Scheduler::new(config),
            dispatch: Dispatch::new(gate),
            out: Recorder::default(),
            secret,
            now: 0,
            sessions: (0..=n_peers.clamp(1, 255))
                .map(|_| Session::default())
                .collect(),
            jobs: Vec::new(),
            attempts: HashMap::new(),
        }
    }

    /// The scheduler, for assertions.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Frames dropped or refused so far, by cause.
    pub fn dropped(&self) -> &DroppedFrames {
        self.dispatch.dropped()
    }

    /// Takes one step, then fills, carries out actions and checks every invariant.
    pub fn step(&mut self, step: &Step) -> Result<(), String> {
        let step = &self.resolve(step);
        match step {
            Step::Frame { peer, bytes } => self.frame(*peer, bytes.clone()),
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
                self.hello(*peer, hello);
            }
            Step::Auth { peer, forge } => {
                let frame = self.sessions[usize::from(*peer)].auth(self.secret.as_ref(), *forge);
                self.frame(*peer, frame);
            }
            Step::Replay { peer, pick, tamper } => {
                if let Some(frame) = self.sessions[usize::from(*peer)].replay(*pick, *tamper) {
                    self.frame(*peer, frame);
                }
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
                // What the engine learns from a failed send; the peer comes back, as a
                // reconnecting DEALER does, under a new routing id.
                let worker = self.worker(*peer);
                self.out.disconnect(&self.routing_id(*peer));
                self.sessions[usize::from(*peer)].lost();
                if let Some(worker) = worker {
                    self.scheduler.worker_disconnected(worker);
                }
            }
            Step::Advance { ms } => {
                self.now += u64::from(*ms);
                self.scheduler.tick(self.now);
                self.dispatch.expire(self.now);
            }
            Step::Submit {
                job_type,
                priority,
                units,
                payload_len,
                seal,
                grouped,
            } => {
                let job_type = JOB_TYPES[usize::from(*job_type) % JOB_TYPES.len()];
                let id = self.scheduler.submit(job_type, i32::from(*priority));
                if *grouped {
                    self.scheduler.set_group(id, "g");
                }
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
        for worker in self.dispatch.workers() {
            self.scheduler.worker_lost(worker, "finishing");
        }
        self.settle()?;
        let good = (self.sessions.len() - 1) as u8;
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            name: "drainer".into(),
            host: "harness".into(),
            job_types: vec!["*".into()],
            slots: 64,
            prefetch: 1024,
            nonce: None,
        };
        self.hello(good, hello);
        self.settle()?;
        if self.secret.is_some() {
            let frame = self.sessions[usize::from(good)].auth(self.secret.as_ref(), false);
            self.frame(good, frame);
            self.settle()?;
        }
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

    /// The step with its `peer` turned into a peer index (modulo the peers; never the
    /// drainer's). Below, `peer` is such an index, which is also the peer's routing id.
    fn resolve(&self, step: &Step) -> Step {
        let mut step = step.clone();
        let n = (self.sessions.len() - 1) as u8;
        match &mut step {
            Step::Frame { peer, .. }
            | Step::Hello { peer, .. }
            | Step::Answer { peer, .. }
            | Step::BogusResults { peer, .. }
            | Step::Heartbeat { peer }
            | Step::Goodbye { peer, .. }
            | Step::Disconnect { peer }
            | Step::Auth { peer, .. }
            | Step::Replay { peer, .. } => *peer %= n,
            Step::Advance { .. }
            | Step::Submit { .. }
            | Step::Extend { .. }
            | Step::Seal { .. }
            | Step::Cancel { .. } => {}
        }
        step
    }

    fn worker(&self, peer: u8) -> Option<WorkerId> {
        self.dispatch.worker_of(&self.routing_id(peer))
    }

    /// The peer's routing id on its current connection: its index and how many times its
    /// connection was lost before.
    fn routing_id(&self, peer: u8) -> [u8; 2] {
        [peer, self.sessions[usize::from(peer)].connection]
    }

    /// Sends a `hello` (with a nonce when the harness has a secret).
    fn hello(&mut self, peer: u8, hello: Hello) {
        let secret = self.secret.is_some();
        let frame = self.sessions[usize::from(peer)].hello(hello, peer, secret);
        self.frame(peer, frame);
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

    /// Sends a message as the peer's worker would: sealed if it has a session.
    fn send(&mut self, peer: u8, message: &Message<'_>) {
        let mut frame = Vec::new();
        protocol::encode(message, &mut frame);
        let frame = self.sessions[usize::from(peer)].outgoing(frame);
        self.frame(peer, frame);
    }

    /// One body frame from `peer`, through the engine's dispatch; then the peers read what the
    /// delegator sent.
    fn frame(&mut self, peer: u8, bytes: Vec<u8>) {
        let incoming = Incoming {
            peer: self.routing_id(peer).to_vec(),
            body: zmq::Message::from(bytes),
            parts: 1,
        };
        let mut turn = Turn {
            scheduler: &mut self.scheduler,
            out: &mut self.out,
            now: self.now,
        };
        self.dispatch.frame(&mut turn, incoming);
    }
}

#[cfg(test)]
mod tests;
