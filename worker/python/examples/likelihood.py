"""A Python likelihood for a distributed MCMC run: Stateline's demo Gaussian, split into terms.

Run it from the repository root against a delegator that waits for workers on loopback::

    cargo build --release
    target/release/ganger-delegator mcmc --config worker/python/examples/likelihood.json --bind tcp://127.0.0.1:5555 &
    PYTHONPATH=worker/python python3 worker/python/examples/likelihood.py --config worker/python/examples/likelihood.json

The config names the likelihood (``"likelihood": "python-gaussian"``, which ganger does not
have built in) and its number of terms (``nJobTypes``); this worker reads both from the same
file and serves every term as the job types ``mcmc/python-gaussian/*`` (PROTOCOL.md §5). The
delegator writes the chains to ``outputPath``; start more copies of this worker, anywhere, to
go faster. Each term is ``1 / nJobTypes`` of an isotropic standard Gaussian's energy, computed
the way ganger's built-in ``gaussian`` computes it, so a run gives the same chain files, byte
for byte, as ``"likelihood": "gaussian"`` evaluated by ganger itself: replace ``energy`` below
with your own model's negative log-likelihood per term.
"""

import argparse
import json

import ganger_worker


def gaussian_term(n_terms):
    """The energy of one term: ``x`` is a list of floats, the result a float."""

    def energy(term, x):
        # 0.5 |x|^2 split evenly; the same operations in the same order as the Rust built-in.
        return 0.5 * sum(v * v for v in x) / n_terms

    return energy


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="the run's Stateline-style JSON config")
    args = parser.parse_args()
    try:
        with open(args.config) as f:
            config = json.load(f)
        name = config.get("likelihood", "gaussian")
        n_terms = int(config["nJobTypes"])
    except (OSError, ValueError, KeyError) as e:
        parser.error(f"{args.config}: {e!r} (it needs `nJobTypes` and `likelihood`)")
    # Settings not given here (GANGER_CONNECT, GANGER_THREADS, GANGER_SECRET...) come from the
    # environment, as for ganger's own worker.
    ganger_worker.main({f"mcmc/{name}/*": ganger_worker.likelihood(gaussian_term(n_terms))})


if __name__ == "__main__":
    main()
