//! `/metrics`: a status snapshot encoded as Prometheus metrics at scrape time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use ganger_mcmc::ChainStatus;

use super::Status;

/// Encodes a status snapshot as metrics at scrape time.
#[derive(Debug)]
pub(super) struct StatusCollector(pub(super) Status);

impl StatusCollector {
    fn counter(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: u64,
    ) -> Result<(), std::fmt::Error> {
        let metric = ConstCounter::new(value);
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
    }

    fn gauge(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: f64,
    ) -> Result<(), std::fmt::Error> {
        let metric = ConstGauge::new(value);
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
    }

    /// A gauge with one labelled series per `(label value, value)`.
    fn gauges(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        label: &'static str,
        series: impl IntoIterator<Item = (String, f64)>,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (key, value) in series {
            let labels = [(label, key)];
            ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let c = &s.counters.units;
        let e = &mut encoder;
        for (name, help, value) in [
            ("ganger_units_submitted", "Units submitted", c.submitted),
            (
                "ganger_units_completed",
                "Units delivered with an output",
                c.completed,
            ),
            (
                "ganger_units_failed",
                "Units delivered as failed after their last attempt",
                c.failed,
            ),
            (
                "ganger_units_retried",
                "Failed evaluations that were retried",
                c.retried,
            ),
            (
                "ganger_units_requeued",
                "Units taken back from workers that left, queued again",
                c.requeued,
            ),
            (
                "ganger_results_duplicate",
                "Late results for units already resolved, dropped",
                c.duplicates,
            ),
            ("ganger_batches_sent", "Batches sent to workers", c.batches),
            (
                "ganger_units_reissued",
                "Units of slow leases given to a second worker (--straggler-factor)",
                c.reissued,
            ),
            (
                "ganger_worker_timeouts",
                "Workers dropped after falling silent",
                c.timeouts,
            ),
            (
                "ganger_frames_dropped",
                "Frames from peers dropped as bad input",
                s.counters.dropped_frames,
            ),
            (
                "ganger_frames_unauthenticated",
                "Frames dropped because their peer had not authenticated, or replayed or forged",
                s.counters.unauthenticated_frames,
            ),
            (
                "ganger_connections_cut",
                "Connections cut before their peer registered (too many pending, or too slow)",
                s.counters.connections_cut,
            ),
        ] {
            Self::counter(e, name, help, value)?;
        }
        Self::gauge(
            e,
            "ganger_up",
            "1 while the engine loop answers",
            f64::from(u8::from(s.engine_alive)),
        )?;
        Self::gauge(
            e,
            "ganger_workers_connected",
            "Registered workers",
            s.workers.len() as f64,
        )?;
        let slots: u64 = s.workers.iter().map(|w| u64::from(w.slots)).sum();
        Self::gauge(
            e,
            "ganger_worker_slots",
            "Units the registered workers evaluate at once",
            slots as f64,
        )?;
        Self::gauge(
            e,
            "ganger_queued_bytes",
            "Payload bytes of units queued but not yet leased",
            s.counters.queued_bytes as f64,
        )?;
        let in_flight: u64 = s.workers.iter().map(|w| w.in_flight).sum();
        Self::gauge(
            e,
            "ganger_units_in_flight",
            "Units leased to workers now",
            in_flight as f64,
        )?;
        Self::gauges(
            e,
            "ganger_worker_utilisation",
            "Share of a worker's slot time spent evaluating since it registered, per worker",
            "worker",
            s.workers
                .iter()
                .map(|w| (format!("{}-{}", w.id, w.name), w.utilisation)),
        )?;
        Self::gauges(
            e,
            "ganger_queue_depth",
            "Units waiting, per job type",
            "job_type",
            s.queues
                .iter()
                .map(|q| (q.job_type.clone(), q.depth as f64)),
        )?;
        Self::gauge(
            e,
            "ganger_progress_done",
            "Units resolved, or steps per chain for MCMC",
            s.progress.done as f64,
        )?;
        Self::gauge(
            e,
            "ganger_progress_total",
            "Units submitted, or steps per chain of the MCMC run",
            s.progress.total as f64,
        )?;
        Self::gauge(
            e,
            "ganger_progress_rate",
            "Recent units/s, or samples/s over all chains for MCMC",
            s.progress.rate,
        )?;
        let Some(m) = &s.mcmc else {
            return Ok(());
        };
        let chains = m.chains.len() as u64;
        Self::counter(
            e,
            "ganger_mcmc_samples",
            "Samples over all chains",
            m.step * chains,
        )?;
        Self::gauge(
            e,
            "ganger_mcmc_step",
            "Steps every chain has taken",
            m.step as f64,
        )?;
        Self::counter(
            e,
            "ganger_mcmc_invalid_proposals",
            "Proposals rejected for a NaN or infinite energy",
            m.invalid_proposals,
        )?;
        let chain_series = |f: fn(&ChainStatus) -> Option<f64>| {
            m.chains
                .iter()
                .filter_map(move |c| f(c).map(|v| (c.id.to_string(), v)))
        };
        Self::gauges(
            e,
            "ganger_mcmc_accept_rate",
            "Acceptance rate over the run, per chain",
            "chain",
            chain_series(|c| Some(c.global_accept_rate)),
        )?;
        Self::gauges(
            e,
            "ganger_mcmc_swap_rate",
            "Swap acceptance with the next hotter chain over the run, per chain",
            "chain",
            chain_series(|c| c.global_swap_rate),
        )?;
        Self::gauges(
            e,
            "ganger_mcmc_beta",
            "Inverse temperature, per chain",
            "chain",
            chain_series(|c| Some(c.beta)),
        )?;
        Self::gauges(
            e,
            "ganger_mcmc_round_trips",
            "Replica round trips (cold, hot, cold), per stack",
            "stack",
            m.round_trips
                .iter()
                .enumerate()
                .map(|(i, r)| (i.to_string(), *r as f64)),
        )?;
        if let Some(rhat) = m.convergence.max_rhat {
            Self::gauge(
                e,
                "ganger_mcmc_rhat_max",
                "Largest rank-normalised split R-hat of the cold chains' draws after the burn-in",
                rhat,
            )?;
        }
        Self::gauges(
            e,
            "ganger_mcmc_rhat",
            "Rank-normalised split R-hat of the cold chains' draws after the burn-in, per dimension",
            "dim",
            m.convergence
                .rhat
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.map(|r| (i.to_string(), r))),
        )?;
        if let Some(ess) = m.convergence.min_ess_bulk {
            Self::gauge(
                e,
                "ganger_mcmc_ess_bulk_min",
                "Smallest bulk ESS of the cold chains' draws after the burn-in",
                ess,
            )?;
        }
        Ok(())
    }
}
