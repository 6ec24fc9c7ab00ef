"""Unit tests of the wire: PROTOCOL.md's example bytes, the §10.5 worked example, results
splitting, the likelihood helper's encoding, and settings from the environment."""

import hashlib
import os
import struct
import sys
import tempfile
import unittest
from unittest import mock

import msgpack

import support  # noqa: F401  (puts the package on the path)
from ganger_worker import ConfigError, Worker, likelihood, load_config
from ganger_worker import protocol, secure
from ganger_worker.tasks import Tasks, evaluate


def hexbytes(text):
    return bytes.fromhex("".join(text.split()))


class ExampleBytes(unittest.TestCase):
    """PROTOCOL.md §8."""

    def test_heartbeat_is_the_16_bytes_of_section_8(self):
        self.assertEqual(protocol.HEARTBEAT, hexbytes("81 a4 74 79 70 65 a9 68 65 61 72 74 62 65 61 74"))
        self.assertEqual(len(protocol.HEARTBEAT), 16)

    def test_the_work_example_decodes_to_its_unit(self):
        frame = hexbytes("83 a4 74 79 70 65 a4 77 6f 72 6b a5 62 61 74 63 68 07 a5 75 6e 69 74 73"
                         " 91 93 2a a4 6e 6f 6f 70 c4 01 05")
        message = protocol.decode(frame)
        self.assertEqual(message["batch"], 7)
        self.assertEqual(message["units"], [[42, "noop", b"\x05"]])
        old_library = msgpack.packb({"type": "work", "batch": 7, "units": [[42, "noop", "\x05"]]}, use_bin_type=False)
        self.assertEqual(protocol.decode(old_library)["units"], [[42, "noop", b"\x05"]])

    def test_the_results_example_is_what_the_worker_sends(self):
        expected = hexbytes("84 a4 74 79 70 65 a7 72 65 73 75 6c 74 73 a5 62 61 74 63 68 07"
                            " aa 65 6c 61 70 73 65 64 5f 75 73 03 a7 72 65 73 75 6c 74 73"
                            " 91 93 2a c3 c4 01 05")
        self.assertEqual(protocol.results_frames(7, 3, [[42, True, b"\x05"]], 1 << 20), [expected])

    def test_a_failed_unit_is_encoded_as_in_section_8(self):
        frame = protocol.results_frames(7, 3, [[42, False, "boom!"]], 1 << 20)[0]
        self.assertTrue(frame.endswith(hexbytes("93 2a c2 a5 62 6f 6f 6d 21")), frame.hex())

    def test_a_tasks_exception_fails_its_unit_with_type_and_message(self):
        def boom(payload):
            if payload == b"exit":
                raise SystemExit(3)
            raise KeyError("boom!")

        tasks = Tasks({"noop": lambda b: b, "boom": boom}, raw=True)
        outcomes, errors, last = evaluate(tasks, [(1, "boom", b""), (2, "noop", b"x"), (3, "nope", b"")])
        self.assertEqual(evaluate(tasks, [(4, "boom", b"exit")])[0], [[4, False, "SystemExit: 3"]])
        self.assertEqual(outcomes[0], [1, False, "KeyError: 'boom!'"])
        self.assertEqual(outcomes[1], [2, True, b"x"])
        self.assertEqual(outcomes[2][:2], [3, False])
        self.assertIn("no task for job type `nope`", outcomes[2][2])
        self.assertEqual(errors, 2)
        self.assertEqual(last, outcomes[2][2])

    def test_payloads_are_msgpack_values_unless_raw(self):
        tasks = Tasks(lambda x: {"twice": x * 2, "bytes": b"\x01"}, job_types=["double"])
        outcomes, errors, _ = evaluate(tasks, [(5, "double", msgpack.packb(21))])
        self.assertEqual(errors, 0)
        self.assertEqual(msgpack.unpackb(outcomes[0][2]), {"twice": 42, "bytes": b"\x01"})
        # A wildcard serves every job type with its prefix; the longest wins.
        tasks = Tasks({"a/*": lambda _: 1, "a/b/*": lambda _: 2}, raw=False)
        outcomes, _, _ = evaluate(tasks, [(1, "a/b/c", b"\xc0"), (2, "a/x", b"\xc0")])
        self.assertEqual([msgpack.unpackb(o[2]) for o in outcomes], [2, 1])

    def test_malformed_frames_raise_malformed_frame_never_anything_else(self):
        for frame in [b"", b"\xc1", b"\x93\x01\x02\x03", msgpack.packb({"type": 3}),
                      msgpack.packb({"type": "bogus"}), msgpack.packb({"type": "work", "batch": -1, "units": []}),
                      msgpack.packb({"type": "work", "batch": 1, "units": [[1, "noop"]]}),
                      msgpack.packb({"type": "welcome", "worker_id": 1}),
                      msgpack.packb({"type": "challenge", "nonce": b"x", "hello_digest": b"y"}),
                      msgpack.packb({"type": "heartbeat"}) + b"\x00", b"\xdd\xff\xff\xff\xff"]:
            with self.assertRaises(protocol.MalformedFrame, msg=frame.hex()):
                protocol.decode(frame)
        with self.assertRaises(protocol.MalformedFrame) as caught:
            protocol.decode(msgpack.packb({"type": "work", "batch": 1, "units": [[1, 2, b""]]}))
        self.assertTrue(caught.exception.work)


class ResultsSplitting(unittest.TestCase):
    def outcomes(self, n, size):
        return [[i, True, bytes([i % 256]) * size] for i in range(n)]

    def test_every_frame_stays_under_the_limit_and_every_unit_is_answered_once(self):
        outcomes = self.outcomes(1000, 300)
        for limit in (1024, 4096, 100_000):
            frames = protocol.results_frames(9, 1_000_000, outcomes, limit)
            self.assertGreater(len(frames), 1 if limit < 300_000 else 0)
            answered = []
            elapsed = 0
            for frame in frames:
                self.assertLessEqual(len(frame), limit)
                message = msgpack.unpackb(frame)
                self.assertEqual(message["batch"], 9)
                answered += message["results"]
                elapsed += message["elapsed_us"]
            self.assertEqual(answered, outcomes)
            # Each message carries its share of the batch's time.
            self.assertLessEqual(elapsed, 1_000_000)
            self.assertGreater(elapsed, 1_000_000 - len(frames))

    def test_a_small_batch_is_one_message(self):
        self.assertEqual(len(protocol.results_frames(1, 10, self.outcomes(5000, 1), 64 << 20)), 1)

    def test_an_output_too_big_for_any_frame_becomes_an_error(self):
        outcomes = [[1, True, b"x" * 5000], [2, True, b"y"]]
        frames = protocol.results_frames(3, 10, outcomes, 2000)
        results = [r for f in frames for r in msgpack.unpackb(f)["results"]]
        self.assertEqual(results[1], [2, True, b"y"])
        self.assertEqual(results[0][:2], [1, False])
        self.assertIn("output of 5000 bytes exceeds the delegator's frame limit of 2000 bytes", results[0][2])


    def test_a_long_goodbye_is_split_and_an_empty_one_still_sent(self):
        ids = [2**64 - 1 - i for i in range(1000)]
        frames = protocol.goodbye_frames(ids, 1024)
        self.assertGreater(len(frames), 1)
        self.assertTrue(all(len(f) <= 1024 for f in frames))
        self.assertEqual([i for f in frames for i in msgpack.unpackb(f)["returned"]], ids)
        self.assertEqual([msgpack.unpackb(f) for f in protocol.goodbye_frames([], 1024)],
                         [{"type": "goodbye", "returned": []}])


class WorkedExample(unittest.TestCase):
    """PROTOCOL.md §10.5, every value."""

    SECRET = b"ganger example secret 0123456789"
    NW = bytes(range(0x00, 0x20))
    ND = bytes(range(0x20, 0x40))
    H = hexbytes(
        "88a474797065a568656c6c6fa870726f746f636f6c02a46e616d65a3772d31a4686f7374a56e6f646537"
        "a96a6f625f747970657391a6737175617265a5736c6f747301a8707265666574636801a56e6f6e6365c420"
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    )

    def test_the_hello_is_h(self):
        frame = protocol.hello("w-1", "node7", ["square"], 1, 1, self.NW)
        self.assertEqual(frame, self.H)

    def test_hello_digest_proof_and_keys(self):
        digest = hashlib.sha256(self.H).digest()
        self.assertEqual(digest.hex(), "743541a4c03399226a49b7f5cf98fd5325970ced5ce7d8ed8d338ef4b796b810")
        self.assertEqual(
            secure.proof(self.SECRET, digest, self.NW, self.ND).hex(),
            "4f872f2b1356b1502eb8f75afe1f616e0d7c2d9e55ef5b2db6c27f067d39d058",
        )
        to_delegator, to_worker = secure.session_keys(self.SECRET, digest, self.NW, self.ND)
        self.assertEqual(to_delegator.hex(), "a47cec4312b3a546c7a6dcc4e3d930290b1b945eab7ace80c83ea701e749ae1e")
        self.assertEqual(to_worker.hex(), "9f4c9c14b691938841615e5987f47e478fd0a155467144792d46ef576f76a063")

    def test_the_sixth_sealed_heartbeat(self):
        digest = hashlib.sha256(self.H).digest()
        to_delegator, _ = secure.session_keys(self.SECRET, digest, self.NW, self.ND)
        sealer = secure.Sealer(to_delegator)
        frames = [sealer.seal(protocol.HEARTBEAT) for _ in range(6)]
        expected = hexbytes(
            "c1 00 00 00 00 00 00 00 05"
            " 2b bc de 13 f8 d1 e6 7c 0e 90 c0 81 e5 6b d6 91"
            " ed 0f 26 97 41 54 47 b8 78 eb f5 db 7b 5d f9 13"
        )
        self.assertEqual(frames[5], expected)
        self.assertEqual(len(expected), len(protocol.HEARTBEAT) + secure.SEAL_OVERHEAD)

    def test_the_security_state_answers_only_its_latest_hello(self):
        security = secure.Security(self.SECRET)
        security.nonce()
        security.worker_nonce = self.NW  # the worked example's nonce instead of a random one
        security.said_hello(self.H)
        self.assertIsNone(security.answer(self.ND, bytes(32)), "a challenge to another hello")
        proof = security.answer(self.ND, hashlib.sha256(self.H).digest())
        self.assertEqual(proof.hex(), "4f872f2b1356b1502eb8f75afe1f616e0d7c2d9e55ef5b2db6c27f067d39d058")
        # The delegator's side of the same session opens what the worker seals, once.
        _, to_worker = secure.session_keys(self.SECRET, hashlib.sha256(self.H).digest(), self.NW, self.ND)
        frame = secure.Sealer(to_worker).seal(protocol.HEARTBEAT)
        self.assertEqual(security.opener.open(frame), protocol.HEARTBEAT)
        with self.assertRaises(secure.OpenError) as replayed:
            security.opener.open(frame)
        self.assertEqual(replayed.exception.kind, "replayed")
        forged = bytearray(secure.Sealer(to_worker).seal(protocol.HEARTBEAT))
        forged[1:9] = (7).to_bytes(8, "big")
        with self.assertRaises(secure.OpenError) as bad:
            security.opener.open(bytes(forged))
        self.assertEqual(bad.exception.kind, "bad_seal")
        # The forgery did not advance the counter: the genuine frame 1 still opens.
        sealer = secure.Sealer(to_worker)
        sealer.seal(b"")
        self.assertEqual(security.opener.open(sealer.seal(protocol.HEARTBEAT)), protocol.HEARTBEAT)

    def test_hkdf_matches_rfc_5869_test_case_1(self):
        okm = secure.hkdf_sha256(b"\x0b" * 22, bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
        self.assertEqual(
            okm.hex(),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        )


class Likelihood(unittest.TestCase):
    def test_the_section_5_unit_gives_one_f64_per_point(self):
        # PROTOCOL.md §5: term 1 of 3 at (0.5, -1) and (2, 0).
        payload = hexbytes("93 01 03 92 92 cb 3fe0000000000000 cb bff0000000000000"
                           " 92 cb 4000000000000000 cb 0000000000000000")
        calls = []

        def gaussian(term, x):
            calls.append((term, list(x)))
            return 0.5 * sum(v * v for v in x) / 3  # the Rust built-in `gaussian`, split in 3

        output = likelihood(gaussian)(payload)
        expected = b"\x92" + b"\xcb" + struct.pack(">d", 0.5 * 1.25 / 3) + b"\xcb" + struct.pack(">d", 0.5 * 4.0 / 3)
        self.assertEqual(output, expected)
        self.assertEqual(calls, [(1, [0.5, -1.0]), (1, [2.0, 0.0])])

    def test_integers_become_floats_and_a_bad_unit_fails(self):
        task = likelihood(lambda term, x: term)
        self.assertEqual(task(msgpack.packb([2, 3, [[1.0]]])), b"\x91\xcb" + struct.pack(">d", 2.0))
        tasks = Tasks({"mcmc/l/*": task})
        outcomes, errors, _ = evaluate(tasks, [(1, "mcmc/l/0", msgpack.packb([3, 3, [[1.0]]])),
                                               (2, "mcmc/l/0", msgpack.packb("nope"))])
        self.assertEqual(errors, 2)
        self.assertIn("term 3 of 3", outcomes[0][2])


class Settings(unittest.TestCase):
    def test_defaults_and_explicit_arguments_win(self):
        config = load_config(environ={})
        self.assertEqual(config.connect, "tcp://127.0.0.1:5555")
        self.assertEqual(config.threads, os.cpu_count())
        self.assertEqual(config.prefetch, 65536)
        self.assertTrue(config.name.endswith(f"-{os.getpid()}"))
        environ = {"GANGER_CONNECT": "tcp://127.0.0.1:7", "GANGER_THREADS": "3", "GANGER_NAME": "n",
                   "GANGER_PREFETCH": "1", "GANGER_JOB_TYPES": "a, b"}
        config = load_config(environ=environ)
        self.assertEqual((config.connect, config.threads, config.name, config.prefetch, config.job_types),
                         ("tcp://127.0.0.1:7", 3, "n", 1, ["a", "b"]))
        config = load_config(threads=5, connect="tcp://127.0.0.1:8", environ=environ)
        self.assertEqual((config.threads, config.connect), (5, "tcp://127.0.0.1:8"))

    def test_a_bad_value_names_its_variable(self):
        for variable, value in [("GANGER_THREADS", "two"), ("GANGER_THREADS", "0"), ("GANGER_PREFETCH", "-1"),
                                ("GANGER_CONNECT", "localhost:5555"), ("GANGER_GRACE_SECS", "soon"),
                                ("GANGER_SECRET", "short")]:
            with self.assertRaises(ConfigError, msg=variable) as caught:
                load_config(environ={variable: value})
            self.assertIn(variable, str(caught.exception))
            self.assertNotIn("short", str(caught.exception).replace("GANGER_", ""))

    def test_the_secret_is_trimmed_read_from_a_file_and_never_given_twice(self):
        with tempfile.NamedTemporaryFile("wb", delete=False) as f:
            f.write(b"  0123456789abcdef0123\n")
        try:
            self.assertEqual(load_config(environ={"GANGER_SECRET_FILE": f.name}).secret, b"0123456789abcdef0123")
            self.assertEqual(load_config(secret_file=f.name, environ={"GANGER_SECRET": "x" * 20}).secret,
                             b"0123456789abcdef0123")
            with self.assertRaises(ConfigError) as both:
                load_config(environ={"GANGER_SECRET_FILE": f.name, "GANGER_SECRET": "y" * 20})
            self.assertIn("GANGER_SECRET_FILE", str(both.exception))
            self.assertIn("given twice", str(both.exception))
        finally:
            os.unlink(f.name)
        with self.assertRaises(ConfigError) as missing:
            load_config(environ={"GANGER_SECRET_FILE": "/nonexistent/ganger.secret"})
        self.assertIn("/nonexistent/ganger.secret", str(missing.exception))
        self.assertEqual(load_config(environ={"GANGER_SECRET": "\t" + "s" * 16 + " \r\n"}).secret, b"s" * 16)

    def test_a_secret_without_cryptography_says_what_to_install(self):
        blocked = {"cryptography": None, "cryptography.hazmat.primitives.ciphers.aead": None}
        with mock.patch.dict(sys.modules, blocked):
            with self.assertRaises(ConfigError) as caught:
                Worker({"noop": lambda b: b}, environ={"GANGER_SECRET": "s" * 32})
        self.assertIn("pip install './worker/python[secure]'", str(caught.exception))

    def test_one_callable_needs_job_types(self):
        with self.assertRaises(ConfigError) as caught:
            Worker(lambda x: x, environ={})
        self.assertIn("job_types", str(caught.exception))
        worker = Worker(lambda x: x, environ={"GANGER_JOB_TYPES": "echo"})
        self.assertEqual(worker.tasks.job_types, ["echo"])


if __name__ == "__main__":
    unittest.main()
