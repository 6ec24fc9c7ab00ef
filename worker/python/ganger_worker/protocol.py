"""Messages of PROTOCOL.md §3 as MessagePack maps: building the worker's, checking the
delegator's, and splitting ``results`` to stay under the frame limit."""

import msgpack

#: The protocol version this package speaks (PROTOCOL.md §9).
PROTOCOL_VERSION = 2

HEARTBEAT = msgpack.packb({"type": "heartbeat"}, use_bin_type=True)


class MalformedFrame(ValueError):
    """A frame from the delegator that is not a message this worker understands.

    ``work`` is true when it is a ``work`` message whose units cannot all be named."""

    def __init__(self, message, work=False):
        super().__init__(message)
        self.work = work


def pack(message):
    """One message's frame."""
    return msgpack.packb(message, use_bin_type=True)


def hello(name, host, job_types, slots, prefetch, nonce=None):
    """The ``hello`` frame (keys in the order of PROTOCOL.md §10.5's worked example)."""
    message = {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "name": name,
        "host": host,
        "job_types": list(job_types),
        "slots": slots,
        "prefetch": prefetch,
    }
    if nonce is not None:
        message["nonce"] = nonce
    return pack(message)


def goodbye(returned):
    """The ``goodbye`` frame handing back the units ``returned`` (ids)."""
    return pack({"type": "goodbye", "returned": list(returned)})


def goodbye_frames(returned, limit):
    """``goodbye`` frames handing back ``returned``, each at most ``limit`` bytes (an id takes
    at most 9 bytes); always at least one, so the delegator hears the worker is leaving."""
    returned = list(returned)
    per_frame = max(1, (limit - 32) // 9)
    return [goodbye(returned[i : i + per_frame]) for i in range(0, max(1, len(returned)), per_frame)]


def auth(proof):
    """The ``auth`` frame of the handshake."""
    return pack({"type": "auth", "proof": proof})


def _uint(message, key):
    value = message.get(key)
    if type(value) is not int or value < 0:
        raise MalformedFrame(f"`{message.get('type')}`: `{key}` is not an unsigned integer: {value!r}")
    return value


def _bytes(message, key):
    value = message.get(key)
    if isinstance(value, str):
        return value.encode("utf-8")
    if not isinstance(value, bytes):
        raise MalformedFrame(f"`{message.get('type')}`: `{key}` is not a byte string")
    return value


def _str(message, key, default=None):
    value = message.get(key, default)
    if not isinstance(value, str):
        raise MalformedFrame(f"`{message.get('type')}`: `{key}` is not a string")
    return value


def decode(frame):
    """Decodes and checks a frame from the delegator into a dict; raises :class:`MalformedFrame`.

    ``work`` units are checked here and normalised to ``[id, job_type, payload_bytes]``, so the
    pool never meets a unit it cannot name."""
    try:
        message = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception as e:  # msgpack raises several types for bad bytes; all mean one thing here
        raise MalformedFrame(f"not a MessagePack message: {e}") from None
    if not isinstance(message, dict):
        raise MalformedFrame("not a MessagePack map")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise MalformedFrame("no string `type`")
    if kind == "work":
        message["units"] = _work_units(message)
    elif kind == "welcome":
        for key in ("worker_id", "heartbeat_ms", "timeout_ms", "max_frame"):
            _uint(message, key)
    elif kind == "challenge":
        for key in ("nonce", "hello_digest"):
            message[key] = _bytes(message, key)
            if len(message[key]) != 32:
                raise MalformedFrame(f"`challenge`: `{key}` is not 32 bytes")
    elif kind == "reject":
        _str(message, "reason")
        message.setdefault("protocol", None)
    elif kind == "reset":
        message["reason"] = _str(message, "reason", "")
    elif kind != "heartbeat":
        raise MalformedFrame(f"unexpected `{kind}` message")
    return message


def _work_units(message):
    _uint(message, "batch")
    units = message.get("units")
    if not isinstance(units, list):
        raise MalformedFrame("`work`: `units` is not an array")
    # The common case checked in one pass without copying; the slow path below says what is
    # wrong, and turns `str` payloads (old MessagePack libraries) into bytes.
    if all([type(u) is list and len(u) == 3 and type(u[0]) is int and u[0] >= 0 and type(u[1]) is str
            and type(u[2]) is bytes for u in units]):
        return units
    # A batch with a unit that cannot be named: the worker cannot answer it, so it registers
    # again (the delegator requeues what it held). A frame without a batch or units is only
    # dropped, as ganger's worker does.
    checked = []
    append = checked.append
    for unit in units:
        if type(unit) is not list or len(unit) != 3:
            raise MalformedFrame("`work`: a unit is not an array of 3", work=True)
        unit_id, job_type, payload = unit
        if type(unit_id) is not int or unit_id < 0 or type(job_type) is not str:
            raise MalformedFrame("`work`: a unit's id or job type has the wrong type", work=True)
        if type(payload) is not bytes:
            if not isinstance(payload, str):
                raise MalformedFrame("`work`: a unit's payload is not a byte string", work=True)
            payload = payload.encode("utf-8")
        append([unit_id, job_type, payload])
    return checked


def results_frames(batch, elapsed_us, outcomes, limit):
    """``results`` frames answering ``outcomes`` (``[id, ok, output_or_message]`` lists) of one
    batch, each at most ``limit`` bytes; ``elapsed_us`` is shared out by units.

    An output too large for any frame is replaced by an error saying so, so that every unit
    is still answered."""
    frames = []
    _split(batch, elapsed_us, outcomes, limit, frames)
    return frames


def _results(batch, elapsed_us, outcomes):
    return pack({"type": "results", "batch": batch, "elapsed_us": int(elapsed_us), "results": outcomes})


def _split(batch, elapsed_us, outcomes, limit, frames):
    frame = _results(batch, elapsed_us, outcomes)
    if len(frame) <= limit:
        frames.append(frame)
        return
    if len(outcomes) == 1:
        unit_id, _, output = outcomes[0]
        message = (
            f"output of {len(output)} bytes exceeds the delegator's frame limit of {limit} bytes"
        )
        frames.append(_results(batch, elapsed_us, [[unit_id, False, message]]))
        return
    # Pieces of about the size that fits, so a big batch costs a couple of encodings, not log n.
    pieces = min(len(outcomes), max(2, -(-len(frame) // max(1, limit - 64)) + 1))
    step = -(-len(outcomes) // pieces)
    for start in range(0, len(outcomes), step):
        piece = outcomes[start : start + step]
        share = elapsed_us * len(piece) // len(outcomes)
        _split(batch, share, piece, limit, frames)
