//! Convergence diagnostics (placeholder; being written).
