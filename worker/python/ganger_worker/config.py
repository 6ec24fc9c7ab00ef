"""The worker's settings: explicit arguments first, then the ``GANGER_*`` variables the Rust
worker reads, then the same defaults."""

import os
import socket
from dataclasses import dataclass, field
from typing import List, Optional

from .secure import SecretError, trim_secret

#: Where a worker connects when told nothing.
DEFAULT_CONNECT = "tcp://127.0.0.1:5555"
#: Units accepted beyond the threads, as the Rust worker advertises (PROTOCOL.md §3, Credit).
DEFAULT_PREFETCH = 65536
#: Seconds to finish running units after a stop request.
DEFAULT_GRACE_SECS = 30.0
#: Longest reconnect back-off, seconds (PROTOCOL.md §1).
DEFAULT_RECONNECT_MAX_SECS = 5.0


class ConfigError(ValueError):
    """A bad setting; the message names the argument or environment variable."""


@dataclass
class WorkerConfig:
    """Everything a worker needs besides its tasks. Build it with :func:`load_config`."""

    #: Delegator endpoint (``GANGER_CONNECT``; default ``tcp://127.0.0.1:5555``).
    connect: str = DEFAULT_CONNECT
    #: Evaluation threads, advertised as ``slots`` (``GANGER_THREADS``; default the CPU count).
    threads: int = 1
    #: Units accepted beyond the threads (``GANGER_PREFETCH``; default 65536).
    prefetch: int = DEFAULT_PREFETCH
    #: Name in the delegator's logs (``GANGER_NAME``; default ``HOST-PID``).
    name: str = ""
    #: This machine's host name, sent in ``hello``.
    host: str = ""
    #: Job types served, or None for every key of the task dict (``GANGER_JOB_TYPES``).
    job_types: Optional[List[str]] = None
    #: The trimmed cluster secret, or None (``GANGER_SECRET`` / ``GANGER_SECRET_FILE``).
    secret: Optional[bytes] = field(default=None, repr=False)
    #: Seconds to finish running units after SIGTERM (``GANGER_GRACE_SECS``; default 30).
    grace_secs: float = DEFAULT_GRACE_SECS
    #: Longest reconnect back-off, seconds (``GANGER_RECONNECT_MAX_SECS``; default 5).
    reconnect_max_secs: float = DEFAULT_RECONNECT_MAX_SECS


def _env(name, environ):
    value = environ.get(name)
    return value if value not in (None, "") else None


def _integer(value, what, minimum):
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not an integer") from None
    if number < minimum:
        raise ConfigError(f"{what}: {number} is below the minimum of {minimum}")
    return number


def _seconds(value, what):
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not a number of seconds") from None
    if not number >= 0 or number == float("inf"):
        raise ConfigError(f"{what}: {value!r} is not a finite, non-negative number of seconds")
    return number


def _job_types(value, what):
    if isinstance(value, str):
        value = value.split(",")
    try:
        types = [str(t).strip() for t in value]
    except TypeError:
        raise ConfigError(f"{what}: expected a list of job types, got {value!r}") from None
    types = [t for t in types if t]
    if not types:
        raise ConfigError(f"{what}: no job types given")
    return types


def _pick(explicit, variable, environ, default, parse):
    """An explicit argument wins; then the variable; then the default. Errors name the source."""
    if explicit is not None:
        return parse(explicit, f"argument `{variable.lower()[len('GANGER_'):]}`")
    value = _env(variable, environ)
    if value is not None:
        return parse(value, f"the variable {variable}")
    return default


def load_secret(secret=None, secret_file=None, environ=None):
    """The trimmed secret from the arguments, else from ``GANGER_SECRET`` or
    ``GANGER_SECRET_FILE``; None when none is given. Giving both ways is an error."""
    environ = os.environ if environ is None else environ
    if secret is not None and secret_file is not None:
        raise ConfigError("the secret is given twice, by `secret` and by `secret_file`: give it one way")
    if secret is None and secret_file is None:
        secret = _env("GANGER_SECRET", environ)
        secret_file = _env("GANGER_SECRET_FILE", environ)
        if secret is not None and secret_file is not None:
            raise ConfigError(
                f"the secret is given twice, by GANGER_SECRET_FILE {secret_file} and by GANGER_SECRET: "
                "give it one way"
            )
        what = "the variable GANGER_SECRET"
    else:
        what = "argument `secret`"
    if secret_file is not None:
        try:
            with open(secret_file, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ConfigError(f"cannot read the secret file {secret_file}: {e.strerror or e}") from None
        what = f"the secret file {secret_file}"
    elif secret is not None:
        raw = secret
    else:
        return None
    try:
        return trim_secret(raw)
    except SecretError as e:
        raise ConfigError(f"{what}: {e}") from None


def load_config(
    connect=None,
    threads=None,
    prefetch=None,
    name=None,
    job_types=None,
    secret=None,
    secret_file=None,
    grace_secs=None,
    reconnect_max_secs=None,
    environ=None,
):
    """Builds a :class:`WorkerConfig`; raises :class:`ConfigError` naming the bad setting."""
    environ = os.environ if environ is None else environ
    host = socket.gethostname()
    config = WorkerConfig(host=host)
    config.connect = _pick(connect, "GANGER_CONNECT", environ, DEFAULT_CONNECT, lambda v, _: str(v).strip())
    if "://" not in config.connect:
        raise ConfigError(f"GANGER_CONNECT / `connect`: {config.connect!r} is not a ZeroMQ endpoint like tcp://HOST:PORT")
    config.threads = _pick(
        threads, "GANGER_THREADS", environ, os.cpu_count() or 1, lambda v, w: _integer(v, w, 1)
    )
    config.prefetch = _pick(
        prefetch, "GANGER_PREFETCH", environ, DEFAULT_PREFETCH, lambda v, w: _integer(v, w, 0)
    )
    if config.threads >= 2**32 or config.prefetch >= 2**32:
        raise ConfigError("GANGER_THREADS and GANGER_PREFETCH must each be below 2^32")
    config.name = _pick(name, "GANGER_NAME", environ, f"{host}-{os.getpid()}", lambda v, _: str(v))
    config.job_types = _pick(job_types, "GANGER_JOB_TYPES", environ, None, _job_types)
    config.grace_secs = _pick(grace_secs, "GANGER_GRACE_SECS", environ, DEFAULT_GRACE_SECS, _seconds)
    config.reconnect_max_secs = _pick(
        reconnect_max_secs, "GANGER_RECONNECT_MAX_SECS", environ, DEFAULT_RECONNECT_MAX_SECS, _seconds
    )
    config.secret = load_secret(secret, secret_file, environ)
    return config
