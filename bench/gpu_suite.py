"""GPU benchmarks on a 7B Llama shaped like DeepSeek-Prover-V2-7B; each figure beside a plain loop run in
the same process on the same data. JSON on stdout (one object; ``--out FILE`` writes it too).

    python bench/gpu_suite.py                         # all parts on CUDA (skipped cleanly without a GPU)
    python bench/gpu_suite.py --only sft,encode       # some parts: sft, encode, ebm, generate, vllm
    python bench/gpu_suite.py --smoke                 # tiny shape on CPU: checks every code path here

Without a CUDA GPU (and without ``--smoke``) it prints ``{"skipped": "no CUDA GPU"}`` and exits 0.
Model: random weights (timings do not depend on them), bf16 on CUDA, saved once under ``--work`` with a
tokenizer trained on the built-in corpus (so the project's loaders read it as they read any model).
Shape: hidden 4096, 30 layers, intermediate 11008, vocab 102400, 32 heads (``--smoke``: hidden 128,
2 layers, intermediate 256, 2 heads, float32, CPU, fewer steps). Parts (targets on one H100):

* ``sft``: LoRA r=32 on all seven projections, sequences of 512 tokens: the project's training step
  (``raylib.train.worker._load_model`` + ``raylib.train.sft.Collator`` + ``sft_step``, bf16 autocast over the
  float32 adapter) vs a plain HF+peft loop (``model(**batch).loss``). Plain 14.6 samples/s; target >= 21.
* ``encode``: 256-token states, ``raylib.models.encoder.StateEncoder`` (token-budget batches sorted by
  length) vs a plain fixed-batch HF forward loop. Plain 141 states/s; target >= 180, no out-of-memory.
* ``ebm``: EBM steps (batch 256, K = 7, 4096-dim embeddings on the GPU) through ``raylib.train.ebm_loop
  .ebm_step`` vs a plain PyTorch MLP loop. Plain 584 steps/s; target >= 600.
* ``generate``: HF generation (384-token prompts, 48 new tokens, 4 candidates a request) through the
  coalescing batcher the GeneratorActor uses (``raylib.batching.AsyncBatcher`` over ``HFGenerator``) with
  16 concurrent searches vs a plain loop of 8-prompt ``generate`` calls. Plain 85 tok/s; target >= 700.
* ``vllm``: ``VLLMGenerator`` tokens/s at num_candidates 16 with a LoRA adapter (r 32) vs the same engine
  without the adapter; skipped when vllm does not import.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

log = logging.getLogger("bench.gpu_suite")

PARTS = ("sft", "encode", "ebm", "generate", "vllm")
SHAPE_7B = dict(hidden_size=4096, layers=30, intermediate=11008, vocab=102400, heads=32)
SHAPE_SMOKE = dict(hidden_size=128, layers=2, intermediate=256, vocab=1024, heads=2)


class Setup:
    """Device, dtype, shape and sizes of one suite run (``smoke``: CPU and small)."""

    def __init__(self, smoke: bool, work: Path):
        import torch

        self.smoke, self.work = smoke, work
        self.device = "cpu" if smoke else "cuda"
        self.dtype = "float32" if smoke else "bfloat16"
        self.shape = SHAPE_SMOKE if smoke else SHAPE_7B
        self.torch = torch

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def model_dir(self) -> Path:
        """A random-weight Llama of ``shape`` with a built-in-corpus tokenizer, saved once under ``work``."""
        s = self.shape
        out = self.work / f"llama_h{s['hidden_size']}_l{s['layers']}"
        if (out / "config.json").is_file():
            return out
        from transformers import LlamaForCausalLM

        from raylib.models.tiny import builtin_texts, save_model, tiny_llama_config, train_tokenizer

        tok = train_tokenizer(builtin_texts(n=60), vocab_size=512)
        cfg = tiny_llama_config(s["vocab"], hidden_size=s["hidden_size"], layers=s["layers"], heads=s["heads"],
                                intermediate=s["intermediate"], max_position_embeddings=4096,
                                pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id)
        torch = self.torch
        torch.manual_seed(0)
        default = torch.get_default_dtype()
        torch.set_default_dtype(getattr(torch, self.dtype))  # build in bf16 directly: no 28 GB fp32 copy
        try:
            with torch.device(self.device):
                model = LlamaForCausalLM(cfg)
        finally:
            torch.set_default_dtype(default)
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
        save_model(model, tok, out)
        del model
        return out

    def sizes(self, big: dict, small: dict) -> dict:
        return small if self.smoke else big


def _rate(count: float, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else 0.0


def _peak_gb(torch) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2 ** 30, 1) if torch.cuda.is_available() else None


# -- sft ----------------------------------------------------------------------------------------------
def bench_sft(st: Setup) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from raylib.models.loading import load_tokenizer
    from raylib.train.config import LLAMA_PROJECTIONS, SFTSection
    from raylib.train.sft import Collator, sft_step
    from raylib.train.worker import _load_model

    z = st.sizes(dict(batch=8, seq=512, steps=10, warmup=2), dict(batch=4, seq=128, steps=3, warmup=1))
    model_dir = st.model_dir()
    tok = load_tokenizer(model_dir, padding_side="right")
    completion = "exact ⟨h.2, h.1⟩\n\n"
    state = "\n".join(f"h{i} : p{i % 7} ∧ q{i % 5} → r ∨ ¬s{i % 3}" for i in range(z["seq"])) + "\n⊢ q ∧ p"
    from raylib.models.prompt import format_example

    prompt, completion = format_example(state, completion)
    collate = Collator(tok, z["seq"])  # cut to seq tokens by the project's truncation policy
    batch = collate({"prompt": [prompt] * z["batch"], "completion": [completion] * z["batch"]})
    batch = {k: v.to(st.device) for k, v in batch.items()}
    seq = int(batch["input_ids"].shape[1])

    def timed(step):
        for _ in range(z["warmup"]):
            step()
        st.sync()
        t0 = time.perf_counter()
        for _ in range(z["steps"]):
            step()
        st.sync()
        return _rate(z["steps"] * z["batch"], time.perf_counter() - t0)

    sft = SFTSection(mode="lora", dtype=st.dtype, lora={"r": 32, "alpha": 64, "dropout": 0.0,
                                                        "target_modules": list(LLAMA_PROJECTIONS)})
    model = _load_model(sft, str(model_dir), None, torch.device(st.device))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def project_step():
        sft_step(model, [batch], params, 1.0, amp=None if st.smoke else st.dtype)
        opt.step()
        opt.zero_grad(set_to_none=True)

    project = timed(project_step)
    peak_project = _peak_gb(torch)
    model = opt = params = None  # free the project model before the plain one loads
    if st.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    from transformers import AutoModelForCausalLM

    plain_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, st.dtype)).to(st.device)
    plain_model = get_peft_model(plain_model, LoraConfig(r=32, lora_alpha=64, target_modules=list(LLAMA_PROJECTIONS),
                                                         task_type="CAUSAL_LM"))
    plain_model.train()
    popt = torch.optim.AdamW([p for p in plain_model.parameters() if p.requires_grad], lr=1e-4)

    def plain_step():
        plain_model(**batch).loss.backward()
        popt.step()
        popt.zero_grad(set_to_none=True)

    plain = timed(plain_step)
    return {"samples_per_s": project, "plain_samples_per_s": plain, "ratio": round(project / plain, 3),
            "batch": z["batch"], "seq": seq, "lora_r": 32, "steps": z["steps"], "peak_gb": peak_project,
            "plain_peak_gb": _peak_gb(torch), "target": ">= 21 samples/s (plain 14.6) on one H100"}


# -- encode -------------------------------------------------------------------------------------------
def bench_encode(st: Setup) -> dict:
    import torch

    from _encode_bench import make_states
    from raylib.models.encoder import StateEncoder
    from raylib.models.loading import load_tokenizer

    z = st.sizes(dict(states=2048, batch=32, max_length=256), dict(states=48, batch=8, max_length=64))
    model_dir = st.model_dir()
    enc = StateEncoder(model_dir, dtype=st.dtype, device=st.device, max_length=z["max_length"])
    tok = load_tokenizer(model_dir, padding_side="right")
    states = make_states(tok, z["states"], z["max_length"] - 8, z["max_length"])
    decoder = enc.model.get_decoder()

    def plain():
        out = []
        for i in range(0, len(states), z["batch"]):
            b = tok(states[i:i + z["batch"]], padding=True, truncation=True, max_length=z["max_length"],
                    return_tensors="pt").to(st.device)
            with torch.inference_mode():
                hidden = decoder(**b).last_hidden_state.float()
            mask = b["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)).cpu())
        return out

    enc.encode(states[: z["batch"]])  # warm-up, both paths
    plain_out = plain()
    del plain_out
    result = {}
    for name, fn in (("encoder", lambda: enc.encode(states)), ("plain", plain)):
        if st.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        st.sync()
        t0 = time.perf_counter()
        try:
            fn()
            st.sync()
            result[name] = {"states_per_s": _rate(len(states), time.perf_counter() - t0), "peak_gb": _peak_gb(torch)}
        except torch.OutOfMemoryError as e:  # reported, never hidden: the target says no OOM
            result[name] = {"oom": str(e)[:200]}
    return {"states_per_s": result["encoder"].get("states_per_s"),
            "plain_states_per_s": result["plain"].get("states_per_s"), "detail": result, "states": len(states),
            "max_length": z["max_length"], "encoder_max_batch_tokens": enc.max_batch_tokens,
            "plain_batch": z["batch"], "target": ">= 180 states/s (plain 141), no OOM, on one H100"}


# -- ebm ----------------------------------------------------------------------------------------------
def bench_ebm(st: Setup) -> dict:
    import torch

    from raylib.train.config import EBMSection
    from raylib.train.ebm_loop import ebm_step, make_head

    z = st.sizes(dict(dim=4096, rows=200_000, steps=300, warmup=20), dict(dim=64, rows=2000, steps=20, warmup=2))
    ebm = EBMSection(batch_size=256, negatives=7)
    g = torch.Generator(device=st.device).manual_seed(0)
    emb = torch.randn(z["rows"], z["dim"], device=st.device, generator=g)
    idx = [torch.randint(0, z["rows"], (ebm.batch_size, 1 + ebm.negatives), device=st.device, generator=g)
           for _ in range(16)]

    def timed(step):
        for i in range(z["warmup"]):
            step(idx[i % len(idx)])
        st.sync()
        t0 = time.perf_counter()
        for i in range(z["steps"]):
            step(idx[i % len(idx)])
        st.sync()
        return _rate(z["steps"], time.perf_counter() - t0)

    torch.manual_seed(0)
    head = make_head(ebm, z["dim"]).to(st.device)
    opt = torch.optim.AdamW(head.parameters(), lr=ebm.lr)
    project = timed(lambda i: ebm_step(head, opt, emb, i, ebm))

    torch.manual_seed(0)
    layers, d = [], z["dim"]
    for h in ebm.hidden_sizes:
        layers += [torch.nn.Linear(d, h), torch.nn.ReLU()]
        d = h
    plain_head = torch.nn.Sequential(*layers, torch.nn.Linear(d, 1)).to(st.device)
    popt = torch.optim.AdamW(plain_head.parameters(), lr=ebm.lr)
    target = torch.zeros(ebm.batch_size, dtype=torch.long, device=st.device)

    def plain_step(i):
        loss = torch.nn.functional.cross_entropy(-plain_head(emb[i]).squeeze(-1), target)
        popt.zero_grad(set_to_none=True)
        loss.backward()
        popt.step()

    plain = timed(plain_step)
    return {"steps_per_s": project, "plain_steps_per_s": plain, "ratio": round(project / plain, 3),
            "batch": ebm.batch_size, "negatives": ebm.negatives, "dim": z["dim"], "hidden_sizes": ebm.hidden_sizes,
            "target": ">= 600 steps/s (plain 584) on one H100"}


from gpu_generate import bench_generate, bench_vllm  # noqa: E402 - bench/ is on sys.path above

BENCHES = {"sft": bench_sft, "encode": bench_encode, "ebm": bench_ebm, "generate": bench_generate,
           "vllm": bench_vllm}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument("--smoke", action="store_true", help="tiny shape on CPU (checks the code paths)")
    p.add_argument("--work", default="/tmp/rayprover_gpu_suite", help="where the random model is saved once")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    parts = [x.strip() for x in a.only.split(",") if x.strip()]
    bad = [x for x in parts if x not in BENCHES]
    if bad:
        p.error(f"--only: unknown part(s) {', '.join(bad)}; choose from {', '.join(PARTS)}")
    import torch

    if not a.smoke and not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA GPU"}))
        return 0
    st = Setup(a.smoke, Path(a.work) / ("smoke" if a.smoke else "7b"))
    st.work.mkdir(parents=True, exist_ok=True)
    report = {"bench": "gpu_suite", "smoke": a.smoke, "device": torch.cuda.get_device_name(0) if not a.smoke else "cpu",
              "dtype": st.dtype, "shape": st.shape, "torch": torch.__version__, "results": {}}
    for part in parts:
        t0 = time.perf_counter()
        try:
            report["results"][part] = BENCHES[part](st)
        except Exception as e:  # noqa: BLE001 - one part's failure is reported, the others still run
            log.exception("part %s failed", part)
            report["results"][part] = {"error": f"{type(e).__name__}: {e}"[:500]}
        report["results"][part]["wall_s"] = round(time.perf_counter() - t0, 1)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    text = json.dumps(report, indent=2)
    if a.out:
        Path(a.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if not any("error" in r for r in report["results"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
