"""Value-model throughput, JSON on stdout; each figure beside a plain reference measured in the same run.

    python bench/value_throughput.py                  # both parts
    python bench/value_throughput.py --only encode    # or --only ebm

* ``encode`` (``bench/_encode_bench.py``): states/s of the StateEncoder (token-budget batching sorted by
  length) against a plain HF forward loop with fixed batches, on the same ~256-token states, tiny model
  on CPU; peak memory of each path. Target: >= 1.2x the plain loop.
* ``ebm`` (``bench/_ebm_bench.py``): EBM training steps/s (batch 256, K = 7, 4096-dim embeddings) through
  Ray Train + Ray Data against a plain PyTorch loop over tensors in memory. Target: >= 0.9x on CPU.

Options after ``--encode-args`` / ``--ebm-args`` go to that part's own command line (see its --help).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def run_encode(argv: list[str]) -> dict:
    import _encode_bench

    a = _encode_bench.parse_args(argv)
    return _encode_bench.encode_bench(a.states, a.max_length, a.batch, a.repeats, a.threads, a.budgets)


def run_ebm(argv: list[str]) -> dict:
    import _ebm_bench

    p = argparse.ArgumentParser()
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--negatives", type=int, default=7)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--theorems", type=int, default=400)
    a = p.parse_args(argv)
    return _ebm_bench.ebm_bench(a.dim, a.batch, a.negatives, a.steps, a.threads, a.theorems)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("encode", "ebm"), default=None, help="run one part only")
    p.add_argument("--encode-args", default="", help="quoted options for the encode part, e.g. '--states 256'")
    p.add_argument("--ebm-args", default="", help="quoted options for the ebm part, e.g. '--steps 30'")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = {}
    if a.only in (None, "encode"):
        out["encode"] = run_encode(shlex.split(a.encode_args))
    if a.only in (None, "ebm"):
        out["ebm"] = run_ebm(shlex.split(a.ebm_args))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
