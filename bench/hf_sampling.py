"""HF sampling of n tactics per state (raylib.models.hf.HFGenerator): each prompt read once against
generate's own expansion of it n times (the plain reference), measured in the same run; JSON on stdout.

    python bench/hf_sampling.py [--model runs/models/tiny] [--states 64] [--n 8] [--threads 1]

States: oracle replays of valid-split built-in theorems (the states a search meets). Model: the
bootstrapped tiny model (python -m jobs.bootstrap) when --model holds one, else a tiny random Llama
built here. The two modes alternate over --repeats rounds with the same seeds; the samples they draw
are compared too (they must be the same).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _states(k: int) -> list[str]:
    from raylib.data.sft import oracle_pairs
    from raylib.env.builtin.corpus import generate_theorems

    theorems = [t for t in generate_theorems(400, seed=0) if t.split == "valid"]
    states = [p.state for p in oracle_pairs(theorems)]
    return states[:: max(1, len(states) // k)][:k]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="runs/models/tiny")
    p.add_argument("--states", type=int, default=64)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--batch", type=int, default=4, help="states per call (a search expands 4 at once)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads (a generator actor with 1 CPU has 1)")
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args(argv)

    import torch

    from raylib.models.hf import HFGenerator

    torch.set_num_threads(a.threads)
    model = Path(a.model)
    if not (model / "config.json").is_file():
        from raylib.models.tiny import build_tiny_model, builtin_texts

        model = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny", texts=builtin_texts(n=60))
    states = _states(a.states)
    g = HFGenerator(model, device="cpu")
    times: dict[str, list[float]] = {"prompt_read_once": [], "plain": []}
    drawn: dict[str, list] = {}
    for _ in range(a.repeats):
        for mode in times:
            g.share_prompt = mode == "prompt_read_once"
            g.reseed(0)
            t0 = time.perf_counter()
            out = [row for i in range(0, len(states), a.batch)
                   for row in g.generate_samples(states[i:i + a.batch], a.n, a.temperature, a.max_tokens)]
            times[mode].append(time.perf_counter() - t0)
            drawn[mode] = [[s.token_ids for s in row] for row in out]
    best = {m: min(v) for m, v in times.items()}
    print(json.dumps({
        "model": str(model), "states": len(states), "n": a.n, "batch": a.batch, "threads": a.threads,
        "ms_per_state": {m: round(1000 * v / len(states), 2) for m, v in best.items()},
        "speedup": round(best["plain"] / best["prompt_read_once"], 3),
        "same_samples": drawn["prompt_read_once"] == drawn["plain"],
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
