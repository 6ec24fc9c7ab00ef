//! What the engine measures as it goes, for `/metrics`: the size of each batch it sends and
//! each batch's round trip (from sending its work to the first frame of its results).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Histograms recorded by the engine thread. Cheap to clone (the histograms are shared).
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    /// Units per batch sent.
    pub(crate) batch_units: Histogram,
    /// Seconds from sending a batch to receiving its first results.
    round_trip: Histogram,
    /// Round trips observed and their total, nanoseconds (the histogram keeps these private).
    round_trip_totals: Arc<(AtomicU64, AtomicU64)>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics {
            // 1, 4, 16, … 4^10 ≈ one million units.
            batch_units: Histogram::new(exponential_buckets(1.0, 4.0, 11)),
            // 50 µs to about 13 minutes, ×2 per bucket: trivial units on loopback to slow models.
            round_trip: Histogram::new(exponential_buckets(50e-6, 2.0, 24)),
            round_trip_totals: Arc::default(),
        }
    }
}

impl EngineMetrics {
    /// Adds the histograms to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ganger_batch_units",
            "Units per batch sent to a worker",
            self.batch_units.clone(),
        );
        registry.register_with_unit(
            "ganger_batch_round_trip",
            "Time from sending a batch to receiving the first of its results",
            Unit::Seconds,
            self.round_trip.clone(),
        );
    }

    /// Records a batch's round trip.
    pub(crate) fn observe_round_trip(&self, seconds: f64) {
        self.round_trip.observe(seconds);
        let (count, nanos) = &*self.round_trip_totals;
        count.fetch_add(1, Ordering::Relaxed);
        nanos.fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }

    /// Batches observed so far, and their round trips' total in seconds.
    pub fn round_trips(&self) -> (u64, f64) {
        let (count, nanos) = &*self.round_trip_totals;
        (
            count.load(Ordering::Relaxed),
            nanos.load(Ordering::Relaxed) as f64 * 1e-9,
        )
    }
}
