"""Encode the distinct proof states of trajectory files into an embeddings folder (Ray Data + encoder actors).

    python -m jobs.encode --config configs/local.yaml --trajectories 'runs/local/iter_1/prove/trajectories/*.parquet' \\
        --out runs/local/iter_1/embeddings [--set value.dtype=bfloat16 --set value.encode_workers=2]

--trajectories is a glob (quote it), a folder (its *.parquet) or one file of trajectory parquet written by
the prove job. Open states (outcome "state") are encoded once each, by the encoder the `value` section
describes (value.encoder_path or model.path, adapter, dtype, pooling, max_length); finished states are
never encoded. --out is an embeddings folder: meta.json + part-*.parquet of (state_hash, embedding,
fingerprint). Run again with more trajectories and only new states are encoded (reported as warm/encoded);
a folder made with another fingerprint (model, adapter, dtype, pooling, max length) is refused. A killed
run, run again, encodes only what no written part holds. Prints the summary as JSON.
Exit status: 0 done, 2 bad config or input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from raylib.config import config_from_args, job_parser
from raylib.logs import setup_logging

log = logging.getLogger("jobs.encode")


def parse_args(argv=None) -> argparse.Namespace:
    p = job_parser("jobs.encode", __doc__, "value.dtype=bfloat16")
    p.add_argument("--trajectories", required=True, help="glob, folder or file of trajectory parquet")
    p.add_argument("--out", required=True, help="embeddings folder (created; reused when its fingerprint matches)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    cfg = config_from_args(args, log)
    if cfg is None:
        return 2
    from raylib.data.embeddings import EmbeddingsError
    from raylib.data.encode import EncodeError, check_trajectory_files, encode_trajectories
    from raylib.data.trajectory import TrajectoryError, trajectory_files
    from raylib.models.encoder import config_fingerprint
    from raylib.models.loading import ModelLoadError
    from raylib.rayutil import init_ray

    try:
        files = trajectory_files(args.trajectories)
        if not files:
            raise EncodeError(f"--trajectories {args.trajectories!r}: no files match (pass a glob, a folder of "
                              "*.parquet or a file written by the prove job)")
        check_trajectory_files(files)  # before Ray starts: bad input is a one-line error
        config_fingerprint(cfg)
        init_ray(cfg)
        result = encode_trajectories(cfg, files, Path(args.out), progress=not args.no_progress)
    except (EncodeError, TrajectoryError, EmbeddingsError, ModelLoadError) as e:
        log.error("%s", e)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
