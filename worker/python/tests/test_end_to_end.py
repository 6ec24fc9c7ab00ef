"""The Python worker against a real ``ganger-delegator`` process: real sockets on 127.0.0.1
(the delegator binds port 0 and writes its endpoint to a file), real signals, real ``kill -9``.

Every wait polls until a condition holds and gives up only after a generous deadline (a guard
against hangs, never a timing assertion)."""

import json
import os
import signal
import subprocess
import sys
import unittest

import support
from support import Process, Scratch, wait_for

CONFORMANCE_WORKER = os.path.join(support.PACKAGE_DIR, "examples", "conformance_worker.py")
LIKELIHOOD_EXAMPLE = os.path.join(support.PACKAGE_DIR, "examples", "likelihood.py")


class DelegatorRun:
    """``ganger-delegator run`` waiting for remote workers on a loopback port."""

    def __init__(self, test, scratch, task, inputs, *flags, secret_file=None):
        self.output = scratch.file("out.jsonl")
        endpoint_file = scratch.file("endpoint")
        argv = [support.binary("ganger-delegator"), "run", "--task", task,
                "--endpoint-file", endpoint_file, "--output", self.output, *flags]
        for flag, default in (("--bind", "tcp://127.0.0.1:0"), ("--heartbeat-ms", "200"), ("--timeout-ms", "3000")):
            if flag not in flags:
                argv += [flag, default]
        if isinstance(inputs, int):
            argv += ["--range", str(inputs)]
        else:
            input_file = scratch.file("inputs.jsonl")
            with open(input_file, "w") as f:
                f.writelines(f"{json.dumps(value)}\n" for value in inputs)
            argv += ["--input", input_file]
        if secret_file is not None:
            argv += ["--secret-file", secret_file]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GANGER_")}
        env.update({"GANGER_HTTP": "none", "GANGER_LOG": "info"})
        self.process = Process(argv, env, scratch, "delegator")
        test.addCleanup(self.process.close)
        self.endpoint = wait_for("the delegator's endpoint file",
                                 lambda: support.read_file(endpoint_file).strip()
                                 or (self.process.running() or self._died()) and None)

    def _died(self):
        raise AssertionError(f"the delegator exited early:\n{self.process.log()}")

    def results(self):
        """The result lines written so far, by index (each index at most once)."""
        results = {}
        for line in support.read_file(self.output).splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line being written
            assert record["index"] not in results, f"index {record['index']} answered twice"
            results[record["index"]] = record
        return results

    def finish(self):
        """Waits for the job to be done and the delegator to exit 0; returns the results."""
        status = self.process.wait()
        assert status == 0, f"the delegator exited with {status}:\n{self.process.log()}"
        return self.results()


def python_worker(test, scratch, endpoint, label="worker", **env):
    process = Process([sys.executable, CONFORMANCE_WORKER], support.worker_env(endpoint, **env), scratch, label)
    test.addCleanup(process.close)
    return process


class EndToEnd(unittest.TestCase):
    def setUp(self):
        self.scratch = Scratch()
        self.addCleanup(self.scratch.cleanup)

    def stop(self, worker):
        worker.signal(signal.SIGTERM)
        self.assertEqual(worker.wait(), 0, worker.log())

    def test_a_bad_setting_exits_1_naming_the_variable(self):
        worker = python_worker(self, self.scratch, "tcp://127.0.0.1:9", "bad", GANGER_THREADS="many")
        self.assertEqual(worker.wait(), 1, worker.log())
        self.assertIn("GANGER_THREADS", worker.log())
        self.assertNotIn("Traceback", worker.log())
        worker = python_worker(self, self.scratch, "tcp://no such host:1", "unreachable")
        self.assertEqual(worker.wait(), 1, worker.log())
        self.assertIn("GANGER_CONNECT", worker.log())
        self.assertNotIn("Traceback", worker.log())

    def test_job_chunks_run_through_the_python_worker_with_failures_retried_then_reported(self):
        n = 3000
        run = DelegatorRun(self, self.scratch, "panic-if-odd", n, "--max-attempts", "2")
        worker = python_worker(self, self.scratch, run.endpoint)
        results = run.finish()
        self.assertEqual(sorted(results), list(range(n)))
        for index, record in results.items():
            if index % 2 == 0:
                self.assertEqual(record.get("output"), index, record)
            else:
                self.assertIn("error", record)
                self.assertIn(f"ValueError: panic-if-odd: input {index} is odd", record["error"])
                self.assertIn("failed 2 time(s)", record["error"])
        self.stop(worker)
        self.assertIn("registered with the delegator", worker.log())

    def test_a_worker_killed_mid_run_loses_nothing_a_second_one_finishes(self):
        n = 400
        run = DelegatorRun(self, self.scratch, "sleep", [10_000] * n)
        first = python_worker(self, self.scratch, run.endpoint, "first")
        wait_for("the first worker's results", lambda: len(run.results()) >= 20)
        first.signal(signal.SIGKILL)
        first.wait()
        done_by_first = len(run.results())
        self.assertLess(done_by_first, n, "the first worker finished before it was killed")
        second = python_worker(self, self.scratch, run.endpoint, "second")
        results = run.finish()
        self.assertEqual(sorted(results), list(range(n)))
        self.assertTrue(all(r.get("output") == 10_000 for r in results.values()), results)
        self.stop(second)

    def test_the_worker_survives_its_delegator_being_killed_and_serves_the_next_one(self):
        first_scratch = Scratch()
        self.addCleanup(first_scratch.cleanup)
        first = DelegatorRun(self, first_scratch, "sleep", [50_000] * 1000)
        worker = python_worker(self, self.scratch, first.endpoint)
        wait_for("the first delegator's results", lambda: len(first.results()) >= 10)
        first.process.signal(signal.SIGKILL)
        first.process.wait()
        # The same worker process, never restarted, registers with a new delegator on the port.
        second = DelegatorRun(self, self.scratch, "panic-if-odd", 200, "--bind", first.endpoint,
                              "--max-attempts", "1")
        self.assertEqual(second.endpoint, first.endpoint)
        results = second.finish()
        self.assertEqual(sorted(results), list(range(200)))
        self.assertTrue(all(r.get("output") == i for i, r in results.items() if i % 2 == 0), results)
        self.assertTrue(all("is odd" in r.get("error", "") for i, r in results.items() if i % 2), results)
        self.stop(worker)
        self.assertGreaterEqual(worker.log().count("registered with the delegator"), 2, worker.log())

    def test_sigterm_hands_back_unstarted_units_finishes_running_ones_and_exits_0(self):
        n = 40
        run = DelegatorRun(self, self.scratch, "sleep", [200_000] * n, "--batch-size", "10",
                           "--timeout-ms", "60000")
        first = python_worker(self, self.scratch, run.endpoint, "first")
        wait_for("the first worker's first results", lambda: len(run.results()) >= 2)
        first.signal(signal.SIGTERM)
        self.assertEqual(first.wait(), 0, first.log())
        log = first.log()
        handed_back = int(log.split("stopping: handing back ")[1].split(" ")[0])
        self.assertGreater(handed_back, 0, log)
        finished_by_first = len(run.results())
        self.assertLessEqual(finished_by_first + handed_back, n)
        # The delegator requeued the returned units at once (its timeout is a minute away).
        second = python_worker(self, self.scratch, run.endpoint, "second")
        results = run.finish()
        self.assertEqual(sorted(results), list(range(n)))
        self.assertTrue(all(r.get("output") == 200_000 for r in results.values()), results)
        self.stop(second)

    def test_a_unit_longer_than_the_timeout_never_makes_the_worker_look_dead(self):
        # The delegator drops a worker silent for 1.2 s; the unit takes 3 s.
        run = DelegatorRun(self, self.scratch, "sleep", [3_000_000, 2], "--heartbeat-ms", "100",
                           "--timeout-ms", "1200")
        worker = python_worker(self, self.scratch, run.endpoint, GANGER_THREADS=1)
        results = run.finish()
        self.assertEqual(results[0].get("output"), 3_000_000, results)
        self.assertEqual(results[1].get("output"), 2, results)
        self.stop(worker)
        log = worker.log().split("stopping:")[0]
        self.assertEqual(log.count("registered with the delegator"), 1, log)
        self.assertNotIn("fell silent", log)
        self.assertNotIn("timed out", run.process.log())

    def test_a_secured_run_shakes_hands_seals_every_frame_and_turns_away_strangers(self):
        secret_file = self.scratch.file("ganger.secret")
        made = subprocess.run([support.binary("ganger-delegator"), "secret", "--out", secret_file],
                              capture_output=True, text=True)
        self.assertEqual(made.returncode, 0, made.stderr)
        n = 2000
        run = DelegatorRun(self, self.scratch, "noop", n, secret_file=secret_file)

        stranger = python_worker(self, self.scratch, run.endpoint, "stranger",
                                 GANGER_SECRET="a different secret of enough bytes")
        self.assertEqual(stranger.wait(), 2, stranger.log())
        self.assertIn("authentication failed", stranger.log())
        plaintext = python_worker(self, self.scratch, run.endpoint, "plaintext")
        self.assertEqual(plaintext.wait(), 2, plaintext.log())
        self.assertIn("requires authentication", plaintext.log())

        worker = python_worker(self, self.scratch, run.endpoint, GANGER_SECRET_FILE=secret_file)
        results = run.finish()
        self.assertEqual(sorted(results), list(range(n)))
        self.assertTrue(all(r.get("output") == i for i, r in results.items()))
        self.assertIn("authenticated=True", worker.log())
        self.stop(worker)


class Mcmc(unittest.TestCase):
    def setUp(self):
        self.scratch = Scratch()
        self.addCleanup(self.scratch.cleanup)

    def config(self, likelihood, output):
        path = self.scratch.file(f"{likelihood}.json")
        with open(path, "w") as f:
            json.dump({"nJobTypes": 3, "nStacks": 2, "nTemperatures": 3, "nSamplesTotal": 3000,
                       "min": [-10, -10, -10], "max": [10, 10, 10], "swapInterval": 10, "seed": 5,
                       "loggingRateSec": 3600, "outputPath": output, "likelihood": likelihood}, f)
        return path

    def chains(self, folder):
        names = sorted(n for n in os.listdir(folder) if n.endswith(".csv"))
        self.assertGreater(len(names), 0, folder)
        contents = {}
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                contents[name] = f.read()
        return contents

    def test_the_example_likelihood_on_a_python_worker_writes_the_builtin_gaussians_files(self):
        delegator = support.binary("ganger-delegator")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GANGER_")}
        env.update({"GANGER_HTTP": "none", "GANGER_LOG": "warn"})

        python_output = self.scratch.file("python")
        config = self.config("python-gaussian", python_output)
        endpoint_file = self.scratch.file("endpoint")
        run = Process([delegator, "mcmc", "--config", config, "--bind", "tcp://127.0.0.1:0",
                       "--endpoint-file", endpoint_file], env, self.scratch, "mcmc-python")
        self.addCleanup(run.close)
        endpoint = wait_for("the delegator's endpoint", lambda: support.read_file(endpoint_file).strip())
        worker = Process([sys.executable, LIKELIHOOD_EXAMPLE, "--config", config],
                         support.worker_env(endpoint), self.scratch, "likelihood-worker")
        self.addCleanup(worker.close)
        self.assertEqual(run.wait(), 0, run.log())
        worker.signal(signal.SIGTERM)
        self.assertEqual(worker.wait(), 0, worker.log())

        builtin_output = self.scratch.file("builtin")
        reference = Process([delegator, "mcmc", "--config", self.config("gaussian", builtin_output),
                             "--local-workers", "1"], env, self.scratch, "mcmc-builtin")
        self.addCleanup(reference.close)
        self.assertEqual(reference.wait(), 0, reference.log())

        python_chains = self.chains(python_output)
        self.assertEqual(python_chains, self.chains(builtin_output))
        self.assertGreater(sum(c.count(b"\n") for c in python_chains.values()), 3000)


if __name__ == "__main__":
    unittest.main()
