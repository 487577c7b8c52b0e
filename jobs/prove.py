"""Prove theorems with best-first search on Ray: generator, encoder, Lean workers and search drivers.

    python -m jobs.prove [--config C] [--theorems FILE] [--limit N] [--iteration K] [--set KEY=VALUE ...]

Starts a local Ray (``ray.address: null``) or joins a cluster (``ray job submit`` works unchanged).
Writes under ``<run.root>/<run.name>/iter_<K>/prove/``: one trajectory parquet per searched theorem
(atomic), ``results.jsonl`` (theorem, outcome, proof, nodes, depth, time split, queue wait; one line per
ended attempt, the last one counts) and ``summary.json`` (proof rate, with and without probe-tactic steps,
outcomes, infrastructure errors, reused results, time split, Lean pass rate, environment versions).

Each search leases one Lean worker for its life. A theorem's outcome is proved, exhausted, budget,
timeout or start_failed; an infrastructure failure (actor died, engine error, worker lost) is retried
with backoff and, past ``workers.infra_retries``, recorded as infra_error and redone by the next run.
Rerunning the same command reuses results made by the same result-affecting config (search, model, env,
value) and the same model and encoder fingerprints; anything else is redone.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from raylib.config import Config, ConfigError, job_parser, load_config
from raylib.env.theorems import TheoremFileError, job_theorems
from raylib.logs import setup_logging
from raylib.models.loading import ModelLoadError, check_model_dir

log = logging.getLogger("jobs.prove")


def parse_args(argv=None) -> argparse.Namespace:
    p = job_parser("jobs.prove", __doc__, "search.max_nodes=128")
    p.add_argument("--theorems", help="JSONL theorem file (default: theorems.source of the config)")
    p.add_argument("--limit", type=int, help="prove only the first N theorems")
    p.add_argument("--iteration", type=int, default=0, help="expert-iteration index (output folder iter_K)")
    return p.parse_args(argv)


def prove_dir(cfg: Config, iteration: int) -> Path:
    return cfg.run_dir / f"iter_{iteration}" / "prove"


def run(cfg: Config, theorems: list, iteration: int = 0, fleet=None) -> dict:
    """Prove ``theorems`` into ``prove_dir(cfg, iteration)``; see ``actors.fleet.prove_theorems``."""
    from actors.fleet import prove_theorems

    return prove_theorems(cfg, theorems, prove_dir(cfg, iteration), fleet=fleet, iteration=iteration)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        cfg = load_config(args.config, args.overrides)
        theorems = job_theorems(cfg.theorems, args.theorems, args.limit)
        check_model_dir(cfg.model.path)  # before any actor starts: a clear error, not an actor crash
        summary = run(cfg, theorems, args.iteration)
    except ModelLoadError as e:
        print(f"prove: {e} (for the built-in tiny model: python -m jobs.bootstrap)", file=sys.stderr)
        return 2
    except (ConfigError, TheoremFileError) as e:
        print(f"prove: {e}", file=sys.stderr)
        return 2
    log.info("proved %d/%d (%.1f%%, model only %.1f%%); outcomes %s; %d reused; results in %s",
             summary["proved"], summary["theorems"], 100 * summary["proof_rate"],
             100 * summary["proof_rate_model_only"], summary["outcomes"], summary["reused"],
             prove_dir(cfg, args.iteration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
