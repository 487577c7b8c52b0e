"""Train the EBM value head on state embeddings with Ray Train.

    python -m jobs.train_ebm --config configs/local.yaml --trajectories 'runs/local/prove/trajectories/*.parquet' \\
        --embeddings runs/local/embeddings --out runs/local/ebm [--fingerprint FP] [--set ebm.max_steps=500]

--trajectories: trajectory parquet files (a glob, a file or a folder) from the prove job.
--embeddings: the folder written by `python -m jobs.encode` for these trajectories (meta.json and
part-*.parquet); every state the sampler may draw must be in it. --fingerprint: refuse embeddings of
any other encoder fingerprint (default: the folder's own).

Positives are proof-path states; each gets ebm.negatives negatives (hard: siblings, medium: other states
of the same theorem, easy: other theorems) in the configured ratios and fallback order. Theorems are
split into train and val by a hash of their name (ebm.valid_fraction). Metrics at each evaluation
(train and val): loss, gap (mean negative minus positive energy), rank (share of groups where the
positive has the lowest energy; chance 1 / (K + 1)).

Output: <out>/ebm (the head, loadable by raylib.models.ebm.EBM.load, carrying the embeddings'
fingerprint; set value.ebm_path to it), <out>/sampler.json, <out>/history.jsonl, <out>/result.json,
checkpoints in <out>/train. Run the same command again after an interruption: it resumes from the
latest checkpoint; after success it does nothing. Settings: the `ebm` section (raylib/train/config.py).
Prints a JSON summary, with the head's sibling accuracy on the val theorems' proof paths (the proof-path
child has the lowest energy among its scored siblings) beside its chance baseline (mean 1 / siblings).
Exit status: 0 done, 2 bad config or input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from raylib.config import ConfigError, job_parser, load_config
from raylib.logs import setup_logging

log = logging.getLogger("jobs.train_ebm")


def parse_args(argv=None) -> argparse.Namespace:
    p = job_parser("jobs.train_ebm", __doc__, "ebm.loss=margin_ranking")
    p.add_argument("--trajectories", required=True, help="trajectory parquet files: a glob, a file or a folder")
    p.add_argument("--embeddings", required=True, help="embeddings folder written by jobs.encode")
    p.add_argument("--out", required=True, help="output folder: ebm/, train/ checkpoints, history.jsonl")
    p.add_argument("--fingerprint", default=None, help="encoder fingerprint the embeddings must have")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    from raylib.data.embeddings import EmbeddingsError
    from raylib.data.sampler import SamplerError
    from raylib.data.trajectory import TrajectoryError, trajectory_files
    from raylib.train.ebm import prepare_ebm_data, train_ebm

    try:
        cfg = load_config(args.config, args.overrides)
        files = trajectory_files(args.trajectories)
        files = files[0] if len(files) == 1 else files
        data = prepare_ebm_data(cfg.ebm, files, args.embeddings, args.fingerprint)  # bad input: before Ray starts
    except (ConfigError, FileNotFoundError, TrajectoryError, EmbeddingsError, SamplerError, ValueError) as e:
        log.error("%s", e)
        return 2
    from raylib.rayutil import init_ray

    init_ray(cfg)
    res = train_ebm(cfg, files, args.embeddings, args.out, fingerprint=args.fingerprint, config_hash=cfg.hash(),
                    data=data)
    last = next((h for h in reversed(res.history) if "train_rank" in h), {})
    from raylib.train.ebm_eval import evaluate_ebm

    held_out = evaluate_ebm(res.ebm_dir, files, args.embeddings, split="val")
    held_out["sibling_accuracy"].pop("per_theorem", None)
    print(json.dumps({"ebm": str(res.ebm_dir), "steps": res.steps, "resumed_from": res.resumed_from,
                      "cached": res.cached, "fingerprint": res.fingerprint,
                      "metrics": {k: v for k, v in last.items() if k.startswith(("train_", "val_"))},
                      "chance_rank": 1.0 / (cfg.ebm.negatives + 1), "val_theorems": held_out,
                      "sampler": {s: res.report.get(s) for s in ("train", "val")}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
