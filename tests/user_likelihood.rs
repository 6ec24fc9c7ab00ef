//! A likelihood of the user's own, served by workers through `Registry::register_likelihood`,
//! gives the same files, byte for byte, as the same likelihood evaluated in-process: whatever
//! the speculation, the split into units and the workers.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use ganger::mcmc::{run, run_embedded, Existing, FnLikelihood, McmcConfig, OnWorkers};
use ganger::{LocalCluster, Registry};

/// A two-term likelihood: a correlated Gaussian split into its x and y parts.
fn likelihood() -> FnLikelihood<impl Fn(usize, &[f64]) -> f64 + Send + Sync> {
    FnLikelihood::new(2, |term, x: &[f64]| match term {
        0 => 0.5 * (x[0] - 1.0).powi(2) / 0.25,
        _ => 0.5 * (x[1] - 0.8 * x[0]).powi(2),
    })
}

fn config(output: &Path) -> McmcConfig {
    let text = format!(
        r#"{{"nJobTypes": 2, "nStacks": 2, "nTemperatures": 3, "nSamplesTotal": 4000,
            "min": [-10, -10], "max": [10, 10], "swapInterval": 10, "seed": 11,
            "likelihood": "tilted", "loggingRateSec": 3600, "outputPath": "{}"}}"#,
        output.display()
    );
    McmcConfig::from_file_contents(&text, Path::new("tilted.json")).expect("a valid config")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ganger-user-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every file of a run's output folder, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the output folder exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv" || e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("readable"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_users_likelihood_on_workers_writes_the_embedded_runs_files() {
    let embedded_dir = temp_dir("embedded");
    run_embedded(&config(&embedded_dir), likelihood()).expect("the embedded run finishes");

    for (name, speculation, lockstep) in [
        ("tuned", None, false),
        ("fixed-7", Some(7), false),
        ("lockstep", None, true),
    ] {
        let mut registry = Registry::new();
        registry.register_likelihood("tilted", likelihood());
        let cluster = LocalCluster::start(3, 1, registry).expect("the cluster starts");
        let dir = temp_dir(name);
        let mut evaluator =
            OnWorkers::new(cluster.delegator(), "tilted", 2).expect("the jobs open");
        evaluator.set_speculation(speculation);
        evaluator.set_lockstep(lockstep);
        let report = run(
            &config(&dir),
            &mut evaluator,
            Existing::Refuse,
            &AtomicBool::new(false),
        )
        .expect("the distributed run finishes");
        assert!(report.complete);
        assert_eq!(evaluator.failed_units(), 0);
        let (expected, got) = (files(&embedded_dir), files(&dir));
        assert_eq!(
            got.len(),
            8,
            "6 chain files, the summary and the recorded config"
        );
        for ((name_a, a), (name_b, b)) in expected.iter().zip(&got) {
            assert_eq!(name_a, name_b);
            assert!(a == b, "{name_a} differs ({name} speculation)");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
    std::fs::remove_dir_all(&embedded_dir).ok();
}
