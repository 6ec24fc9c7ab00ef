"""The worker's session against a scripted delegator: a ROUTER socket in the test, bound to an
ephemeral port on 127.0.0.1, sends exactly the frames each case needs (including the ones the
real delegator never sends: replays, forgeries, stale challenges, garbage)."""

import hashlib
import os
import threading
import time
import unittest

import msgpack
import zmq

import support  # noqa: F401  (puts the package on the path)
from ganger_worker import Rejected, Worker, secure

DEADLINE = 30.0
SECRET = b"a test cluster secret, 32 bytes!"


def pack(message):
    return msgpack.packb(message, use_bin_type=True)


class FakeDelegator:
    """A ROUTER on 127.0.0.1 that one worker talks to."""

    def __init__(self, test):
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:0")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.peer = None
        self.sealer = None
        self.opener = None
        test.addCleanup(self.close)

    def close(self):
        self.sock.close()
        self.context.term()

    def recv_raw(self, timeout=DEADLINE):
        if not self.sock.poll(int(timeout * 1000)):
            raise AssertionError("the worker sent nothing")
        peer, frame = self.sock.recv_multipart()
        self.peer = peer
        return frame

    def recv(self, skip_heartbeats=True, timeout=DEADLINE):
        """The next message from the worker, opened if sealed."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv_raw(max(0.01, deadline - time.monotonic()))
            if secure.is_sealed(frame):
                frame = self.opener.open(frame)
            message = msgpack.unpackb(frame, raw=False)
            if not (skip_heartbeats and message["type"] == "heartbeat"):
                message["_frame"] = frame
                return message

    def send_raw(self, frame):
        self.sock.send_multipart([self.peer, frame])

    def send(self, message):
        frame = pack(message)
        self.send_raw(self.sealer.seal(frame) if self.sealer else frame)

    def welcome(self, heartbeat_ms=1000, timeout_ms=10000, max_frame=64 << 20, worker_id=1):
        self.send({"type": "welcome", "worker_id": worker_id, "heartbeat_ms": heartbeat_ms,
                   "timeout_ms": timeout_ms, "max_frame": max_frame})

    def handshake(self, hello):
        """Answers a hello with a nonce as a delegator with SECRET does; returns the auth."""
        digest = hashlib.sha256(hello["_frame"]).digest()
        nonce = os.urandom(32)
        self.send_raw(pack({"type": "challenge", "nonce": nonce, "hello_digest": digest}))
        auth = self.recv()
        assert auth["type"] == "auth", auth
        assert auth["proof"] == secure.proof(SECRET, digest, hello["nonce"], nonce)
        to_delegator, to_worker = secure.session_keys(SECRET, digest, hello["nonce"], nonce)
        self.sealer = secure.Sealer(to_worker)
        self.opener = secure.Opener(to_delegator)
        return auth


class WorkerThread:
    """A Worker serving ``tasks`` in a thread of this process."""

    def __init__(self, test, endpoint, tasks, **settings):
        settings.setdefault("threads", 2)
        self.worker = Worker(tasks, connect=endpoint, environ={}, **settings)
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        test.addCleanup(self.stop)

    def _run(self):
        try:
            self.worker.run(handle_signals=False)
        except BaseException as e:
            self.error = e

    def stop(self):
        self.worker.stop()
        self.worker.stop()
        self.thread.join(DEADLINE)


def noop(payload):
    return payload


class Session(unittest.TestCase):
    def registered(self, tasks=None, **settings):
        delegator = FakeDelegator(self)
        worker = WorkerThread(self, delegator.endpoint, tasks or {"noop": noop}, raw=True, **settings)
        hello = delegator.recv()
        self.assertEqual(hello["type"], "hello")
        return delegator, worker, hello

    def test_hello_advertises_protocol_2_slots_prefetch_and_job_types(self):
        delegator, _, hello = self.registered(threads=3, prefetch=7, name="py-test")
        self.assertEqual((hello["protocol"], hello["slots"], hello["prefetch"], hello["name"]), (2, 3, 7, "py-test"))
        self.assertEqual(hello["job_types"], ["noop"])
        self.assertNotIn("nonce", hello)
        # Unanswered, the hello is said again.
        self.assertEqual(delegator.recv()["type"], "hello")

    def test_a_big_batch_of_trivial_units_is_answered_in_few_messages_each_unit_once(self):
        delegator, worker, _ = self.registered()
        delegator.welcome()
        n = 20000
        delegator.send({"type": "work", "batch": 3, "units": [[i, "noop", bytes([i % 256])] for i in range(n)]})
        answered = {}
        messages = 0
        while len(answered) < n:
            message = delegator.recv()
            self.assertEqual((message["type"], message["batch"]), ("results", 3))
            self.assertGreater(message["elapsed_us"], 0)
            messages += 1
            for unit_id, ok, output in message["results"]:
                self.assertNotIn(unit_id, answered)
                answered[unit_id] = (ok, output)
        self.assertEqual(answered, {i: (True, bytes([i % 256])) for i in range(n)})
        self.assertLess(messages, n // 100, "results must travel in batches, not one message per unit")
        self.assertEqual(worker.worker.status().units_done, n)

    def test_never_more_units_run_at_once_than_threads(self):
        running = [0]
        most = [0]
        lock = threading.Lock()

        def slow(payload):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1
            return payload

        delegator, _, _ = self.registered({"slow": slow}, threads=2)
        delegator.welcome()
        delegator.send({"type": "work", "batch": 1, "units": [[i, "slow", b""] for i in range(12)]})
        delegator.send({"type": "work", "batch": 2, "units": [[i, "slow", b""] for i in range(12, 20)]})
        answered = set()
        while len(answered) < 20:
            answered.update(r[0] for r in delegator.recv()["results"])
        self.assertEqual(most[0], 2)

    def test_heartbeats_go_out_while_a_unit_runs_longer_than_the_timeout(self):
        release = threading.Event()
        delegator, worker, _ = self.registered({"block": lambda p: release.wait(DEADLINE) and p}, threads=1)
        delegator.welcome(heartbeat_ms=50, timeout_ms=1000)
        delegator.send({"type": "work", "batch": 1, "units": [[1, "block", b"x"]]})
        beats = 0
        # 25 heartbeats 50 ms apart: the unit blocks for longer than the timeout.
        while beats < 25:
            message = delegator.recv(skip_heartbeats=False, timeout=2.0)
            if message["type"] == "hello" and beats == 0:
                continue  # said again before our welcome reached it (a slow machine)
            self.assertEqual(message["type"], "heartbeat")
            beats += 1
            delegator.send({"type": "heartbeat"})  # the delegator is alive too
        release.set()
        message = delegator.recv()
        self.assertEqual(message["results"], [[1, True, b"x"]])
        self.assertEqual(worker.worker.status().sessions, 1)

    def test_heartbeats_go_out_while_a_unit_computes_in_pure_python_holding_the_gil(self):
        def spin(payload):
            end = time.monotonic() + 1.5
            n = 0
            while time.monotonic() < end:
                n += 1
            return payload

        delegator, _, _ = self.registered({"spin": spin}, threads=2)
        delegator.welcome(heartbeat_ms=50, timeout_ms=1000)
        delegator.send({"type": "work", "batch": 1, "units": [[1, "spin", b"a"], [2, "spin", b"b"]]})
        beats = 0
        results = []
        while len(results) < 2:
            # Never a gap as long as the timeout, though both threads compute for 1.5 s.
            message = delegator.recv(skip_heartbeats=False, timeout=1.0)
            if message["type"] == "heartbeat":
                beats += 1
                delegator.send({"type": "heartbeat"})
            elif message["type"] == "hello" and beats == 0:
                continue  # said again before our welcome reached it (a slow machine)
            else:
                results += message["results"]
        self.assertEqual(sorted(results), [[1, True, b"a"], [2, True, b"b"]])
        self.assertGreaterEqual(beats, 5)

    def test_results_are_split_under_max_frame(self):
        delegator, _, _ = self.registered({"big": lambda p: b"x" * 1000})
        delegator.welcome(max_frame=4096)
        delegator.send({"type": "work", "batch": 1, "units": [[i, "big", b""] for i in range(50)]})
        answered = []
        while len(answered) < 50:
            frame = delegator.recv_raw()
            self.assertLessEqual(len(frame), 4096)
            message = msgpack.unpackb(frame)
            if message["type"] == "results":
                answered += message["results"]
        self.assertEqual(sorted(r[0] for r in answered), list(range(50)))

    def test_malformed_frames_are_dropped_and_counted_and_the_worker_goes_on(self):
        delegator, worker, _ = self.registered()
        delegator.welcome()
        for frame in [b"\x00garbage", pack([1, 2]), pack({"type": "nonsense"}), secure.SEALED.to_bytes(1, "big") * 40,
                      pack({"type": "work"})]:
            delegator.send_raw(frame)
        delegator.sock.send_multipart([delegator.peer, b"two", b"frames"])
        delegator.send({"type": "work", "batch": 9, "units": []})  # nothing to answer, nothing wrong
        delegator.send({"type": "work", "batch": 1, "units": [[5, "noop", b"ok"]]})
        self.assertEqual(delegator.recv()["results"], [[5, True, b"ok"]])
        self.assertEqual(worker.worker.status().dropped_frames, 6)
        self.assertEqual(worker.worker.status().sessions, 1, "a work frame without units keeps the session")
        self.assertIsNone(worker.error)

    def test_reject_ends_run_with_the_delegators_reason(self):
        delegator, worker, _ = self.registered()
        delegator.send({"type": "reject", "reason": "protocol version 2 is not 3", "protocol": 3})
        worker.thread.join(DEADLINE)
        self.assertIsInstance(worker.error, Rejected)
        self.assertIn("protocol version 2 is not 3", str(worker.error))
        self.assertEqual(worker.error.protocol, 3)

    def test_reset_before_the_welcome_is_ignored_after_it_starts_over(self):
        delegator, worker, _ = self.registered()
        # A reset answering something sent before our hello: ignored, no new hello for it.
        delegator.send({"type": "reset", "reason": "stale"})
        delegator.welcome(worker_id=1)
        delegator.send({"type": "work", "batch": 1, "units": [[1, "noop", b"a"]]})
        self.assertEqual(delegator.recv()["results"], [[1, True, b"a"]])
        # Once registered, a reset drops the session: work held is forgotten, hello again.
        delegator.send({"type": "reset", "reason": "delegator restarted"})
        self.assertEqual(delegator.recv()["type"], "hello")
        delegator.send({"type": "work", "batch": 2, "units": [[2, "noop", b"b"]]})  # before a welcome: ignored
        delegator.welcome(worker_id=2)
        delegator.send({"type": "work", "batch": 3, "units": [[3, "noop", b"c"]]})
        self.assertEqual(delegator.recv()["results"], [[3, True, b"c"]])
        self.assertEqual(worker.worker.status().sessions, 2)

    def test_stop_hands_back_unstarted_units_and_finishes_running_ones(self):
        started = threading.Event()
        release = threading.Event()

        def block(payload):
            started.set()
            release.wait(DEADLINE)
            return payload

        delegator, worker, _ = self.registered({"block": block}, threads=1)
        delegator.welcome()
        delegator.send({"type": "work", "batch": 1, "units": [[i, "block", b"%d" % i] for i in range(5)]})
        self.assertTrue(started.wait(DEADLINE))
        worker.worker.stop()
        goodbye = delegator.recv()
        self.assertEqual(goodbye["type"], "goodbye")
        self.assertEqual(sorted(goodbye["returned"]), [1, 2, 3, 4])
        # Work already on its way is handed straight back.
        delegator.send({"type": "work", "batch": 2, "units": [[9, "block", b""]]})
        self.assertEqual(delegator.recv()["returned"], [9])
        release.set()
        self.assertEqual(delegator.recv()["results"], [[0, True, b"0"]])
        worker.thread.join(DEADLINE)
        self.assertIsNone(worker.error)
        self.assertEqual(worker.worker.status().state, "stopped")

    def test_stop_hands_back_the_unstarted_rest_of_a_running_chunk(self):
        release = threading.Event()
        started = threading.Event()

        def gate(payload):
            if payload == b"wait":
                started.set()
                release.wait(DEADLINE)
            return payload

        delegator, worker, _ = self.registered({"gate": gate}, threads=1)
        delegator.welcome()
        # Fast units first, so that the worker measures them and chunks generously.
        delegator.send({"type": "work", "batch": 1, "units": [[i, "gate", b"go"] for i in range(500)]})
        answered = 0
        while answered < 500:
            answered += len(delegator.recv()["results"])
        units = [[1000, "gate", b"wait"]] + [[1000 + i, "gate", b"go"] for i in range(1, 100)]
        delegator.send({"type": "work", "batch": 2, "units": units})
        self.assertTrue(started.wait(DEADLINE))
        worker.worker.stop()
        goodbye = delegator.recv()
        self.assertEqual(goodbye["type"], "goodbye")
        # Handed to the pool in one chunk, but not started: handed back with the goodbye.
        self.assertEqual(goodbye["returned"], list(range(1001, 1100)))
        release.set()
        self.assertEqual(delegator.recv()["results"], [[1000, True, b"wait"]])
        worker.thread.join(DEADLINE)
        self.assertIsNone(worker.error)


class SecuredSession(unittest.TestCase):
    def registered(self):
        delegator = FakeDelegator(self)
        worker = WorkerThread(self, delegator.endpoint, {"noop": noop}, raw=True, secret=SECRET)
        hello = delegator.recv()
        self.assertEqual(len(hello["nonce"]), 32)
        return delegator, worker, hello

    def test_a_stale_challenge_is_ignored_and_the_latest_hello_is_answered(self):
        delegator, worker, first = self.registered()
        # The worker says hello again (no answer within a second); then the challenge to the
        # first hello arrives: it must be ignored.
        second = delegator.recv()
        self.assertEqual(second["type"], "hello")
        self.assertNotEqual(second["nonce"], first["nonce"])
        delegator.send_raw(pack({"type": "challenge", "nonce": os.urandom(32),
                                 "hello_digest": hashlib.sha256(first["_frame"]).digest()}))
        following = delegator.recv()
        self.assertEqual(following["type"], "hello", "a stale challenge must get no auth")
        delegator.handshake(following)
        delegator.welcome()
        delegator.send({"type": "work", "batch": 1, "units": [[1, "noop", b"sealed"]]})
        self.assertEqual(delegator.recv()["results"], [[1, True, b"sealed"]])

    def test_plaintext_replayed_and_forged_frames_are_dropped_and_counted(self):
        delegator, worker, hello = self.registered()
        delegator.handshake(hello)
        plaintext_welcome = pack({"type": "welcome", "worker_id": 9, "heartbeat_ms": 1000,
                                  "timeout_ms": 10000, "max_frame": 1 << 20})
        delegator.send_raw(plaintext_welcome)  # never accepted in plaintext
        delegator.welcome()
        work = delegator.sealer.seal(pack({"type": "work", "batch": 1, "units": [[1, "noop", b"a"]]}))
        delegator.send_raw(work)
        self.assertEqual(delegator.recv()["results"], [[1, True, b"a"]])
        delegator.send_raw(work)  # replayed
        forged = bytearray(delegator.sealer.seal(pack({"type": "work", "batch": 2, "units": [[2, "noop", b"b"]]})))
        forged[-1] ^= 1
        delegator.send_raw(bytes(forged))
        delegator.send_raw(pack({"type": "work", "batch": 3, "units": [[3, "noop", b"c"]]}))  # plaintext
        delegator.send({"type": "work", "batch": 4, "units": [[4, "noop", b"d"]]})
        self.assertEqual(delegator.recv()["results"], [[4, True, b"d"]])
        status = worker.worker.status()
        self.assertEqual((status.replayed, status.bad_seal, status.dropped_frames), (1, 1, 4))
        self.assertEqual(status.worker_id, 1)
        self.assertEqual(status.units_done, 2)


if __name__ == "__main__":
    unittest.main()
