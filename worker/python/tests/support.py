"""Shared by the tests: makes the package importable from its folder, and finds and runs the
Rust binaries (``ganger-delegator``, ``ganger-worker``) and the Python worker as processes."""

import os
import signal
import subprocess
import sys
import tempfile
import time

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(PACKAGE_DIR))
if PACKAGE_DIR not in sys.path:
    sys.path.insert(0, PACKAGE_DIR)

#: A guard against hangs, never a performance assertion.
DEADLINE = 120.0


def bin_dir():
    """Where the Rust binaries are: ``GANGER_BIN_DIR`` (set by worker/tests/python.rs), else
    the workspace's ``target/debug``."""
    return os.environ.get("GANGER_BIN_DIR") or os.path.join(REPO_ROOT, "target", "debug")


def binary(name):
    """The path of a Rust binary; the test is skipped, naming it, if it has not been built."""
    import unittest

    path = os.path.join(bin_dir(), name)
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"{path} is not built (run the tests through `cargo test -p ganger-worker --test python`)")
    return path


def worker_env(endpoint, **extra):
    """The environment of a Python worker process: the package on PYTHONPATH, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANGER_")}
    env.update({"PYTHONPATH": PACKAGE_DIR, "GANGER_CONNECT": endpoint, "GANGER_THREADS": "2",
                "GANGER_LOG": "info"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Scratch:
    """A temporary folder for one test."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="ganger-py-")
        self.path = self._dir.name

    def file(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        self._dir.cleanup()


class Process:
    """A child process killed when the test ends, its stderr kept in a file for messages."""

    def __init__(self, argv, env, scratch, label):
        self.label = label
        self.log_path = scratch.file(f"{label}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def signal(self, signum):
        self.proc.send_signal(signum)

    def wait(self, timeout=DEADLINE):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.label} did not exit within {timeout} s:\n{self.log()}") from None

    def running(self):
        return self.proc.poll() is None

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._log.close()


def wait_for(what, condition, timeout=DEADLINE, interval=0.05):
    """Polls ``condition`` until it returns something true; fails naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(interval)


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""
