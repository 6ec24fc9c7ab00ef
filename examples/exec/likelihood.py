#!/usr/bin/env python3
"""An MCMC likelihood in plain Python behind `ganger-worker --exec`, with JSON lines.

    ganger-worker --connect tcp://DELEGATOR:5555 --exec "python3 examples/exec/likelihood.py" \
        --exec-framing json --job-types 'mcmc/py-gaussian/*'

and `"likelihood": "py-gaussian"` in the run's config. Each request is one line
`{"id": N, "job_type": "mcmc/py-gaussian/T", "input": [t, n_terms, [[x0, x1, ...], ...]]}`
(PROTOCOL.md §5 and §11); the answer is `{"id": N, "output": [energy, ...]}`, one energy (a
negative log-likelihood) per point. Nothing but replies goes to stdout; the program exits when
stdin closes. Only Python's standard library is needed: write yours the same way in any
language that can read and write a line of JSON.
"""

import json
import sys


def energy(term, n_terms, x):
    """Term `term` of a standard Gaussian's energy split evenly into `n_terms` terms."""
    return 0.5 * sum(xi * xi for xi in x) / n_terms


for line in sys.stdin:
    request = json.loads(line)
    try:
        term, n_terms, points = request["input"]
        reply = {"id": request["id"], "output": [float(energy(term, n_terms, x)) for x in points]}
    except Exception as error:  # noqa: BLE001 - a bad unit fails, the program carries on
        reply = {"id": request["id"], "error": f"{type(error).__name__}: {error}"}
    print(json.dumps(reply, allow_nan=False), flush=True)
