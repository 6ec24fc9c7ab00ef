"""A ganger worker in Python: serve Python functions to a ganger delegator over ZeroMQ.

::

    import ganger_worker

    def square(x):
        return x * x

    ganger_worker.run({"square": square}, connect="tcp://127.0.0.1:5555")

The whole of PROTOCOL.md is spoken from the worker's side: the handshake (with the cluster
secret of §10 when one is given), credit, batches evaluated on a thread pool, results in
batches, heartbeats that never wait for an evaluation, reconnects, and a goodbye on SIGTERM.
"""

import logging
import os
import sys

from .config import ConfigError, WorkerConfig, load_config
from .protocol import PROTOCOL_VERSION
from .tasks import likelihood, raw_task
from .worker import Rejected, Status, Worker, run

__all__ = [
    "ConfigError",
    "PROTOCOL_VERSION",
    "Rejected",
    "Status",
    "Worker",
    "WorkerConfig",
    "likelihood",
    "load_config",
    "main",
    "raw_task",
    "run",
]

__version__ = "0.1.0"

# A library logs only where its program says: without a handler of the program's, nothing.
logging.getLogger("ganger_worker").addHandler(logging.NullHandler())


def main(fn, **kwargs):
    """Runs a worker as a program's entry point: logs to stderr (level from ``GANGER_LOG``:
    ``debug``, ``info``, ``warn`` or ``error``; default ``info``), then exits with the Rust
    worker's statuses: 0 after a requested stop, 2 if the delegator rejected the worker, 1 on
    a bad setting or any other error (one line naming it)."""
    level = os.environ.get("GANGER_LOG", "info").strip().lower()
    level = {"warn": "WARNING", "warning": "WARNING"}.get(level, level.upper())
    if not isinstance(logging.getLevelName(level), int):
        level = "INFO"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(fn, **kwargs)
    except Rejected as e:
        print(f"ganger-worker (python): {e}", file=sys.stderr)
        sys.exit(2)
    except ConfigError as e:
        print(f"ganger-worker (python): {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
