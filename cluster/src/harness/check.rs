//! After each step: the scheduler's actions carried out as the engine carries them out, what
//! the delegator sent read by its workers, and every invariant checked.

use ganger_core::protocol::{self, Message};

use super::Harness;
use crate::engine::Turn;
use crate::scheduler::Action;

impl Harness {
    /// Fills, carries out the actions as the engine would, and checks every invariant.
    pub(super) fn settle(&mut self) -> Result<(), String> {
        self.scheduler.fill(self.now);
        loop {
            let actions: Vec<Action> = self.scheduler.drain_actions().collect();
            if actions.is_empty() {
                break;
            }
            for action in actions {
                self.carry_out(action)?;
            }
        }
        self.read_sent()?;
        self.check()
    }

    /// What the engine's `carry_out` does, and what a client sees of deliveries.
    fn carry_out(&mut self, action: Action) -> Result<(), String> {
        let max_attempts = self.scheduler.config().max_attempts as usize;
        let mut turn = Turn {
            scheduler: &mut self.scheduler,
            out: &mut self.out,
            now: self.now,
        };
        match action {
            Action::Forget { worker, reason } => self.dispatch.forget(turn.out, worker, reason),
            Action::SendWork { worker, batch } => {
                let mut frame = Vec::new();
                if turn.scheduler.encode_work(batch, &mut frame) {
                    self.dispatch.send_to(&mut turn, worker, frame);
                }
            }
            Action::SendHeartbeat(worker) => {
                let mut frame = Vec::new();
                protocol::encode(&Message::Heartbeat, &mut frame);
                self.dispatch.send_to(&mut turn, worker, frame);
            }
            Action::Deliver { job, outcomes } => {
                let client = self
                    .jobs
                    .iter_mut()
                    .find(|j| j.id == job)
                    .ok_or_else(|| format!("delivery for unknown job {job}"))?;
                if client.cancelled {
                    // The engine drops deliveries for a cancelled job: nobody listens.
                    return Ok(());
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
                        return Err(format!("job {job} unit {} delivered twice", outcome.index));
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
        }
        Ok(())
    }

    /// Every simulated worker reads what the delegator sent it.
    fn read_sent(&mut self) -> Result<(), String> {
        let secret = self.secret.is_some();
        for (id, frame) in self.out.take() {
            let peer = id[0];
            let session = &mut self.sessions[usize::from(peer)];
            if id[1] != session.connection {
                // For a connection since lost: nobody reads it.
                continue;
            }
            session
                .incoming(&frame, secret)
                .map_err(|e| format!("peer {peer}: {e}"))?;
        }
        Ok(())
    }

    /// The scheduler's invariants, the peer table's, the gate's promise, and failed attempts.
    fn check(&self) -> Result<(), String> {
        self.scheduler.check_invariants()?;
        self.dispatch.check_peer_table(&self.scheduler)?;
        if self.secret.is_some() {
            for (index, session) in self.sessions.iter().enumerate() {
                if self.worker(index as u8).is_some() && !session.proved {
                    return Err(format!(
                        "peer {index} is registered without a genuine proof"
                    ));
                }
            }
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
