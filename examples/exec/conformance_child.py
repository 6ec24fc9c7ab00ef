#!/usr/bin/env python3
"""The program behind `ganger-worker --exec` in the conformance suite (PROTOCOL.md §11).

    ganger-worker --exec "python3 examples/exec/conformance_child.py --framing json" \
        --exec-framing json --job-types noop,sleep,panic-if-odd

(and the same with `msgpack` in both places). It serves ganger's built-ins `noop`, `sleep` and
`panic-if-odd` with exactly their semantics, one request at a time, and exits on EOF of stdin.
The JSON framing uses only Python's standard library; the MessagePack framing needs `msgpack`.
Logs go to stderr: stdout carries only replies.
"""

import argparse
import json
import struct
import sys
import time


def evaluate(job_type, value):
    """The built-ins on a decoded input; returns (ok, output or error message)."""
    if job_type == "noop":
        return True, value
    if job_type == "sleep":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return False, f"sleep: the input must be a non-negative integer, not {value!r}"
        time.sleep(value / 1e6)
        return True, value
    if job_type == "panic-if-odd":
        if not isinstance(value, int) or isinstance(value, bool):
            return False, f"panic-if-odd: the input must be an integer, not {value!r}"
        if value % 2 != 0:
            return False, f"panic-if-odd: input {value} is odd"
        return True, value
    return False, f"this program has no task `{job_type}`"


def serve_json():
    for line in sys.stdin:
        request = json.loads(line)
        ok, result = evaluate(request["job_type"], request["input"])
        reply = {"id": request["id"], "output": result} if ok else {"id": request["id"], "error": result}
        sys.stdout.write(json.dumps(reply, separators=(",", ":"), allow_nan=False) + "\n")
        sys.stdout.flush()


def read_exact(stream, n):
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve_msgpack():
    import msgpack

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        prefix = read_exact(stdin, 4)
        if prefix is None:
            return
        (length,) = struct.unpack(">I", prefix)
        request = msgpack.unpackb(read_exact(stdin, length), raw=False)
        payload = request["payload"]
        if request["job_type"] == "noop":
            # The output is the payload's bytes, whatever they are.
            ok, output = True, payload
        else:
            try:
                value = msgpack.unpackb(payload, raw=False)
            except Exception as error:  # noqa: BLE001 - any decoding problem fails the unit
                ok, output = False, f"{request['job_type']}: the payload is not MessagePack: {error}"
            else:
                ok, output = evaluate(request["job_type"], value)
                if ok:
                    output = msgpack.packb(output, use_bin_type=True)
        reply = {"id": request["id"], "ok": ok, ("output" if ok else "error"): output}
        body = msgpack.packb(reply, use_bin_type=True)
        stdout.write(struct.pack(">I", len(body)) + body)
        stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framing", choices=["json", "msgpack"], required=True)
    args = parser.parse_args()
    serve_json() if args.framing == "json" else serve_msgpack()


if __name__ == "__main__":
    main()
