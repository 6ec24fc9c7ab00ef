"""Tasks: the user's callables by job type, how a unit's payload reaches them, and the MCMC
likelihood helper of PROTOCOL.md §5."""

from collections import deque

import msgpack


class Tasks:
    """Callables by job type; a key ending in ``*`` serves every job type with that prefix."""

    def __init__(self, fn, job_types=None, raw=False):
        if callable(fn):
            if not job_types:
                raise ValueError(
                    "job_types is required when fn is one callable: name the job types it serves "
                    "(argument `job_types` or the variable GANGER_JOB_TYPES)"
                )
            table = {job_type: fn for job_type in job_types}
        elif isinstance(fn, dict):
            if not fn or not all(isinstance(k, str) and k and callable(v) for k, v in fn.items()):
                raise ValueError("fn must map non-empty job type strings to callables")
            table = dict(fn)
            if job_types:
                missing = [t for t in job_types if self._find(table, t) is None]
                if missing:
                    raise ValueError(f"job_types names job types no callable serves: {', '.join(missing)}")
        else:
            raise ValueError("fn must be a callable or a dict {job_type: callable}")
        self.raw = raw
        self.job_types = list(job_types) if job_types else list(table)
        self._table = table
        self._cache = {}

    @staticmethod
    def _find(table, job_type):
        found = table.get(job_type)
        if found is not None:
            return found
        # The longest matching wildcard wins, so `mcmc/a/*` beats `mcmc/*`.
        best = None
        for key, value in table.items():
            if key.endswith("*") and job_type.startswith(key[:-1]):
                if best is None or len(key) > len(best[0]):
                    best = (key, value)
        return best[1] if best else None

    def lookup(self, job_type):
        """The callable for ``job_type``, wrapped to take and return bytes; None if none serves it."""
        try:
            return self._cache[job_type]
        except KeyError:
            pass
        fn = self._find(self._table, job_type)
        if fn is not None and not self.raw and not getattr(fn, "_ganger_raw", False):
            fn = _packed(fn)
        if len(self._cache) < 4096:
            self._cache[job_type] = fn
        return fn


def _packed(fn):
    unpackb = msgpack.unpackb
    packb = msgpack.packb

    def call(payload):
        return packb(fn(unpackb(payload, raw=False)), use_bin_type=True)

    return call


def raw_task(fn):
    """Marks ``fn`` as taking and returning bytes even when the worker runs with ``raw=False``."""
    fn._ganger_raw = True
    return fn


def evaluate(tasks, units):
    """Runs ``units`` (``[id, job_type, payload]``) one after another on this thread and returns
    ``(outcomes, errors, last_error)``; an exception fails only its own unit.

    ``units`` may be a deque that another thread empties from its right end while this runs
    (the worker taking back unstarted units): each unit is taken with ``popleft`` just before it
    starts, so ``outcomes`` holds exactly the units that ran."""
    if not isinstance(units, deque):
        units = deque(units)
    take = units.popleft
    outcomes = []
    append = outcomes.append
    errors = 0
    last_error = None
    lookup = tasks.lookup
    # A chunk's units nearly always share one job type: look it up once, not per unit.
    current_type = None
    fn = None
    while True:
        try:
            unit_id, job_type, payload = take()
        except IndexError:
            break
        if job_type != current_type:
            current_type = job_type
            fn = lookup(job_type) or _no_task(job_type)
        try:
            output = fn(payload)
            if type(output) is not bytes:
                if not isinstance(output, (bytearray, memoryview)):
                    raise TypeError(f"a raw task returned {type(output).__name__}, not bytes")
                output = bytes(output)
            append([unit_id, True, output])
        except BaseException as e:  # a task's failure (even sys.exit) is that unit's outcome
            errors += 1
            last_error = f"{type(e).__name__}: {e}"
            append([unit_id, False, last_error])
    return outcomes, errors, last_error


def _no_task(job_type):
    def missing(_payload):
        raise LookupError(f"this worker has no task for job type `{job_type}`")

    return missing


def likelihood(energy):
    """Wraps ``energy(term, x) -> float`` (``x`` a list of floats; the term's negative
    log-likelihood) into a task for the units of PROTOCOL.md §5.

    Serve it as ``{"mcmc/NAME/*": likelihood(energy)}``: each unit's payload
    ``[term, n_terms, [[x...], ...]]`` becomes one ``energy`` call per point, and the output is
    an array of 64-bit floats in the points' order. A non-finite energy is passed on as it is
    (``inf`` rejects the proposal); a value that is not a number fails the unit."""
    unpackb = msgpack.unpackb
    packb = msgpack.packb

    def task(payload):
        unit = unpackb(payload, raw=False)
        if not isinstance(unit, list) or len(unit) != 3:
            raise ValueError("not an MCMC unit [term, n_terms, [[x...], ...]]")
        term, n_terms, points = unit
        if type(term) is not int or type(n_terms) is not int or not 0 <= term < n_terms:
            raise ValueError(f"not an MCMC unit: term {term!r} of {n_terms!r}")
        if not isinstance(points, list):
            raise ValueError("not an MCMC unit: the points are not an array")
        energies = [float(energy(term, x)) for x in points]
        # msgpack packs every Python float as a 64-bit float (0xcb), as §5 asks.
        return packb(energies, use_bin_type=True)

    task._ganger_raw = True
    task.energy = energy
    return task
