"""The worker: one I/O loop that owns the DEALER socket, and a pool of threads that evaluate.

Socket: DEALER, connected (never bound) by :meth:`Worker.run` to the delegator's endpoint,
owned by the thread that calls ``run`` for the worker's whole life (ZeroMQ reconnects it by
itself), closed when ``run`` returns, lingering a little so the last results and the goodbye
leave. The loop never waits for an evaluation: the pool hands finished chunks back through a
queue and wakes the loop with a byte on a pipe, so heartbeats go out however long a unit runs.
"""

import logging
import os
import queue
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Optional

import zmq

from . import protocol
from .config import ConfigError, load_config
from .protocol import MalformedFrame
from .secure import OpenError, SEAL_OVERHEAD, SecretError, Security, is_sealed, require_crypto
from .tasks import Tasks, evaluate

log = logging.getLogger("ganger_worker")

#: How long to wait for a ``welcome`` before saying hello again (PROTOCOL.md §4 step 1).
HELLO_RETRY = 1.0
#: Frames read per turn before the loop looks at results and timers again.
MAX_FRAMES_PER_TURN = 1024
#: Work handed to one pool thread at a time, in seconds of measured work: big enough that
#: trivial units do not pay a hand-off each, small enough that a stop finds most units unstarted.
CHUNK_SECONDS = 0.005
#: The most units in one chunk.
MAX_CHUNK_UNITS = 4096
#: The most time a stopping worker lingers to get its last frames out, seconds.
MAX_LINGER = 2.0


class Rejected(Exception):
    """The delegator refused this worker (``reject``); do not retry with the same settings.

    ``reason`` quotes the delegator, ``protocol`` is the version it speaks (or None)."""

    def __init__(self, reason, protocol_version=None):
        super().__init__(f"the delegator rejected this worker: {reason}")
        self.reason = reason
        self.protocol = protocol_version


@dataclass
class Status:
    """What the worker is doing, for logs and health checks; :meth:`Worker.status` copies it."""

    #: ``starting``, ``connecting``, ``connected``, ``stopping`` or ``stopped``.
    state: str = "starting"
    #: The id the delegator gave this worker in its latest ``welcome``.
    worker_id: Optional[int] = None
    #: Sessions begun (``welcome`` messages received).
    sessions: int = 0
    #: Units evaluated and answered (including failed ones).
    units_done: int = 0
    #: Units whose task raised.
    unit_errors: int = 0
    #: Frames from the delegator dropped as malformed, refused or unopenable.
    dropped_frames: int = 0
    #: Of those, sealed frames with a replayed counter.
    replayed: int = 0
    #: Of those, sealed frames whose tag did not check out.
    bad_seal: int = 0
    #: The last problem (a failed unit, a dropped frame, a reset), for a person.
    last_error: Optional[str] = None
    #: ``time.monotonic()`` when a frame last arrived, or None.
    last_heard: Optional[float] = None


@dataclass
class _Batch:
    batch: int
    units: list
    offset: int = 0


class _Chunk:
    """Units handed to one pool thread. The thread takes them one at a time with
    ``units.popleft()`` and the I/O loop may take the rest with ``units.pop()`` (a deque's ends
    are thread-safe), so a unit is either started by the pool or handed back, never both."""

    __slots__ = ("batch", "units")

    def __init__(self, batch, units):
        self.batch = batch
        self.units = deque(units)

    def take_unstarted(self):
        """Removes the units the pool has not started and returns their ids."""
        taken = []
        while True:
            try:
                taken.append(self.units.pop()[0])
            except IndexError:
                taken.reverse()
                return taken


class _Finished:
    __slots__ = ("chunk", "outcomes", "start", "end", "errors", "last_error")

    def __init__(self, chunk, outcomes, start, end, errors, last_error):
        self.chunk = chunk
        self.outcomes = outcomes
        self.start = start
        self.end = end
        self.errors = errors
        self.last_error = last_error


class _RateLimited:
    """Lets a warning through at most once per second, counting the ones held back."""

    def __init__(self):
        self.last = None
        self.held = 0

    def allow(self):
        now = time.monotonic()
        if self.last is None or now - self.last >= 1.0:
            held, self.held, self.last = self.held, 0, now
            return held
        self.held += 1
        return None


class Worker:
    """A worker serving ``fn`` (a callable with ``job_types``, or a dict ``{job_type: callable}``).

    Every setting left as None comes from its ``GANGER_*`` variable (see the package README),
    then from the Rust worker's default. Raises :class:`ConfigError` naming a bad setting."""

    def __init__(
        self,
        fn,
        connect=None,
        job_types=None,
        threads=None,
        prefetch=None,
        name=None,
        secret=None,
        secret_file=None,
        raw=False,
        grace_secs=None,
        reconnect_max_secs=None,
        environ=None,
    ):
        self.config = load_config(
            connect=connect,
            threads=threads,
            prefetch=prefetch,
            name=name,
            job_types=job_types,
            secret=secret,
            secret_file=secret_file,
            grace_secs=grace_secs,
            reconnect_max_secs=reconnect_max_secs,
            environ=environ,
        )
        try:
            self.tasks = Tasks(fn, self.config.job_types, raw)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.config.secret is not None:
            try:
                require_crypto()
            except SecretError as e:
                raise ConfigError(str(e)) from None
        self._status = Status()
        self._stop_requests = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._finished = queue.SimpleQueue()
        self._jobs = queue.SimpleQueue()

    # ----- the public surface -----

    def status(self):
        """A copy of the worker's :class:`Status` (safe from any thread)."""
        return replace(self._status)

    def stop(self):
        """Asks the worker to leave (safe from any thread and from a signal handler): the first
        call hands back unstarted units and finishes running ones; a second leaves at once."""
        self._stop_requests += 1
        self._wake()

    def run(self, handle_signals=True):
        """Serves until stopped; returns the final :class:`Status`. Raises :class:`Rejected`.

        With ``handle_signals`` and on the main thread, SIGTERM and SIGINT call :meth:`stop`
        (the previous handlers are restored on return)."""
        previous = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, lambda *_: self.stop())
        try:
            return _Session(self).run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # ----- for the session -----

    def _wake(self):
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the loop is already due to wake


def run(fn, connect=None, job_types=None, threads=None, prefetch=None, name=None, secret=None,
        secret_file=None, raw=False, **settings):
    """Connects to a delegator and serves ``fn`` until SIGTERM or SIGINT; returns the final
    :class:`Status`. See :class:`Worker` for the arguments; raises :class:`Rejected` or
    :class:`ConfigError`."""
    worker = Worker(fn, connect=connect, job_types=job_types, threads=threads, prefetch=prefetch,
                    name=name, secret=secret, secret_file=secret_file, raw=raw, **settings)
    return worker.run()


class _Session:
    """The I/O loop's state; lives for one :meth:`Worker.run`."""

    def __init__(self, worker):
        self.worker = worker
        self.config = worker.config
        self.tasks = worker.tasks
        self.status = worker._status
        self.security = Security(self.config.secret) if self.config.secret is not None else None
        self.welcome = None
        self.hello_sent = None
        self.pending = []  # _Batch objects, oldest first
        self.chunks_in_flight = 0  # of every session: they hold pool threads
        self.current_chunks = set()  # those of the current session
        # Seconds per unit by job type, measured by the pool; a job type not yet measured goes
        # one unit a chunk.
        self.unit_seconds = {}
        self.limit = 64 << 20
        self.outbox = []
        now = time.monotonic()
        self.last_sent = now
        self.last_received = now
        self.stopping_since = None
        self.warn_limit = _RateLimited()

    def run(self):
        config = self.config
        context = zmq.Context()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, max(100, int(config.reconnect_max_secs * 1000)))
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.LINGER, 0)
        self.sock = sock
        linger = 0
        threads = [
            threading.Thread(target=self._pool_thread, name=f"ganger-eval-{i}", daemon=True)
            for i in range(config.threads)
        ]
        for thread in threads:
            thread.start()
        try:
            try:
                sock.connect(config.connect)
            except zmq.ZMQError as e:
                raise ConfigError(f"GANGER_CONNECT / `connect`: cannot connect to {config.connect}: {e}") from None
            log.info("worker starting: connect=%s job_types=%s threads=%d", config.connect,
                     self.tasks.job_types, config.threads)
            self.status.state = "connecting"
            self._turns()
            if self.worker._stop_requests < 2:
                linger = int(min(config.grace_secs, MAX_LINGER) * 1000)
            log.info("worker stopped: units_done=%d", self.status.units_done)
            return replace(self.status, state="stopped")
        finally:
            self.status.state = "stopped"
            for _ in threads:
                self.worker._jobs.put(None)
            sock.close(linger=linger)
            context.term()

    # ----- the loop -----

    def _turns(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.worker._wake_r, zmq.POLLIN)
        polling_out = False
        while True:
            requests = self.worker._stop_requests
            if requests and self.stopping_since is None:
                self._begin_stop()
            if self.stopping_since is not None:
                drained = not self.current_chunks and not self.outbox
                overdue = time.monotonic() - self.stopping_since > self.config.grace_secs
                if drained or requests > 1 or overdue:
                    if not drained:
                        log.warning("leaving with %d chunk(s) of units unfinished", len(self.current_chunks))
                    return
            want_out = bool(self.outbox)
            if want_out != polling_out:
                poller.modify(self.sock, zmq.POLLIN | (zmq.POLLOUT if want_out else 0))
                polling_out = want_out
            events = dict(poller.poll(self._poll_timeout_ms()))
            if self.worker._wake_r in events:
                try:
                    while os.read(self.worker._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            if events.get(self.sock, 0) & zmq.POLLIN:
                self._read_frames()
            self._collect_finished()
            self._timers()
            self._dispatch()
            self._flush()

    def _poll_timeout_ms(self):
        if self.welcome is None:
            # Until the connection is up, hellos are retried often so registration is quick.
            return 10 if self.hello_sent is None else 100
        heartbeat = self.welcome["heartbeat_ms"] / 1000.0
        left = heartbeat - (time.monotonic() - self.last_sent)
        return int(min(max(left, 0.001), 0.1) * 1000) or 1

    def _read_frames(self):
        sock = self.sock
        for _ in range(MAX_FRAMES_PER_TURN):
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError as e:
                log.warning("receive failed: %s", e)
                return
            now = time.monotonic()
            self.last_received = now
            self.status.last_heard = now
            if sock.getsockopt(zmq.RCVMORE):
                parts = 1
                while sock.getsockopt(zmq.RCVMORE):
                    sock.recv()
                    parts += 1
                self._malformed(f"expected 1 frame, got {parts}")
                continue
            try:
                message = self._open(frame)
            except OpenError as e:
                if e.kind in ("replayed", "bad_seal"):
                    setattr(self.status, e.kind, getattr(self.status, e.kind) + 1)
                self._malformed(str(e))
                continue
            except MalformedFrame as e:
                self._malformed(str(e))
                if e.work and self.welcome is not None:
                    # Units that cannot be named cannot be answered: registering again makes
                    # the delegator requeue everything this worker held.
                    self._restart_session()
                continue
            self._handle(message)

    def _open(self, frame):
        """Decodes a frame, opening it if sealed, refusing what this worker must not accept: with
        a secret, plaintext other than ``challenge``, ``reset`` and ``reject``; without, any
        sealed frame."""
        security = self.security
        if is_sealed(frame):
            if security is None:
                raise MalformedFrame("a sealed frame, but this worker has no secret")
            if security.opener is None:
                raise MalformedFrame("a sealed frame before the handshake")
            frame = security.opener.open(frame)
            return protocol.decode(frame)
        message = protocol.decode(frame)
        if security is not None and message["type"] not in ("challenge", "reset", "reject"):
            raise MalformedFrame(
                f"a plaintext `{message['type']}` refused: this worker has a secret and accepts "
                "only an authenticated delegator"
            )
        return message

    def _handle(self, message):
        kind = message["type"]
        if kind == "work":
            if self.stopping_since is not None:
                # Sent before the delegator read our goodbye: hand it straight back.
                for frame in protocol.goodbye_frames([unit[0] for unit in message["units"]], self.limit):
                    self._queue(frame)
            elif self.welcome is not None and message["units"]:
                self.pending.append(_Batch(message["batch"], message["units"]))
            # Work before a welcome belongs to an earlier registration, already requeued.
        elif kind == "heartbeat":
            pass
        elif kind == "welcome":
            self._welcomed(message)
        elif kind == "challenge":
            proof = None
            if self.security is not None and self.welcome is None:
                proof = self.security.answer(message["nonce"], message["hello_digest"])
            if proof is None:
                log.debug("ignoring a challenge to an earlier hello")
            else:
                # Plaintext: the delegator opens sealed frames only once the proof is in.
                self._send_now(protocol.auth(proof))
                # The welcome is on its way: do not say hello again too soon.
                self.hello_sent = time.monotonic()
        elif kind == "reset":
            if self.welcome is None and self.hello_sent is not None:
                # ZeroMQ keeps order, so a reset arriving after our hello answers something we
                # sent before it: the hello has already started a new session.
                log.debug("ignoring a reset that predates our hello: %s", message["reason"])
            else:
                log.info("delegator asked to register again: %s", message["reason"])
                self.status.last_error = f"reset by the delegator: {message['reason']}"
                self._restart_session()
        elif kind == "reject":
            raise Rejected(message["reason"], message["protocol"])

    def _welcomed(self, welcome):
        overhead = SEAL_OVERHEAD if self.security is not None else 0
        self.limit = max(1024, welcome["max_frame"] - overhead)
        self.welcome = welcome
        self.status.worker_id = welcome["worker_id"]
        self.status.sessions += 1
        if self.stopping_since is None:
            self.status.state = "connected"
        log.info("registered with the delegator: worker_id=%d authenticated=%s",
                 welcome["worker_id"], self.security is not None)

    def _malformed(self, reason):
        self.status.dropped_frames += 1
        self.status.last_error = f"dropped a frame from the delegator: {reason}"
        held = self.warn_limit.allow()
        if held is not None:
            log.warning("dropped a frame from the delegator: %s (%d similar warnings held back)", reason, held)

    # ----- evaluation -----

    def _dispatch(self):
        threads = self.config.threads
        pending = self.pending
        while self.chunks_in_flight < threads and pending:
            head = pending[0]
            left = len(head.units) - head.offset
            per_unit = self.unit_seconds.get(head.units[head.offset][1], CHUNK_SECONDS)
            size = min(int(CHUNK_SECONDS / max(per_unit, 1e-9)), MAX_CHUNK_UNITS)
            # A small batch of slow units still spreads over every thread.
            size = max(1, min(size, -(-left // threads)))
            units = head.units[head.offset : head.offset + size]
            head.offset += len(units)
            if head.offset >= len(head.units):
                pending.pop(0)
            chunk = _Chunk(head.batch, units)
            self.chunks_in_flight += 1
            self.current_chunks.add(chunk)
            self.worker._jobs.put(chunk)

    def _pool_thread(self):
        jobs = self.worker._jobs
        finished = self.worker._finished
        tasks = self.tasks
        while True:
            job = jobs.get()
            if job is None:
                return
            chunk = job
            first_type = chunk.units[0][1] if chunk.units else None
            start = time.perf_counter()
            try:
                outcomes, errors, last_error = evaluate(tasks, chunk.units)
            except BaseException as e:  # not a task's failure (those are caught per unit)
                last_error = f"{type(e).__name__}: {e}"
                outcomes = [[u[0], False, last_error] for u in chunk.units]
                errors = len(outcomes)
            end = time.perf_counter()
            if outcomes:
                if len(self.unit_seconds) > 4096:
                    self.unit_seconds = {}  # job types by the thousand: forget, measure again
                self.unit_seconds[first_type] = (end - start) / len(outcomes)
            finished.put(_Finished(chunk, outcomes, start, end, errors, last_error))
            self.worker._wake()

    def _collect_finished(self):
        groups = {}
        finished = self.worker._finished
        while True:
            try:
                item = finished.get_nowait()
            except queue.Empty:
                break
            self.chunks_in_flight -= 1
            if item.chunk not in self.current_chunks:
                continue  # its session is gone, and the delegator has requeued its units
            self.current_chunks.discard(item.chunk)
            self.status.units_done += len(item.outcomes)
            if item.errors:
                self.status.unit_errors += item.errors
                self.status.last_error = item.last_error
            if not item.outcomes:
                continue
            # Chunks of one batch that finished by now travel together; their time is the sum
            # of their threads' times (what the units took where they ran), which is what the
            # delegator's batch sizing reads.
            batch = item.chunk.batch
            group = groups.get(batch)
            if group is None:
                groups[batch] = [item.outcomes, item.end - item.start]
            else:
                group[0] = group[0] + item.outcomes
                group[1] += item.end - item.start
        for batch, (outcomes, seconds) in groups.items():
            elapsed_us = max(1, int(seconds * 1e6))
            for frame in protocol.results_frames(batch, elapsed_us, outcomes, self.limit):
                self.outbox.append(self._seal(frame))

    # ----- timers, sessions, stopping -----

    def _timers(self):
        now = time.monotonic()
        if self.welcome is None:
            due = self.hello_sent is None or now - self.hello_sent >= HELLO_RETRY
            if due and self.stopping_since is None:
                self._say_hello(now)
            return
        silent = now - self.last_received
        if silent > self.welcome["timeout_ms"] / 1000.0 and self.stopping_since is not None:
            # Nobody is left to take the goodbye or the last results: leave now.
            log.info("the delegator fell silent while this worker was stopping; leaving")
            self.outbox.clear()
            self.current_chunks.clear()
        elif silent > self.welcome["timeout_ms"] / 1000.0:
            log.warning("the delegator fell silent for %d ms; registering again", silent * 1000)
            self.status.last_error = f"the delegator was silent for {int(silent * 1000)} ms"
            self._restart_session()
        elif now - self.last_sent >= self.welcome["heartbeat_ms"] / 1000.0 and not self.outbox:
            self._queue(protocol.HEARTBEAT)

    def _say_hello(self, now):
        config = self.config
        nonce = self.security.nonce() if self.security is not None else None
        frame = protocol.hello(config.name, config.host, self.tasks.job_types, config.threads,
                               config.prefetch, nonce)
        if self.security is not None:
            self.security.said_hello(frame)
        # Not queued: with nobody connected the hello is simply tried again on a later turn.
        try:
            self.sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            return
        except zmq.ZMQError as e:
            self.status.last_error = f"could not send hello: {e}"
            log.warning("could not send hello: %s", e)
            return
        self.last_sent = now
        self.hello_sent = now

    def _restart_session(self):
        """Drops everything tied to the current registration and says hello again."""
        if self.security is not None:
            self.security.end_session()
        self.pending.clear()
        self.outbox.clear()
        # Chunks still running belong to the old session: the pool skips their units not yet
        # started, and their results are discarded.
        for chunk in self.current_chunks:
            chunk.take_unstarted()
        self.current_chunks.clear()
        self.welcome = None
        self.hello_sent = None
        if self.stopping_since is None:
            self.status.state = "connecting"
        self.last_received = time.monotonic()
        if self.stopping_since is None:
            self._say_hello(time.monotonic())

    def _begin_stop(self):
        """Starts leaving: hands back every unit not yet started, keeps running the rest."""
        self.stopping_since = time.monotonic()
        self.status.state = "stopping"
        returned = []
        for batch in self.pending:
            returned.extend(unit[0] for unit in batch.units[batch.offset :])
        self.pending.clear()
        # Units handed to the pool but not started yet go back too.
        for chunk in self.current_chunks:
            returned.extend(chunk.take_unstarted())
        log.info("stopping: handing back %d unit(s) not started, %d chunk(s) running",
                 len(returned), len(self.current_chunks))
        if self.welcome is not None:
            for frame in protocol.goodbye_frames(returned, self.limit):
                self._queue(frame)
        self._flush()

    # ----- sending -----

    def _seal(self, frame):
        security = self.security
        if security is not None and security.sealer is not None:
            return security.sealer.seal(frame)
        return frame

    def _queue(self, frame):
        """Queues a message, sealed when the session is authenticated. Frames enter the outbox
        in the order they leave, so their counters increase on the wire."""
        self.outbox.append(self._seal(frame))
        self._flush()

    def _send_now(self, frame):
        """Queues a handshake message, never sealed."""
        self.outbox.append(frame)
        self._flush()

    def _flush(self):
        outbox = self.outbox
        sent = 0
        sock = self.sock
        try:
            for frame in outbox:
                sock.send(frame, zmq.NOBLOCK, copy=len(frame) < 65536)
                sent += 1
        except zmq.Again:
            pass
        except zmq.ZMQError as e:
            log.debug("send failed: %s", e)
        if sent:
            del outbox[:sent]
            self.last_sent = time.monotonic()
