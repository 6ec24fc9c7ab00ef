//! When `run` gives up on a task that no connected worker serves (a misspelt task must fail,
//! naming what the workers do serve, rather than wait forever).

use std::time::{Duration, Instant};

use anyhow::bail;
use ganger_cluster::Stats;

/// Decides when a job whose task no connected worker serves has waited long enough: a task
/// misspelt must fail, naming what the workers do serve, not wait forever.
pub(super) struct Unserved {
    task: String,
    limit: Option<Duration>,
    /// With only local workers, how many: once they are all connected, none other can come.
    only_local: Option<usize>,
    since: Option<Instant>,
}

impl Unserved {
    pub(super) fn new(task: &str, limit_secs: u64, only_local: Option<usize>) -> Unserved {
        Unserved {
            task: task.to_owned(),
            limit: (limit_secs > 0).then(|| Duration::from_secs(limit_secs)),
            only_local,
            since: None,
        }
    }

    /// An error once the task's units have waited with workers connected but none serving
    /// them for the limit (at once when every local worker is connected).
    pub(super) fn judge(&mut self, now: Instant, stats: &Stats) -> anyhow::Result<()> {
        let waiting = stats
            .unserved
            .iter()
            .any(|(job_type, _)| *job_type == self.task);
        if !waiting || stats.workers.is_empty() {
            self.since = None;
            return Ok(());
        }
        let since = *self.since.get_or_insert(now);
        let all_local_here = self.only_local.is_some_and(|n| stats.workers.len() >= n);
        let waited_out = self
            .limit
            .is_some_and(|limit| now.duration_since(since) >= limit);
        if !all_local_here && !waited_out {
            return Ok(());
        }
        let mut served: Vec<&str> = stats
            .workers
            .iter()
            .flat_map(|w| w.job_types.iter().map(String::as_str))
            .collect();
        served.sort_unstable();
        served.dedup();
        let why = if all_local_here {
            "and no other can join".to_owned()
        } else {
            format!(
                "for {} s (--unserved-timeout-secs)",
                now.duration_since(since).as_secs()
            )
        };
        bail!(
            "no connected worker serves the task `{}` ({} worker(s) connected, {why}); they serve: {}",
            self.task,
            stats.workers.len(),
            served.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ganger_cluster::{Stats, WorkerInfo};

    use super::Unserved;

    fn stats(workers: &[&[&str]], unserved: &[&str]) -> Stats {
        Stats {
            workers: workers
                .iter()
                .enumerate()
                .map(|(id, types)| WorkerInfo {
                    id: id as u64,
                    job_types: types.iter().map(|t| t.to_string()).collect(),
                    ..WorkerInfo::default()
                })
                .collect(),
            unserved: unserved.iter().map(|t| (t.to_string(), 10)).collect(),
            ..Stats::default()
        }
    }

    #[test]
    fn a_task_nobody_serves_fails_after_the_limit_naming_what_is_served() {
        let t0 = Instant::now();
        let mut check = Unserved::new("sqaure", 60, None);
        let workers: &[&[&str]] = &[&["square", "sleep"], &["square", "mcmc/gaussian/*"]];
        assert!(check.judge(t0, &stats(workers, &["sqaure"])).is_ok());
        let later = t0 + Duration::from_secs(59);
        assert!(check.judge(later, &stats(workers, &["sqaure"])).is_ok());
        let error = check
            .judge(t0 + Duration::from_secs(60), &stats(workers, &["sqaure"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("`sqaure`"), "{error}");
        assert!(
            error.contains("they serve: mcmc/gaussian/*, sleep, square"),
            "{error}"
        );
    }

    #[test]
    fn the_wait_starts_again_when_a_worker_serves_the_task_or_none_is_connected() {
        let t0 = Instant::now();
        let mut check = Unserved::new("spin", 10, None);
        let others: &[&[&str]] = &[&["square"]];
        assert!(check.judge(t0, &stats(others, &["spin"])).is_ok());
        // Served for a while (its worker came and went), then not again: a fresh wait.
        assert!(check
            .judge(t0 + Duration::from_secs(5), &stats(others, &[]))
            .is_ok());
        assert!(check
            .judge(t0 + Duration::from_secs(8), &stats(others, &["spin"]))
            .is_ok());
        assert!(check
            .judge(t0 + Duration::from_secs(17), &stats(others, &["spin"]))
            .is_ok());
        // No worker at all: waiting for workers is not a misspelt task.
        assert!(check
            .judge(t0 + Duration::from_secs(100), &stats(&[], &["spin"]))
            .is_ok());
        assert!(check
            .judge(t0 + Duration::from_secs(101), &stats(others, &["spin"]))
            .is_ok());
        assert!(check
            .judge(t0 + Duration::from_secs(111), &stats(others, &["spin"]))
            .is_err());
    }

    #[test]
    fn with_only_local_workers_it_fails_once_they_are_all_connected() {
        let t0 = Instant::now();
        let mut check = Unserved::new("nosuch", 60, Some(2));
        let one: &[&[&str]] = &[&["square"]];
        let two: &[&[&str]] = &[&["square"], &["square"]];
        assert!(check.judge(t0, &stats(one, &["nosuch"])).is_ok());
        let error = check
            .judge(t0, &stats(two, &["nosuch"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no other can join"), "{error}");
    }

    #[test]
    fn a_limit_of_zero_waits_forever() {
        let t0 = Instant::now();
        let mut check = Unserved::new("spin", 0, None);
        let others: &[&[&str]] = &[&["square"]];
        for hours in [0, 1, 1000] {
            let now = t0 + Duration::from_secs(3600 * hours);
            assert!(check.judge(now, &stats(others, &["spin"])).is_ok());
        }
    }
}
