//! `ganger-transport`: the ZeroMQ plumbing the delegator and the worker share.
//!
//! - [`affinity`] keeps a process's messaging threads (its own loop's and libzmq's) on one CPU.
//! - [`frames`] turns ZeroMQ multipart messages into (peer, frame) pairs and back,
//!   never blocking and never trusting the number of parts a peer sent.
//! - [`wake`] lets other threads wake a loop that is blocked in `zmq::poll`.
//! - [`logging`] sets up the binaries' logs (text or JSON).
//! - [`secret`] reads the cluster secret from `--secret-file` or `GANGER_SECRET`, and makes one.
//! - [`warn`] rate-limits warnings about misbehaving peers so that a flood of garbage cannot
//!   flood the log too.
//!
//! This crate opens no socket itself: each socket is created and owned by exactly one loop in
//! the delegator or the worker crate.

pub mod affinity;
pub mod frames;
pub mod logging;
pub mod secret;
pub mod wake;
pub mod warn;

pub use frames::{Incoming, SendError};
pub use wake::{wake_pair, WakeReceiver, Waker};
pub use warn::RateLimited;

/// Maps `tcp://*:P` or `tcp://0.0.0.0:P` to the loopback address, for processes on the same host.
pub fn local_endpoint(bound: &str) -> String {
    bound
        .replacen("tcp://0.0.0.0:", "tcp://127.0.0.1:", 1)
        .replacen("tcp://*:", "tcp://127.0.0.1:", 1)
        .replacen("tcp://[::]:", "tcp://127.0.0.1:", 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn wildcard_endpoints_map_to_loopback() {
        assert_eq!(
            super::local_endpoint("tcp://0.0.0.0:5555"),
            "tcp://127.0.0.1:5555"
        );
        assert_eq!(super::local_endpoint("tcp://*:5"), "tcp://127.0.0.1:5");
        assert_eq!(
            super::local_endpoint("tcp://10.0.0.1:7"),
            "tcp://10.0.0.1:7"
        );
    }
}
