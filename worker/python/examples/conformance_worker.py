"""The Python worker under the conformance suite's test: serves ``noop``, ``sleep`` and
``panic-if-odd`` with exactly the semantics of ganger's Rust built-ins, configured only by the
environment (``GANGER_CONNECT``, ``GANGER_THREADS``, ``GANGER_NAME``, ``GANGER_SECRET``, ...).

Run it from the repository root::

    PYTHONPATH=worker/python GANGER_CONNECT=tcp://127.0.0.1:5555 python3 worker/python/examples/conformance_worker.py
"""

import time

import ganger_worker


@ganger_worker.raw_task
def noop(payload):
    """The output is the payload bytes unchanged."""
    return payload


def sleep(micros):
    """Sleeps for a MessagePack unsigned integer of microseconds; returns it."""
    if type(micros) is not int or micros < 0:
        raise ValueError(f"sleep: expected an unsigned integer of microseconds, got {micros!r}")
    time.sleep(micros / 1e6)
    return micros


def panic_if_odd(n):
    """Fails on an odd integer; returns an even one unchanged."""
    if type(n) is not int:
        raise ValueError(f"panic-if-odd: expected an integer, got {n!r}")
    if n % 2 != 0:
        raise ValueError(f"panic-if-odd: input {n} is odd")
    return n


if __name__ == "__main__":
    ganger_worker.main({"noop": noop, "sleep": sleep, "panic-if-odd": panic_if_odd})
