//! A unit of work as the scheduler holds it, and the outcome it delivers for one.

use ganger_core::payload::Payload;

/// A unit waiting in a queue or leased to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// See [`unit_id`](super::unit_id).
    pub id: u64,
    /// The task's input.
    pub payload: Payload,
}

/// Why a unit was given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFailure {
    /// The error of every attempt, oldest first.
    pub errors: Vec<String>,
}

impl std::fmt::Display for UnitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed {} time(s): ", self.errors.len())?;
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "[{}] {error}", i + 1)?;
        }
        Ok(())
    }
}

/// The outcome of one unit, as delivered to its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The unit's index within its job (the position of its input).
    pub index: u64,
    /// The task's output, or why the unit failed.
    pub result: Result<Payload, UnitFailure>,
}

pub(super) fn payload_bytes<'a>(units: impl IntoIterator<Item = &'a Unit>) -> u64 {
    units.into_iter().map(|u| u.payload.len() as u64).sum()
}
