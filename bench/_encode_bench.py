"""Encode throughput: the StateEncoder (token-budget batching, sorted by length) against a plain HF forward
loop with fixed batches, on the same states, in the same process run.

    python bench/_encode_bench.py [--states 512] [--max-length 256] [--batch 32] [--budgets 16384 4096]
                                  [--repeats 3] [--threads 1]

Model: the tiny Llama (``raylib.models.tiny``, random weights, built here) on CPU, float32. Data: proof
states in the built-in logic's style (hypothesis lines and a ``⊢`` target), two sets of ``--states``
each: ``mixed`` (lengths uniform between 16 and ``--max-length`` tokens) and ``full`` (every state
``--max-length`` tokens). Both paths run the decoder body only and mean-pool over the state's tokens,
so the difference is batching alone:

* plain: the states in their given order, ``--batch`` at a time, padded to the longest of the batch;
* encoder: ``StateEncoder.encode`` with each of ``--budgets`` padded tokens per batch (the first is
  ``value.max_batch_tokens``'s default, 16384, sized for a GPU; smaller batches suit a CPU's caches).

The paths alternate ``--repeats`` times; states/s are medians (every run listed). Peak memory: each path
runs once more in a fresh Python process (model loaded, states tokenized first), whose RSS is sampled every
5 ms during the path: the peak above its level when the path started (a process that already ran a
path keeps its memory, so in-process figures would understate every later path).
Used by ``bench/value_throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

log = logging.getLogger("bench.encode")


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled), in MB above its start."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def delta_mb(self) -> float:
        return round((self.peak - self.start) / 2**20, 1)


def make_states(tokenizer, n: int, lo: int, hi: int, seed: int = 0) -> list[str]:
    """``n`` states whose token counts are uniform in [lo, hi] (hypothesis lines, then a target)."""
    rng = random.Random(seed)
    target = "⊢ (p ∧ q → r) ∨ ¬s"
    out = []
    for _ in range(n):
        want = rng.randint(lo, hi)
        lines = []
        while True:
            i = len(lines)
            line = f"h{i} : p{rng.randint(0, 9)} ∧ q{i % 5} → r ∨ ¬s{rng.randint(0, 9)}"
            if len(tokenizer("\n".join(lines + [line, target]))["input_ids"]) > want:
                break
            lines.append(line)
        text = "\n".join(lines + [target])
        out.append(text)
    return out


def plain_loop(model, tokenizer, states: list[str], batch: int, max_length: int):
    """The reference: fixed batches in the given order, padded to the batch's longest, mean pooled."""
    import numpy as np
    import torch

    decoder = model.get_decoder()
    out = []
    for i in range(0, len(states), batch):
        enc = tokenizer(states[i:i + batch], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        with torch.inference_mode():
            hidden = decoder(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).float()
        out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)).numpy())
    return np.concatenate(out)


def _probe_main(a) -> int:
    """Fresh-process memory probe: run one path once over the states in ``--states-file``; print the peak."""
    import torch

    from raylib.models.encoder import StateEncoder
    from raylib.models.loading import load_causal_lm, load_tokenizer

    torch.set_num_threads(a.threads)
    data = json.loads(Path(a.states_file).read_text())
    if a.probe == "plain":
        tok = load_tokenizer(a.model_dir, padding_side="right")
        model = load_causal_lm(a.model_dir, device="cpu").eval()
        tok(data)
        with PeakRSS() as peak:
            plain_loop(model, tok, data, a.batch, a.max_length)
    else:
        enc = StateEncoder(a.model_dir, device="cpu", max_length=a.max_length, max_batch_tokens=int(a.probe))
        ids = enc.token_ids(data)
        with PeakRSS() as peak:
            enc.encode(data, ids=ids)
    print(json.dumps({"peak_delta_mb": peak.delta_mb}))
    return 0


def _probe(kind: str, model_dir: Path, states_file: Path, batch: int, max_length: int, threads: int) -> float:
    import subprocess

    proc = subprocess.run([sys.executable, __file__, "--probe", kind, "--model-dir", str(model_dir), "--states-file",
                           str(states_file), "--batch", str(batch), "--max-length", str(max_length),
                           "--threads", str(threads)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe {kind} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_delta_mb"]


def encode_bench(states: int = 512, max_length: int = 256, batch: int = 32, repeats: int = 3, threads: int = 1,
                 budgets: tuple[int, ...] | None = None, seed: int = 0) -> dict:
    """Measure both paths on both data sets; return the figures as a dict."""
    import numpy as np
    import torch

    from raylib.config import ValueSection
    from raylib.models.encoder import StateEncoder
    from raylib.models.loading import load_causal_lm, load_tokenizer
    from raylib.models.tiny import build_tiny_model, builtin_texts

    torch.set_num_threads(threads)
    budgets = tuple(budgets or (ValueSection().max_batch_tokens, 4096))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny", texts=builtin_texts(n=60), hidden_size=128, heads=2,
                                     layers=2)
        tok = load_tokenizer(model_dir, padding_side="right")
        model = load_causal_lm(model_dir, device="cpu").eval()
        encoders = {f"encoder_{b}": StateEncoder(model_dir, device="cpu", max_length=max_length, max_batch_tokens=b)
                    for b in budgets}
        sets = {"mixed": make_states(tok, states, 16, max_length, seed),
                "full": make_states(tok, states, max_length - 8, max_length, seed + 1)}
        report = {}
        for name, data in sets.items():
            lengths = [len(tok(s)["input_ids"]) for s in data]
            # Same numbers from both paths (padding never leaks into the mean): the comparison is fair.
            for enc in encoders.values():
                np.testing.assert_allclose(enc.encode(data[:64]), plain_loop(model, tok, data[:64], batch, max_length),
                                           atol=2e-4)
            runs = {k: [] for k in ("plain", *encoders)}
            for _ in range(repeats):
                for path in runs:
                    t0 = time.perf_counter()
                    if path == "plain":
                        plain_loop(model, tok, data, batch, max_length)
                    else:
                        encoders[path].encode(data)
                    runs[path].append(round(len(data) / (time.perf_counter() - t0), 1))
            states_file = Path(tmp) / f"{name}.json"
            states_file.write_text(json.dumps(data))
            mem = {"plain": _probe("plain", model_dir, states_file, batch, max_length, threads)}
            mem.update({f"encoder_{b}": _probe(str(b), model_dir, states_file, batch, max_length, threads)
                        for b in budgets})
            med = {k: statistics.median(v) for k, v in runs.items()}
            report[name] = {
                "states": len(data), "tokens_mean": round(sum(lengths) / len(lengths), 1), "tokens_max": max(lengths),
                "plain_batch": batch, "states_per_s": med,
                "speedup_vs_plain": {k: round(v / med["plain"], 2) for k, v in med.items() if k != "plain"},
                "peak_rss_delta_mb": mem, "runs": runs}
    return {"bench": "encode", "model": "tiny llama (hidden 128, 2 layers, random weights), float32, CPU",
            "max_length": max_length, "threads": threads, "repeats": repeats, "sets": report,
            "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
            "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                        "torch": torch.__version__}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--states", type=int, default=512, help="states per data set")
    p.add_argument("--max-length", type=int, default=256, help="tokens per state at most (value.max_length)")
    p.add_argument("--batch", type=int, default=32, help="fixed batch size of the plain loop")
    p.add_argument("--budgets", type=int, nargs="+", default=None,
                   help="encoder padded-token budgets per batch (default: value.max_batch_tokens's default, 4096)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (both paths)")
    p.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # internal: fresh-process memory probe
    p.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--states-file", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if a.probe:
        return _probe_main(a)
    print(json.dumps(encode_bench(a.states, a.max_length, a.batch, a.repeats, a.threads, a.budgets),
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
