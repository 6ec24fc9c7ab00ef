//! Batch groups: jobs whose units share `work` messages.

use super::*;

/// Opens a job of `job_type` in `group` with `n` units, sealed.
fn grouped(s: &mut Scheduler, job_type: &str, group: &str, n: u64) -> JobId {
    let job = s.submit(job_type, 0);
    s.set_group(job, group);
    assert!(s.extend(job, (0..n).map(|i| Payload::from_slice(&i.to_le_bytes()))));
    s.seal(job);
    job
}

/// The job types of `batch`'s units, in order, as its `work` frame carries them.
fn types_sent(s: &Scheduler, batch: BatchId) -> Vec<String> {
    let mut frame = Vec::new();
    assert!(s.encode_work(batch, &mut frame));
    let Message::Work(work) = protocol::decode(&frame).unwrap() else {
        panic!("not a work frame")
    };
    work.units.iter().map(|u| u.job_type.to_string()).collect()
}

#[test]
fn a_worker_serving_a_groups_job_types_gets_their_units_in_one_batch() {
    let mut s = fixed(8);
    let w = register(&mut s, &["m/*"], 2, 6);
    let jobs: Vec<JobId> = (0..3)
        .map(|t| grouped(&mut s, &format!("m/{t}"), "m", 2))
        .collect();
    let batches = sent(&mut s, 0);
    assert_eq!(batches.len(), 1, "{batches:?}");
    let (worker, batch, ids) = batches[0].clone();
    assert_eq!(worker, w);
    assert_eq!(
        types_sent(&s, batch),
        ["m/0", "m/0", "m/1", "m/1", "m/2", "m/2"]
    );
    let owners: Vec<JobId> = ids.iter().map(|&id| split_unit_id(id).0).collect();
    assert_eq!(
        owners,
        [jobs[0], jobs[0], jobs[1], jobs[1], jobs[2], jobs[2]]
    );
    s.check_invariants().unwrap();
    let actions = answer(&mut s, 1, w, batch, &ids, echo);
    assert_eq!(delivered(&actions).len(), 6);
    for job in jobs {
        assert!(actions.contains(&Action::JobDone(job)));
    }
    s.check_invariants().unwrap();
}

#[test]
fn a_batch_holds_only_the_group_job_types_its_worker_serves() {
    let mut s = fixed(8);
    let first = register(&mut s, &["m/0"], 1, 7);
    let both = register(&mut s, &["m/0", "m/1"], 1, 7);
    grouped(&mut s, "m/0", "m", 2);
    grouped(&mut s, "m/1", "m", 2);
    for (worker, batch, _) in sent(&mut s, 0) {
        let types = types_sent(&s, batch);
        assert!(worker == both || worker == first);
        assert!(
            worker == both || types.iter().all(|t| t == "m/0"),
            "{types:?}"
        );
    }
    assert!(s.queue_depths().iter().all(|(_, n)| *n == 0));
    s.check_invariants().unwrap();
}

#[test]
fn jobs_outside_the_group_keep_their_own_batches() {
    let mut s = fixed(8);
    register(&mut s, &["m/*", "other"], 1, 15);
    grouped(&mut s, "m/0", "m", 2);
    grouped(&mut s, "m/1", "m", 2);
    let loose = job(&mut s, "m/1", 0, 2);
    job(&mut s, "other", 0, 2);
    let batches = sent(&mut s, 0);
    let types: Vec<Vec<String>> = batches.iter().map(|b| types_sent(&s, b.1)).collect();
    assert_eq!(types.len(), 3, "{types:?}");
    assert_eq!(types[0], ["m/0", "m/0", "m/1", "m/1"]);
    // The ungrouped job of a group's job type is not pulled into the group's batch.
    let loose_batch = batches
        .iter()
        .find(|b| split_unit_id(b.2[0]).0 == loose)
        .expect("the loose job is sent");
    assert!(loose_batch.2.iter().all(|&id| split_unit_id(id).0 == loose));
    assert_eq!(types[2], ["other", "other"]);
    s.check_invariants().unwrap();
}

#[test]
fn a_groups_batch_respects_the_batch_size_and_capacity() {
    let mut s = fixed(5);
    let w = register(&mut s, &["m/*"], 1, 4);
    grouped(&mut s, "m/0", "m", 4);
    grouped(&mut s, "m/1", "m", 4);
    let batches = sent(&mut s, 0);
    assert_eq!(batches.len(), 1);
    assert_eq!(
        types_sent(&s, batches[0].1),
        ["m/0", "m/0", "m/0", "m/0", "m/1"]
    );
    assert_eq!(s.workers().find(|i| i.id == w).unwrap().in_flight, 5);
    s.check_invariants().unwrap();
}

#[test]
fn a_lost_workers_grouped_units_are_requeued_to_their_own_jobs() {
    let mut s = fixed(8);
    let lost = register(&mut s, &["m/*"], 1, 7);
    let jobs = [
        grouped(&mut s, "m/0", "m", 2),
        grouped(&mut s, "m/1", "m", 2),
    ];
    assert_eq!(sent(&mut s, 0).len(), 1);
    s.worker_lost(lost, "test");
    s.drain_actions().for_each(drop);
    let other = register(&mut s, &["m/1"], 1, 7);
    let (worker, batch, ids) = sent(&mut s, 1).remove(0);
    assert_eq!(worker, other);
    assert_eq!(types_sent(&s, batch), ["m/1", "m/1"]);
    assert!(ids.iter().all(|&id| split_unit_id(id).0 == jobs[1]));
    s.check_invariants().unwrap();
}

#[test]
fn a_groups_batch_takes_only_its_own_jobs_of_the_leads_priority() {
    let mut s = fixed(4);
    register(&mut s, &["m/*"], 1, 3);
    let lead = s.submit("m/0", 1);
    s.set_group(lead, "m");
    assert!(s.extend(lead, [Payload::from_slice(b"a")]));
    // Of the lead's job type but outside the group: never in the group's batch.
    let loose_lead_type = job(&mut s, "m/0", 1, 1);
    let loose = job(&mut s, "m/1", 0, 2);
    let low = s.submit("m/1", -1);
    s.set_group(low, "m");
    assert!(s.extend(low, (0..2).map(|i| Payload::from_slice(&[i]))));
    let owners: Vec<Vec<JobId>> = sent(&mut s, 0)
        .iter()
        .map(|(_, _, ids)| ids.iter().map(|&id| split_unit_id(id).0).collect())
        .collect();
    // The group's batch holds its lead alone; the loose jobs go in priority order and fill the
    // worker before the group's priority -1 job, which waits.
    assert_eq!(
        owners,
        [vec![lead], vec![loose_lead_type], vec![loose, loose]],
    );
    s.check_invariants().unwrap();
}
