//! Run with: `cargo run --release --example embedded`
//!
//! A whole job in one process: a delegator and two in-process workers (`LocalCluster`)
//! estimate π by Monte Carlo. Each unit throws a million darts with its own seed; the job maps
//! 200 units and sums the hits. The same code runs against remote workers by replacing the
//! cluster with a `Delegator` bound to a reachable address.

use std::time::Instant;

use ganger::{JobOptions, LocalCluster, Registry};
use serde::{Deserialize, Serialize};

/// One unit's input: which random stream to use and how many darts to throw.
#[derive(Debug, Serialize, Deserialize)]
struct Darts {
    seed: u64,
    throws: u64,
}

/// Counts the darts that land inside the unit quarter-circle (xorshift64* random numbers).
fn hits(darts: Darts) -> u64 {
    let mut state = darts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..darts.throws)
        .filter(|_| {
            let (x, y) = (next(), next());
            x * x + y * y <= 1.0
        })
        .count() as u64
}

fn main() -> anyhow::Result<()> {
    let mut registry = Registry::new();
    registry.register("pi-darts", hits);
    let cluster = LocalCluster::start(2, 1, registry)?;

    let units = 200u64;
    let throws = 1_000_000u64;
    let started = Instant::now();
    let inputs = (0..units).map(|seed| Darts { seed, throws });
    let job = cluster
        .delegator()
        .submit::<_, u64>("pi-darts", inputs, JobOptions::default())?;
    let mut inside = 0u64;
    for (_, result) in job {
        inside += result?;
    }
    let pi = 4.0 * inside as f64 / (units * throws) as f64;
    println!(
        "π ≈ {pi:.5} from {} darts in {:.2} s (error {:.1e})",
        units * throws,
        started.elapsed().as_secs_f64(),
        (pi - std::f64::consts::PI).abs()
    );
    Ok(())
}
