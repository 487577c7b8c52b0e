"""Evaluate a policy (and its value model) on a theorem set under a stated budget.

    python -m jobs.evaluate [--config C] --theorems F [--attempts K] [--trained-on GLOB ...]
                            [--grid KEY=V1,V2 ...] [--against RUN_OR_EVAL] [--ebm DIR] [--out DIR]

Runs LLM-only search and, when a value model is set (``--ebm`` or ``value.ebm_path``), LLM+EBM search
side by side, each K times with seeds run.seed + 0..K-1. Reports the budget (attempts x search.max_nodes
expansions x search.timeout_per_theorem seconds), the proof rate mean ± sd over the attempts with and
without the probe tactics, pass@k, theorems whose statement did not start (apart), the proof-depth
distribution and the time split; theorems gained and lost against another evaluation (``--against``:
an eval.json, a results.jsonl or a run folder) by name. ``--grid`` sweeps search settings on the same
theorems (product of the values given, one attempt each) and tabulates proof rate, unique tactics and
children per expansion, Lean pass rate and generate time per setting.

The theorems must be disjoint from every theorem the models trained on: ``--trained-on`` names the
trajectory or SFT example parquet files (folders or globs) the policy and EBM were trained on; an
overlap stops the job and names the theorems (the bootstrapped tiny model trained on
``runs/bootstrap/*/examples``). Without ``--trained-on`` the check is skipped, with a warning.

Writes ``eval.json``, ``eval.md`` and ``budget.json`` under ``--out`` (default
``<run.root>/<run.name>/evaluate``), and one prove folder per variant and attempt below it; rerunning the
same command reuses finished attempts. Prints the markdown table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from raylib.config import ConfigError, job_parser, load_config
from raylib.logs import setup_logging

log = logging.getLogger("jobs.evaluate")


def parse_args(argv=None) -> argparse.Namespace:
    p = job_parser("jobs.evaluate", __doc__, "search.max_nodes=64")
    p.add_argument("--theorems", help="JSONL theorem file (default: theorems.source of the config, its split)")
    p.add_argument("--limit", type=int, help="evaluate only the first N theorems")
    p.add_argument("--attempts", type=int, default=1, help="seeded attempts per theorem (pass@k for k<=K)")
    p.add_argument("--ebm", help="trained EBM folder for the LLM+EBM column (default: value.ebm_path)")
    p.add_argument("--trained-on", action="append", default=[], metavar="GLOB",
                   help="trajectory / SFT example parquet (file, folder or glob) the models trained on (repeatable)")
    p.add_argument("--grid", nargs="+", default=[], metavar="KEY=V1,V2",
                   help="search settings to sweep, e.g. search.num_candidates=8,16 search.temperature=0.8,1.3")
    p.add_argument("--against", help="another evaluation to compare with by theorem name: eval.json, "
                                     "results.jsonl or a run folder")
    p.add_argument("--out", help="output folder (default <run.root>/<run.name>/evaluate)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    from raylib.env.theorems import TheoremFileError, job_theorems
    from raylib.eval.disjoint import OverlapError
    from raylib.models.loading import ModelLoadError, check_model_dir

    try:
        cfg = load_config(args.config, args.overrides)
        theorems = job_theorems(cfg.theorems, args.theorems, args.limit)
        check_model_dir(cfg.model.path)
        from actors.evaluate import evaluate, parse_grid

        parse_grid(args.grid)  # a bad --grid stops before Ray starts
        from raylib.eval.tables import eval_markdown

        out = Path(args.out) if args.out else cfg.run_dir / "evaluate"
        result = evaluate(cfg, theorems, out, attempts=args.attempts, ebm_path=args.ebm,
                          trained_on=args.trained_on or None, against=args.against, grid=args.grid)
    except OverlapError as e:
        print(f"evaluate: refused: {e}", file=sys.stderr)
        return 3
    except ModelLoadError as e:
        print(f"evaluate: {e} (for the built-in tiny model: python -m jobs.bootstrap)", file=sys.stderr)
        return 2
    except (ConfigError, TheoremFileError, FileNotFoundError, ValueError) as e:
        print(f"evaluate: {e}", file=sys.stderr)
        return 2
    print(eval_markdown(result))
    log.info("evaluation in %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
