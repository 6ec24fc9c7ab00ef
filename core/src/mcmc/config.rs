//! Sampler configuration (placeholder; being written).
