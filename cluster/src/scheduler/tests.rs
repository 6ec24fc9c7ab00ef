//! Scheduler unit tests with logical time: no sockets, no threads, no sleeps.

use std::collections::VecDeque;

use ganger_core::payload::Payload;
use ganger_core::protocol::{
    self, Goodbye, Hello, Message, Results, UnitResultRef, PROTOCOL_VERSION,
};

use super::*;

fn hello(job_types: &[&str], slots: u32, prefetch: u32) -> Hello {
    Hello {
        protocol: PROTOCOL_VERSION,
        name: "w".into(),
        host: "h".into(),
        job_types: job_types.iter().map(|s| s.to_string()).collect(),
        slots,
        prefetch,
        nonce: None,
    }
}

fn fixed(n: u32) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        batching: Batching::Fixed(n),
        ..SchedulerConfig::default()
    })
}

fn register(s: &mut Scheduler, job_types: &[&str], slots: u32, prefetch: u32) -> WorkerId {
    s.hello(0, &hello(job_types, slots, prefetch))
        .unwrap()
        .worker_id
}

fn job(s: &mut Scheduler, job_type: &str, priority: i32, n: u64) -> JobId {
    let job = s.submit(job_type, priority);
    assert!(s.extend(job, (0..n).map(|i| Payload::from_slice(&i.to_le_bytes()))));
    s.seal(job);
    job
}

/// Fills and returns the batches sent, as (worker, batch, unit ids).
fn sent(s: &mut Scheduler, now: Millis) -> Vec<(WorkerId, BatchId, Vec<u64>)> {
    s.fill(now);
    let actions: Vec<_> = s.drain_actions().collect();
    actions
        .into_iter()
        .filter_map(|a| match a {
            Action::SendWork { worker, batch } => Some((worker, batch, s.lease_units(batch))),
            _ => None,
        })
        .collect()
}

/// Answers every unit of `batch` with `outcome(id)`, as `worker`.
fn answer(
    s: &mut Scheduler,
    now: Millis,
    worker: WorkerId,
    batch: BatchId,
    ids: &[u64],
    outcome: impl Fn(u64) -> Result<Vec<u8>, String>,
) -> Vec<Action> {
    let owned: Vec<_> = ids.iter().map(|&id| (id, outcome(id))).collect();
    let results = Results {
        batch,
        elapsed_us: 100,
        results: owned
            .iter()
            .map(|(id, o)| UnitResultRef {
                id: *id,
                outcome: o.as_ref().map(Vec::as_slice).map_err(String::as_str),
            })
            .collect(),
    };
    s.results(now, worker, &results);
    s.drain_actions().collect()
}

fn delivered(actions: &[Action]) -> Vec<Outcome> {
    actions
        .iter()
        .flat_map(|a| match a {
            Action::Deliver { outcomes, .. } => outcomes.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn echo(id: u64) -> Result<Vec<u8>, String> {
    Ok(split_unit_id(id).1.to_le_bytes().to_vec())
}

#[test]
fn a_worker_never_holds_more_than_its_capacity() {
    let mut s = fixed(2);
    let w = register(&mut s, &["t"], 2, 1); // capacity 3
    job(&mut s, "t", 0, 10);
    let batches = sent(&mut s, 0);
    let leased: usize = batches.iter().map(|b| b.2.len()).sum();
    assert_eq!(leased, 3, "{batches:?}");
    assert!(sent(&mut s, 1).is_empty(), "no credit left");
    let (_, batch, ids) = batches[0].clone();
    answer(&mut s, 2, w, batch, &ids, echo);
    let more: usize = sent(&mut s, 3).iter().map(|b| b.2.len()).sum();
    assert_eq!(more, ids.len(), "credit returns as results arrive");
}

#[test]
fn every_unit_is_delivered_exactly_once_and_the_job_ends() {
    let mut s = fixed(3);
    let w = register(&mut s, &["t"], 4, 100);
    let j = job(&mut s, "t", 0, 10);
    let mut outcomes = Vec::new();
    let mut done = false;
    for now in 0..10 {
        for (_, batch, ids) in sent(&mut s, now) {
            let actions = answer(&mut s, now, w, batch, &ids, echo);
            // The same results again are duplicates.
            let again = answer(&mut s, now, w, batch, &ids, echo);
            assert!(delivered(&again).is_empty());
            done |= actions.contains(&Action::JobDone(j));
            outcomes.extend(delivered(&actions));
        }
    }
    assert!(done);
    let mut indices: Vec<u64> = outcomes.iter().map(|o| o.index).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..10).collect::<Vec<_>>());
    for o in &outcomes {
        assert_eq!(o.result, Ok(Payload::from_slice(&o.index.to_le_bytes())));
    }
    assert_eq!(s.counters().completed, 10);
    assert_eq!(s.counters().duplicates, 10);
    assert_eq!(s.open_jobs(), 0);
}

#[test]
fn a_silent_worker_times_out_and_its_units_go_to_another() {
    let mut s = fixed(5);
    let silent = register(&mut s, &["t"], 1, 9);
    job(&mut s, "t", 0, 5);
    let first = sent(&mut s, 0);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, silent);
    let other = register(&mut s, &["t"], 1, 9);
    assert!(sent(&mut s, 1).is_empty(), "all units are leased");
    s.tick(s.config().timeout_ms); // exactly at the timeout: still alive
    assert!(s.has_worker(silent));
    s.heard_from(s.config().timeout_ms, other);
    s.tick(s.config().timeout_ms + 1);
    assert!(!s.has_worker(silent));
    let forgotten: Vec<_> = s.drain_actions().collect();
    assert!(forgotten
        .iter()
        .any(|a| matches!(a, Action::Forget { worker, .. } if *worker == silent)));
    let again = sent(&mut s, 5001);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, other);
    assert_eq!(again[0].2, first[0].2);
    assert_eq!(s.counters().requeued, 5);
    assert_eq!(s.counters().timeouts, 1);
}

#[test]
fn a_late_result_is_accepted_once_then_the_copy_is_a_duplicate() {
    let mut s = fixed(1);
    let slow = register(&mut s, &["t"], 1, 0);
    job(&mut s, "t", 0, 1);
    let (_, old_batch, ids) = sent(&mut s, 0).remove(0);
    let fast = register(&mut s, &["t"], 1, 0);
    s.heard_from(6000, fast);
    s.tick(6000);
    let (_, new_batch, _) = sent(&mut s, 6000).remove(0);
    // The slow worker's result for the old lease arrives after all (it re-registered).
    let slow_again = register(&mut s, &["t"], 1, 0);
    assert_ne!(slow, slow_again);
    let actions = answer(&mut s, 6001, slow_again, old_batch, &ids, echo);
    assert_eq!(delivered(&actions).len(), 1);
    assert_eq!(s.counters().late_accepted, 1);
    let actions = answer(&mut s, 6002, fast, new_batch, &ids, echo);
    assert!(delivered(&actions).is_empty());
    assert_eq!(s.counters().duplicates, 1);
}

#[test]
fn goodbye_requeues_returned_units_at_once() {
    let mut s = fixed(4);
    let leaving = register(&mut s, &["t"], 1, 7);
    job(&mut s, "t", 0, 8);
    let batches = sent(&mut s, 0);
    assert_eq!(batches.len(), 2);
    let staying = register(&mut s, &["t"], 1, 7);
    // It finished the first batch's first unit, is running the second, and hands back the rest.
    let (_, b1, ids1) = batches[0].clone();
    let (_, _, ids2) = batches[1].clone();
    answer(&mut s, 1, leaving, b1, &ids1[..1], echo);
    let mut returned = ids1[2..].to_vec();
    returned.extend(&ids2);
    s.goodbye(
        1,
        leaving,
        &Goodbye {
            returned: returned.clone(),
        },
    );
    assert!(
        s.has_worker(leaving),
        "still owes a result for the unit it is running"
    );
    let moved: Vec<u64> = sent(&mut s, 1)
        .into_iter()
        .flat_map(|b| {
            assert_eq!(b.0, staying);
            b.2
        })
        .collect();
    let mut moved_sorted = moved.clone();
    moved_sorted.sort_unstable();
    returned.sort_unstable();
    assert_eq!(moved_sorted, returned);
    answer(&mut s, 2, leaving, b1, &ids1[1..2], echo);
    assert!(!s.has_worker(leaving), "forgotten once it owes nothing");
}

#[test]
fn a_failing_unit_is_retried_elsewhere_then_reported_with_every_error() {
    let mut s = fixed(1);
    let a = register(&mut s, &["t"], 1, 0);
    let b = register(&mut s, &["t"], 1, 0);
    job(&mut s, "t", 0, 1);
    let mut tried = Vec::new();
    let mut outcomes = Vec::new();
    for now in 0..10 {
        for (worker, batch, ids) in sent(&mut s, now) {
            tried.push(worker);
            let actions = answer(&mut s, now, worker, batch, &ids, |_| {
                Err(format!("boom on {worker}"))
            });
            outcomes.extend(delivered(&actions));
        }
    }
    assert_eq!(tried.len(), 3);
    assert!(
        tried.windows(2).all(|w| w[0] != w[1]),
        "never twice in a row on one worker: {tried:?}"
    );
    assert!(tried.contains(&a) && tried.contains(&b));
    assert_eq!(outcomes.len(), 1);
    let failure = outcomes[0].result.clone().unwrap_err();
    assert_eq!(failure.errors.len(), 3);
    assert_eq!(failure.errors[0], format!("boom on {}", tried[0]));
    assert_eq!(s.counters().failed, 1);
    assert_eq!(s.counters().retried, 2);
    // Each worker shows the errors its own attempts failed with.
    for info in s.workers() {
        let own = format!("boom on {}", info.id);
        let attempts = tried.iter().filter(|&&w| w == info.id).count();
        assert_eq!(info.last_errors, vec![own; attempts], "worker {}", info.id);
    }
}

#[test]
fn a_lone_worker_retries_its_own_failures() {
    let mut s = fixed(1);
    let w = register(&mut s, &["t"], 1, 0);
    job(&mut s, "t", 0, 1);
    let mut attempts = 0;
    for now in 0..10 {
        for (_, batch, ids) in sent(&mut s, now) {
            attempts += 1;
            answer(&mut s, now, w, batch, &ids, |_| Err("no".into()));
        }
    }
    assert_eq!(attempts, 3);
}

#[test]
fn higher_priority_jobs_go_first() {
    let mut s = fixed(1);
    let low = job(&mut s, "t", 0, 3);
    let high = job(&mut s, "t", 5, 3);
    let w = register(&mut s, &["t"], 1, 0);
    let mut order = Vec::new();
    for now in 0..10 {
        for (_, batch, ids) in sent(&mut s, now) {
            order.push(split_unit_id(ids[0]).0);
            answer(&mut s, now, w, batch, &ids, echo);
        }
    }
    assert_eq!(order, vec![high, high, high, low, low, low]);
}

#[test]
fn units_reach_only_workers_that_serve_their_job_type() {
    let mut s = fixed(1);
    let a = register(&mut s, &["a"], 1, 3);
    let b = register(&mut s, &["b", "c"], 1, 3);
    let ja = job(&mut s, "a", 0, 3);
    let jb = job(&mut s, "b", 0, 3);
    job(&mut s, "z", 0, 2);
    for (worker, _, ids) in sent(&mut s, 0) {
        let job = split_unit_id(ids[0]).0;
        assert!((worker == a && job == ja) || (worker == b && job == jb));
    }
    assert_eq!(s.unserved(), vec![("z".to_string(), 2)]);
    // A worker that serves z arrives later and gets them.
    let z = register(&mut s, &["z"], 1, 3);
    let batches = sent(&mut s, 1);
    assert_eq!(batches.len(), 2);
    assert!(batches.iter().all(|b| b.0 == z));
    assert!(s.unserved().is_empty());
}

#[test]
fn a_wrong_protocol_version_is_rejected_naming_both() {
    let mut s = fixed(1);
    let mut h = hello(&["t"], 1, 0);
    h.protocol = 99;
    let reason = s.hello(0, &h).unwrap_err();
    assert!(
        reason.contains("99") && reason.contains(&PROTOCOL_VERSION.to_string()),
        "{reason}"
    );
}

#[test]
fn idle_workers_get_heartbeats_and_busy_ones_do_not() {
    let mut s = fixed(1);
    let w = register(&mut s, &["t"], 1, 0);
    s.tick(999);
    assert!(s.drain_actions().next().is_none());
    s.heard_from(1000, w);
    s.tick(1000);
    assert_eq!(
        s.drain_actions().collect::<Vec<_>>(),
        vec![Action::SendHeartbeat(w)]
    );
    job(&mut s, "t", 0, 1);
    assert_eq!(sent(&mut s, 1500).len(), 1);
    s.heard_from(2000, w);
    s.tick(2000);
    assert!(
        s.drain_actions().next().is_none(),
        "work was sent 500 ms ago"
    );
}

#[test]
fn adaptive_batches_grow_for_fast_units_and_stay_single_for_slow_ones() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let fast = register(&mut s, &["fast"], 2, 1_000_000);
    let slow = register(&mut s, &["slow"], 2, 1_000_000);
    job(&mut s, "fast", 0, 1_000_000);
    job(&mut s, "slow", 0, 1_000);
    let (mut last, mut largest) = (HashMap::new(), HashMap::new());
    for now in 0..20 {
        for (worker, batch, ids) in sent(&mut s, now) {
            last.insert(worker, ids.len());
            let most = largest.entry(worker).or_insert(0);
            *most = ids.len().max(*most);
            // Fast units: 0.1 µs each; slow ones: 200 ms each, on two slots.
            let elapsed_us = if worker == fast {
                ids.len() as u64 / 10 + 1
            } else {
                200_000 * ids.len() as u64 / 2
            };
            let owned: Vec<_> = ids.iter().map(|&id| (id, echo(id).unwrap())).collect();
            s.results(
                now,
                worker,
                &Results {
                    batch,
                    elapsed_us,
                    results: owned
                        .iter()
                        .map(|(id, o)| UnitResultRef {
                            id: *id,
                            outcome: Ok(o),
                        })
                        .collect(),
                },
            );
        }
    }
    // (The fast job drains, so its last batches shrink with the queue.)
    assert!(largest[&fast] >= 10_000, "fast batch {}", largest[&fast]);
    // One unit per slot before a measurement, then one at a time.
    assert!(largest[&slow] <= 2);
    assert_eq!(last[&slow], 1);
    // A slow task is not hoarded: two slots, at most 2 × 2 units out.
    let held = s.workers().find(|w| w.id == slow).unwrap().in_flight;
    assert!(held <= 4, "{held}");
}

#[test]
fn encoded_work_decodes_to_the_leased_units() {
    let mut s = fixed(3);
    register(&mut s, &["t"], 1, 2);
    job(&mut s, "t", 0, 3);
    let (_, batch, ids) = sent(&mut s, 0).remove(0);
    let mut frame = Vec::new();
    assert!(s.encode_work(batch, &mut frame));
    let Message::Work(work) = protocol::decode(&frame).unwrap() else {
        panic!()
    };
    assert_eq!(work.batch, batch);
    assert_eq!(work.units.iter().map(|u| u.id).collect::<Vec<_>>(), ids);
    assert!(work.units.iter().all(|u| u.job_type == "t"));
    assert_eq!(work.units[1].payload, 1u64.to_le_bytes());
}

#[test]
fn a_lost_worker_is_forgotten_and_a_cancelled_job_is_dropped() {
    let mut s = fixed(2);
    let w = register(&mut s, &["t"], 1, 1);
    let j = job(&mut s, "t", 0, 4);
    let (_, batch, ids) = sent(&mut s, 0).remove(0);
    s.worker_lost(w, "disconnected");
    assert!(!s.has_worker(w));
    assert_eq!(s.counters().requeued, 2);
    s.cancel(j);
    assert_eq!(s.open_jobs(), 0);
    let w2 = register(&mut s, &["t"], 1, 1);
    assert!(sent(&mut s, 1).is_empty());
    let actions = answer(&mut s, 1, w2, batch, &ids, echo);
    assert!(delivered(&actions).is_empty());
}

/// Found by the property tests: a `results` naming a batch leased to another worker took that
/// lease out of the table and dropped it, so its units were neither queued nor leased, and were
/// lost for good if their real holder then died.
#[test]
fn results_for_another_workers_batch_keep_its_lease() {
    let mut s = fixed(2);
    let holder = register(&mut s, &["t"], 2, 0);
    let job = job(&mut s, "t", 0, 2);
    let (_, batch, ids) = sent(&mut s, 0).remove(0);
    let intruder = register(&mut s, &["t"], 1, 0);
    let actions = answer(&mut s, 1, intruder, batch, &ids, |_| Err("x".into()));
    assert!(delivered(&actions).is_empty());
    assert_eq!(s.lease_worker(batch), Some(holder));
    assert_eq!(s.lease_units(batch), ids);
    s.check_invariants().unwrap();
    // The holder dies: its units go to the intruder, and the job still completes.
    s.worker_lost(holder, "gone");
    let (worker, batch, ids) = sent(&mut s, 2).remove(0);
    assert_eq!(worker, intruder);
    let mut outcomes = delivered(&answer(&mut s, 3, intruder, batch, &ids, echo));
    let (_, batch, ids) = sent(&mut s, 4).remove(0);
    let actions = answer(&mut s, 5, intruder, batch, &ids, echo);
    outcomes.extend(delivered(&actions));
    assert_eq!(outcomes.len(), 2);
    assert!(actions.contains(&Action::JobDone(job)));
    s.check_invariants().unwrap();
}

#[test]
fn a_hello_beyond_max_workers_is_refused_and_the_others_are_unaffected() {
    let mut s = Scheduler::new(SchedulerConfig {
        max_workers: 2,
        ..SchedulerConfig::default()
    });
    let first = register(&mut s, &["t"], 1, 0);
    let second = register(&mut s, &["t"], 1, 0);
    let reason = s.hello(0, &hello(&["t"], 1, 0)).unwrap_err();
    assert!(reason.contains("--max-workers"), "{reason}");
    assert!(reason.contains("2 workers"), "{reason}");
    assert_eq!(s.counters().workers_refused, 1);
    let ids: Vec<WorkerId> = s.workers().map(|w| w.id).collect();
    assert_eq!(ids, vec![first, second]);
    // A place frees up when one leaves.
    s.worker_lost(first, "gone");
    assert!(s.hello(0, &hello(&["t"], 1, 0)).is_ok());
    s.check_invariants().unwrap();
}

#[test]
fn no_batch_exceeds_max_batch_units() {
    for batching in [Batching::Fixed(1000), Batching::default()] {
        let mut s = Scheduler::new(SchedulerConfig {
            batching,
            max_batch_units: 7,
            ..SchedulerConfig::default()
        });
        let w = register(&mut s, &["t"], 64, 1000);
        job(&mut s, "t", 0, 5000);
        let mut now = 0;
        while s.open_jobs() > 0 {
            now += 1;
            for (_, batch, ids) in sent(&mut s, now) {
                assert!(ids.len() <= 7, "{} units in a batch", ids.len());
                // Fast answers make adaptive batching ask for ever larger batches.
                let owned: Vec<_> = ids.iter().map(|&id| (id, echo(id))).collect();
                let results = Results {
                    batch,
                    elapsed_us: 1,
                    results: owned
                        .iter()
                        .map(|(id, o)| UnitResultRef {
                            id: *id,
                            outcome: o.as_ref().map(Vec::as_slice).map_err(String::as_str),
                        })
                        .collect(),
                };
                s.results(now, w, &results);
            }
            s.check_invariants().unwrap();
        }
        assert_eq!(s.counters().completed, 5000);
    }
}

#[test]
fn queued_bytes_count_units_until_leased_cancelled_or_done() {
    let mut s = fixed(2);
    let a = s.submit("t", 0);
    assert!(s.extend(a, (0..10).map(|_| Payload::from_slice(&[0; 100]))));
    let b = s.submit("t", 0);
    assert!(s.extend(b, (0..5).map(|_| Payload::from_slice(&[0; 10]))));
    assert_eq!(s.queued_bytes(), 1050);
    let w = register(&mut s, &["t"], 2, 0);
    let (_, batch, ids) = sent(&mut s, 0).remove(0);
    assert_eq!(ids.len(), 2);
    assert_eq!(s.queued_bytes(), 850, "leased units leave the queue");
    // A failure puts the unit back, in the retry queue.
    answer(&mut s, 1, w, batch, &ids[..1], |_| Err("x".into()));
    assert_eq!(s.queued_bytes(), 950);
    // A lost worker's units come back.
    s.worker_lost(w, "gone");
    assert_eq!(s.queued_bytes(), 1050);
    s.cancel(a);
    assert_eq!(s.queued_bytes(), 50, "a cancelled job's units are dropped");
    s.check_invariants().unwrap();
}

/// Two one-slot workers evaluating `costs[i]` microseconds for unit `i`, each in the order its
/// units were leased, reporting each unit's result and time as it finishes (as ganger's workers
/// do, chunk by chunk). Returns the logical time at which the last result arrives, in
/// microseconds, and how many units each worker evaluated.
fn simulate(costs: &[u64]) -> (u64, [usize; 2]) {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let workers = [
        register(&mut s, &["t"], 1, 65_536),
        register(&mut s, &["t"], 1, 65_536),
    ];
    job(&mut s, "t", 0, costs.len() as u64);
    // Per worker: (batch, unit, when it was leased), in lease order.
    let mut queues: [VecDeque<(BatchId, u64, u64)>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut free_at = [0u64; 2];
    let mut done = [0usize; 2];
    let mut now = 0u64;
    let mut remaining = costs.len();
    let cost = |id: u64| costs[split_unit_id(id).1 as usize];
    while remaining > 0 {
        for (worker, batch, ids) in sent(&mut s, now / 1000) {
            let k = workers.iter().position(|&w| w == worker).unwrap();
            queues[k].extend(ids.into_iter().map(|id| (batch, id, now)));
        }
        // The next unit to finish, on whichever worker finishes first.
        let finish = |k: usize| {
            let (_, id, leased) = queues[k][0];
            free_at[k].max(leased) + cost(id)
        };
        let k = (0..2)
            .filter(|&k| !queues[k].is_empty())
            .min_by_key(|&k| finish(k))
            .expect("units are leased while any remain");
        now = finish(k);
        let (batch, id, _) = queues[k].pop_front().unwrap();
        free_at[k] = now;
        let cost = cost(id);
        let output = echo(id).unwrap();
        let results = Results {
            batch,
            elapsed_us: cost,
            results: vec![UnitResultRef {
                id,
                outcome: Ok(&output),
            }],
        };
        s.results(now / 1000, workers[k], &results);
        s.drain_actions().for_each(drop);
        done[k] += 1;
        remaining -= 1;
    }
    (now, done)
}

#[test]
fn units_of_rising_cost_are_shared_between_two_workers_not_swallowed_by_one() {
    // Unit i spins i µs: one worker took 2,998 of 3,000 when the first, cheap units' speed set
    // the batch size and its prefetch took the rest.
    let costs: Vec<u64> = (0..3000).map(|i| i.max(1)).collect();
    let (makespan, done) = simulate(&costs);
    let ideal = costs.iter().sum::<u64>() / 2;
    assert!(
        makespan < ideal + ideal / 10,
        "{makespan} µs against an ideal of {ideal} µs; units per worker {done:?}"
    );
    // Even costs: the units themselves split about evenly.
    let (_, done) = simulate(&vec![50; 3000]);
    assert!(done.iter().all(|&n| n > 1200), "{done:?}");
}

#[test]
fn a_straggler_is_reissued_to_an_idle_worker_and_delivered_once() {
    let mut s = Scheduler::new(SchedulerConfig {
        straggler_factor: Some(3.0),
        ..SchedulerConfig::default()
    });
    let stalled = register(&mut s, &["t"], 1, 0);
    let j = job(&mut s, "t", 0, 2);
    // Its first unit takes 10 ms, as usual; it never answers the second.
    let first = sent(&mut s, 0);
    assert_eq!(first.len(), 1);
    let (_, batch, ids) = first[0].clone();
    let results = Results {
        batch,
        elapsed_us: 10_000,
        results: vec![UnitResultRef {
            id: ids[0],
            outcome: Ok(&[1]),
        }],
    };
    s.results(10, stalled, &results);
    s.drain_actions().for_each(drop);
    let (_, slow_batch, slow_ids) = sent(&mut s, 10).remove(0);
    let idle = register(&mut s, &["t"], 1, 0);
    // Not yet a straggler: 40 ms is under the 50 ms floor.
    assert!(sent(&mut s, 50).is_empty());
    s.check_invariants().unwrap();
    let copies = sent(&mut s, 61);
    assert_eq!(copies.len(), 1, "{copies:?}");
    let (worker, copy_batch, copy_ids) = copies[0].clone();
    assert_eq!((worker, &copy_ids), (idle, &slow_ids));
    assert_eq!(s.counters().reissued, 1);
    s.check_invariants().unwrap();
    let actions = answer(&mut s, 70, idle, copy_batch, &copy_ids, echo);
    assert_eq!(delivered(&actions).len(), 1);
    assert!(actions.contains(&Action::JobDone(j)));
    // The stalled worker's answer, when it comes, is a duplicate.
    let late = answer(&mut s, 900, stalled, slow_batch, &slow_ids, echo);
    assert!(delivered(&late).is_empty());
    assert_eq!(s.counters().duplicates, 1);
    s.check_invariants().unwrap();
}

#[test]
fn without_the_setting_nothing_is_reissued() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let stalled = register(&mut s, &["t"], 1, 0);
    job(&mut s, "t", 0, 2);
    let (_, batch, ids) = sent(&mut s, 0).remove(0);
    let results = Results {
        batch,
        elapsed_us: 10_000,
        results: vec![UnitResultRef {
            id: ids[0],
            outcome: Ok(&[1]),
        }],
    };
    s.results(10, stalled, &results);
    s.drain_actions().for_each(drop);
    assert_eq!(sent(&mut s, 10).len(), 1);
    register(&mut s, &["t"], 1, 0);
    assert!(
        sent(&mut s, 1_000_000).is_empty(),
        "the idle worker got a copy"
    );
    assert_eq!(s.counters().reissued, 0);
}

mod groups;
