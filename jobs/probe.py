"""Separation probe: how well a model's state embeddings separate proof-path states from the others.

    python -m jobs.probe --config configs/local.yaml --trajectories 'runs/local/prove/trajectories/*.parquet' \\
        [--adapter runs/local/iter_1/sft/model] [--split val|train|all] [--max-states 512]

Reads the trajectory files, takes positive states (on a proof path) and negative states (off every
proof path) of the held-out theorems (--split val: theorems held out by ebm.valid_fraction, as the EBM's
validation; --split all: every theorem, for trajectories of theorems held out of training), at most
--max-states of each, encodes them with the configured encoder (value section: encoder_path or
model.path, dtype, pooling, max_length; --adapter replaces value.encoder_adapter) and prints JSON:
centroid_l2 (and centroid_l2_rel, over the mean norm), probe_accuracy (balanced accuracy of a
logistic-regression probe fit on half the states and scored on the other half; chance 0.5),
norm_gap, mean_norm_pos, mean_norm_neg, n_pos, n_neg, collapsed (probe accuracy <= 0.6), fingerprint.
Run it before and after a fine-tune: a falling centroid distance and probe accuracy mean collapse.
Exit status: 0 done, 2 bad config or input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from raylib.config import ConfigError, job_parser, load_config
from raylib.logs import setup_logging

log = logging.getLogger("jobs.probe")


def parse_args(argv=None) -> argparse.Namespace:
    p = job_parser("jobs.probe", __doc__, "value.pooling=last")
    p.add_argument("--trajectories", required=True, help="trajectory parquet files: a glob, a file or a folder")
    p.add_argument("--adapter", default=None, help="LoRA adapter folder to probe (default: value.encoder_adapter)")
    p.add_argument("--split", choices=("val", "train", "all"), default="val",
                   help="which theorems' states to probe (default: val, held out by ebm.valid_fraction)")
    p.add_argument("--max-states", type=int, default=512, help="states of each side at most (default 512)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    from raylib.data.trajectory import TrajectoryError, trajectory_files
    from raylib.models.loading import ModelLoadError
    from raylib.train.probe import ProbeError, probe_model

    try:
        cfg = load_config(args.config, args.overrides)
        files = trajectory_files(args.trajectories)
        files = files[0] if len(files) == 1 else files
        result = probe_model(cfg, files, adapter=args.adapter, split=args.split, max_states=args.max_states)
    except (ConfigError, FileNotFoundError, TrajectoryError, ProbeError, ModelLoadError) as e:
        log.error("%s", e)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
