//! The `goodbye` check: a graceful stop on SIGTERM, judged by bounds that load cannot break.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::lifecycle::wait_heartbeats;
use super::{capacity, register_patiently, Ctx, Unit};
use crate::peer::{Incoming, Msg};

/// `goodbye`: with more one-unit `sleep` batches outstanding than slots, SIGTERM brings a
/// goodbye; every unit is returned or answered, never both, never neither; work sent after the
/// goodbye comes back in another; the worker exits 0.
///
/// Criteria for "hands back what it has not started" that load cannot break: SIGTERM is sent
/// before any of the 1 s units can have finished (checked, not assumed), so every answer is to
/// a unit running when the worker stopped: at most `slots` answers in all. And after its
/// (first) goodbye the worker may answer only units it was running, so at most `slots` answers
/// arrive after the goodbye.
pub(super) fn goodbye(ctx: &mut Ctx<'_>) -> Result<(), String> {
    const SLEEP: Duration = Duration::from_millis(1000);
    let grace = ctx.options.grace;
    let peer = ctx.start()?;
    let hello = register_patiently(peer)?;
    let slots = hello.slots.max(1) as usize;
    let n = (slots + 4).min(capacity(&hello));
    if n <= slots {
        peer.warnings.push(format!(
            "slots + prefetch is {n}: nothing beyond the running units to hand back"
        ));
    }
    let units: Vec<Unit> = (0..n as u64)
        .map(|i| Unit::sleep(500 + i, SLEEP.as_micros() as u64))
        .collect();
    // Sent once the goodbye is in, as work that crossed it: it must come back in another one.
    let late = Unit::sleep(600, SLEEP.as_micros() as u64);
    let mut late_sent: Option<Instant> = None;
    let mut unit_of: HashMap<u64, (u64, &Unit)> = HashMap::new();
    let first_sent = Instant::now();
    for unit in &units {
        let batch = peer.send_work(std::slice::from_ref(unit));
        unit_of.insert(unit.id, (batch, unit));
    }
    let mut answered: HashMap<u64, Instant> = HashMap::new();
    let mut returned: HashSet<u64> = HashSet::new();
    let mut goodbye_at: Option<Instant> = None;
    // Give the worker time to read the work and start some of it.
    let early = wait_heartbeats(peer, Duration::from_millis(400))?;
    record(
        &early,
        &unit_of,
        &mut answered,
        &mut returned,
        &mut goodbye_at,
    )?;
    peer.terminate();
    let terminated = Instant::now();
    // Whether SIGTERM left before any unit can have finished: then every answer is to a unit
    // that was running when the worker stopped, or one it started after (a fault).
    let before_any_finished = terminated.duration_since(first_sent) < SLEEP;
    let (status, exited_at) = loop {
        if let Some(status) = peer.exited() {
            break (status, Instant::now());
        }
        if goodbye_at.is_some() && late_sent.is_none() {
            let batch = peer.send_work(std::slice::from_ref(&late));
            unit_of.insert(late.id, (batch, &late));
            late_sent = Some(Instant::now());
        }
        if terminated.elapsed() > grace {
            return Err(format!(
                "the worker still runs {} s after SIGTERM",
                grace.as_secs_f64()
            ));
        }
        if let Some(incoming) = peer.recv(Duration::from_millis(50)) {
            record(
                &[incoming],
                &unit_of,
                &mut answered,
                &mut returned,
                &mut goodbye_at,
            )?;
        }
    };
    // Frames it sent before exiting may still be queued here.
    while let Some(incoming) = peer.recv(Duration::from_millis(200)) {
        record(
            &[incoming],
            &unit_of,
            &mut answered,
            &mut returned,
            &mut goodbye_at,
        )?;
    }
    let Some(goodbye_at) = goodbye_at else {
        return Err(format!(
            "no goodbye after SIGTERM (§4 step 8); {} units answered, the worker exited with \
             {status}",
            answered.len()
        ));
    };
    let mut neither: Vec<u64> = unit_of
        .keys()
        .filter(|id| !answered.contains_key(id) && !returned.contains(id) && **id != late.id)
        .copied()
        .collect();
    neither.sort_unstable();
    if !neither.is_empty() {
        return Err(format!(
            "units {neither:?} were neither answered nor handed back in a goodbye (§3 goodbye)"
        ));
    }
    if let Some(sent) = late_sent {
        let unaccounted = !answered.contains_key(&late.id) && !returned.contains(&late.id);
        // A worker reads its socket at least every heartbeat; one that ran on for half a
        // second after the late work was sent has read it, unless it stopped reading.
        let ran_on = exited_at.saturating_duration_since(sent);
        if unaccounted && ran_on > Duration::from_millis(500) {
            return Err(format!(
                "work sent after the goodbye (unit {}) was neither handed back in another goodbye \
                 nor answered, though the worker ran {} ms longer (§3 goodbye: work already on \
                 its way is handed back with another goodbye)",
                late.id,
                ran_on.as_millis()
            ));
        }
        if unaccounted {
            peer.warnings.push(format!(
                "the worker exited {} ms after work crossed its goodbye, without handing it back \
                 (too soon to say it should have)",
                ran_on.as_millis()
            ));
        }
    }
    let after: Vec<u64> = answered
        .iter()
        .filter(|(_, at)| **at > goodbye_at)
        .map(|(id, _)| *id)
        .collect();
    if before_any_finished && answered.len() > slots {
        let mut ids: Vec<u64> = answered.keys().copied().collect();
        ids.sort_unstable();
        return Err(format!(
            "SIGTERM went {} ms after the work, before any {} ms unit could have finished, so \
             at most the {slots} running units may be answered; {} were ({ids:?}): the worker \
             started units it should have handed back (§4 step 8)",
            terminated.duration_since(first_sent).as_millis(),
            SLEEP.as_millis(),
            answered.len()
        ));
    }
    if !before_any_finished {
        peer.warnings.push(format!(
            "the suite was slow: SIGTERM went {} ms after the work, so only answers after the \
             goodbye were counted",
            terminated.duration_since(first_sent).as_millis()
        ));
    }
    if after.len() > slots {
        return Err(format!(
            "{} units were answered after the goodbye ({after:?}), more than the {slots} that \
             can have been running when the worker stopped: it started units it should have \
             handed back (§4 step 8)",
            after.len()
        ));
    }
    if !status.success() {
        return Err(format!(
            "after SIGTERM the worker exited with {status}; a graceful stop exits 0"
        ));
    }
    Ok(())
}

/// Files what arrived during the goodbye check, failing on a unit answered or returned twice.
fn record(
    incoming: &[Incoming],
    unit_of: &HashMap<u64, (u64, &Unit)>,
    answered: &mut HashMap<u64, Instant>,
    returned: &mut HashSet<u64>,
    goodbye_at: &mut Option<Instant>,
) -> Result<(), String> {
    for incoming in incoming {
        match &incoming.msg {
            Msg::Heartbeat => {}
            Msg::Goodbye(ids) => {
                goodbye_at.get_or_insert(incoming.at);
                for id in ids {
                    if !unit_of.contains_key(id) {
                        return Err(format!("the goodbye returns unit {id}, never sent"));
                    }
                    if answered.contains_key(id) {
                        return Err(format!("unit {id} was answered and also handed back"));
                    }
                    if !returned.insert(*id) {
                        return Err(format!("unit {id} was handed back twice"));
                    }
                }
            }
            Msg::Results(results) => {
                for (id, outcome) in &results.results {
                    let Some((batch, unit)) = unit_of.get(id) else {
                        return Err(format!("a result for unit {id}, never sent"));
                    };
                    if *batch != results.batch {
                        return Err(format!(
                            "unit {id} came in batch {batch} but was answered as batch {}",
                            results.batch
                        ));
                    }
                    unit.judge(outcome)?;
                    if returned.contains(id) {
                        return Err(format!("unit {id} was handed back and also answered"));
                    }
                    if answered.insert(*id, incoming.at).is_some() {
                        return Err(format!("unit {id} was answered twice"));
                    }
                }
            }
            other => {
                return Err(format!(
                    "while stopping the worker sent {}",
                    other.describe()
                ))
            }
        }
    }
    Ok(())
}
