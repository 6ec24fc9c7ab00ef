#!/usr/bin/env python3
"""emcee on one of the sampler-quality bench's targets, for `cargo bench --bench sampler_quality`.

    python3 benches/emcee_runner.py SPEC.json CHAIN.f64

SPEC.json names the target, its box, the walkers, the steps and the seed (the bench writes it).
The log probability is vectorised with numpy over the walkers (emcee's `vectorize=True`, its
fastest form) and is minus infinity outside the box, the same target ganger samples. Walkers
start uniformly in the box, as ganger's chains do. The draws after the first half of the steps
go to CHAIN.f64 as little-endian float64 in (step, walker, dimension) order; one JSON line on
stdout gives the wall time of the whole run, the likelihood evaluations (points inside the box)
and the shape.
"""

import json
import sys
import time

import emcee
import numpy as np


def energy_function(target):
    """Vectorised energy (negative log-likelihood) of the target: (n, d) -> (n,)."""
    kind = target["kind"]
    if kind == "gaussian":
        mean = np.asarray(target["mean"])
        precision = np.asarray(target["precision"])

        def energy(x):
            y = x - mean
            return 0.5 * np.einsum("ni,ij,nj->n", y, precision, y)

        return energy
    if kind == "banana":
        b, sd0 = target["b"], target["sd0"]

        def energy(x):
            twisted = x[:, 1] - b * (x[:, 0] ** 2 - sd0**2)
            rest = 0.5 * np.sum(x[:, 2:] ** 2, axis=1)
            return 0.5 * (x[:, 0] / sd0) ** 2 + 0.5 * twisted**2 + rest

        return energy
    if kind == "mixture":
        centres = np.asarray(target["centres"])
        log_weights = np.log(np.asarray(target["weights"]))
        sd = target["sd"]

        def energy(x):
            rest = 0.5 * np.sum((x[:, 1:] / sd) ** 2, axis=1)
            modes = log_weights[None, :] - 0.5 * ((x[:, :1] - centres[None, :]) / sd) ** 2
            return rest - np.logaddexp.reduce(modes, axis=1)

        return energy
    raise SystemExit(f"unknown target kind {kind!r}")


def main():
    spec_path, chain_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    low, high = np.asarray(spec["min"]), np.asarray(spec["max"])
    dims, walkers, steps = len(low), spec["walkers"], spec["steps"]
    energy = energy_function(spec["target"])
    evaluations = 0

    def log_prob(x):
        nonlocal evaluations
        inside = np.all((x >= low) & (x <= high), axis=1)
        result = np.full(len(x), -np.inf)
        if inside.any():
            evaluations += int(inside.sum())
            result[inside] = -energy(x[inside])
        return result

    rng = np.random.default_rng(spec["seed"])
    start = rng.uniform(low, high, size=(walkers, dims))
    started = time.perf_counter()
    # emcee draws from a copy of numpy's global state, taken here.
    np.random.seed(spec["seed"])
    sampler = emcee.EnsembleSampler(walkers, dims, log_prob, vectorize=True)
    sampler.run_mcmc(start, steps, progress=False)
    seconds = time.perf_counter() - started
    burn_in = steps // 2
    chain = sampler.get_chain(discard=burn_in)
    chain.astype("<f8").tofile(chain_path)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "evaluations": evaluations,
                "steps": int(chain.shape[0]),
                "walkers": walkers,
                "dims": dims,
                "acceptance": float(np.mean(sampler.acceptance_fraction)),
            }
        )
    )


if __name__ == "__main__":
    main()
