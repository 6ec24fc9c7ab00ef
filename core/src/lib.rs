//! `ganger-core`: the parts of ganger that every other crate shares and that do no I/O.
//!
//! - [`protocol`]: the versioned wire messages exchanged between a delegator and its workers,
//!   and their MessagePack codec (the byte-level spec is `PROTOCOL.md` at the repository root).
//! - [`task`]: the [`Task`] trait that a worker evaluates units with,
//!   the [`Registry`] that maps job types to tasks, and the built-in tasks.
//! - [`payload`]: helpers that turn serde values into unit payloads and back.
//!
//! Nothing here opens a socket, spawns a thread or touches a file:
//! the delegator and worker crates own all of that.
//!
//! ```
//! use ganger_core::protocol::{self, Message, UnitRef, Work};
//! use ganger_core::task::Registry;
//!
//! // A delegator encodes a batch of work...
//! let payload = ganger_core::payload::to_bytes(&7u64).unwrap();
//! let work = Message::Work(Work {
//!     batch: 1,
//!     units: vec![UnitRef { id: 42, job_type: "square", payload: &payload }],
//! });
//! let mut frame = Vec::new();
//! protocol::encode(&work, &mut frame);
//!
//! // ...and a worker decodes it and evaluates each unit with a registered task.
//! let registry = Registry::with_builtins();
//! let Message::Work(work) = protocol::decode(&frame).unwrap() else { unreachable!() };
//! let output = registry.run(work.units[0].job_type, work.units[0].payload).unwrap();
//! assert_eq!(ganger_core::payload::from_bytes::<u64>(&output).unwrap(), 49);
//! ```

pub mod mcmc;
pub mod payload;
pub mod protocol;
pub mod task;

pub use protocol::{DecodeError, Message, PROTOCOL_VERSION};
pub use task::{Registry, Task};
