"""Fine-tune a causal LM on SFT examples with Ray Train: LoRA (default) or full parameters.

    python -m jobs.train_sft --config configs/local.yaml --examples runs/local/iter_1/sft_examples \\
        --base runs/models/tiny --out runs/local/iter_1/sft [--set sft.max_steps=200 --set sft.mode=full]

--examples is a folder holding train.parquet (and valid.parquet, used for the eval loss and the
generation probe) as written by raylib.data.sft.build_sft_examples, or one parquet file of
{prompt, completion, theorem, source} rows. --base is a local Hugging Face model folder.
The result is <out>/model (adapter, merged or full model) with fingerprint.json; checkpoints live in
<out>/train. Run the same command again after an interruption: it resumes from the latest checkpoint;
after success it does nothing. Settings are the `sft` section of the config (see raylib/train/config.py).
Exit status: 0 done, 2 bad config or input, 3 a training guard stopped the run (reason logged).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from raylib.config import config_from_args, job_parser
from raylib.logs import setup_logging

log = logging.getLogger("jobs.train_sft")


def parse_args(argv=None) -> argparse.Namespace:
    p = job_parser("jobs.train_sft", __doc__, "sft.lr=5e-4")
    p.add_argument("--examples", required=True, help="examples folder (train.parquet, valid.parquet) or parquet file")
    p.add_argument("--base", required=True, help="base model folder (config.json, weights, tokenizer)")
    p.add_argument("--out", required=True, help="output folder: model/, train/ checkpoints, history.jsonl")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    from raylib.train.guards import GuardStop

    cfg = config_from_args(args, log)

    if cfg is None:

        return 2
    from raylib.models.loading import ModelLoadError, check_model_dir
    from raylib.rayutil import init_ray
    from raylib.train.options import SettingRefused
    from raylib.train.sft import run_sft

    try:
        check_model_dir(args.base)  # before Ray starts: a bad --base is a one-line error, not a worker traceback
    except ModelLoadError as e:
        log.error("--base: %s", e)
        return 2
    init_ray(cfg)
    try:
        res = run_sft(cfg.sft, args.examples, args.base, args.out, config_hash=cfg.hash())
    except (FileNotFoundError, ModelLoadError, SettingRefused) as e:
        log.error("%s", e)
        return 2
    except GuardStop as e:
        log.error("training stopped by a guard: %s", e)
        return 3
    log.info("SFT %s: %d steps (resumed from %d), model %s, fingerprint %s, final metrics %s",
             "cached" if res.cached else "done", res.steps, res.resumed_from, res.model_dir,
             res.fingerprint.get("id"), json.dumps({k: v for k, v in res.metrics.items()
                                                    if k in ("loss", "eval_loss", "probe_healthy")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
