"""Throughput of the SFT step (raylib.train.sft: Collator + sft_step + AdamW), JSON on stdout.

    python bench/sft_throughput.py                    # CPU: tiny Llama on oracle examples, full and LoRA
    python bench/sft_throughput.py --model 7b         # CUDA: 7B Llama shape, bf16, LoRA r=32, seq 512

CPU: a tokenizer and a tiny Llama (raylib.models.tiny) built here from built-in oracle examples.
7B (needs CUDA, imported lazily): hidden 4096, 30 layers, intermediate 11008, vocab 102400, random bf16
weights, LoRA r=32 on all 7 projections, sequences of --seq tokens (prompt + --completion tokens).
Reports samples/s and tokens/s (all tokens, and completion tokens that carry the loss).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

log = logging.getLogger("bench.sft_throughput")


def _measure(model, batches, params, steps: int, warmup: int, lr: float = 1e-4) -> dict:
    import torch

    from raylib.train.sft import sft_step

    opt = torch.optim.AdamW(params, lr=lr)
    model.train()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    samples = tokens = loss_tokens = 0
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            t0 = time.perf_counter()
            samples = tokens = loss_tokens = 0
        b = batches[i % len(batches)]
        loss, n_loss, _ = sft_step(model, [b], params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        samples += b["input_ids"].shape[0]
        tokens += int(b["attention_mask"].sum())
        loss_tokens += n_loss
    sync()
    dt = time.perf_counter() - t0
    return {"steps": steps, "seconds": round(dt, 3), "samples_per_s": round(samples / dt, 2),
            "tokens_per_s": round(tokens / dt, 1), "loss_tokens_per_s": round(loss_tokens / dt, 1),
            "last_loss": round(loss, 4)}


def bench_tiny(args) -> list[dict]:
    import torch
    from peft import LoraConfig, get_peft_model

    from raylib.data.sft import build_sft_examples, oracle_pairs, read_examples
    from raylib.env.builtin.corpus import generate_theorems
    from raylib.models.tiny import init_tiny_model, train_tokenizer
    from raylib.train.config import LLAMA_PROJECTIONS
    from raylib.train.sft import Collator

    torch.set_num_threads(args.threads) if args.threads else None
    thms = generate_theorems(300, seed=7)
    build = build_sft_examples(oracle_pairs([t for t in thms if t.split == "train"]), Path(args.work) / "ex",
                               [t for t in thms if t.split != "train"], valid_fraction=0.0)
    rows = read_examples(build.train_path).to_pylist()
    tok = train_tokenizer([r["prompt"] + r["completion"] for r in rows], vocab_size=args.vocab)
    collate = Collator(tok, args.seq)
    rows.sort(key=lambda r: len(r["prompt"])) if args.sort else None
    batches = [collate({"prompt": [r["prompt"] for r in rows[i:i + args.batch]],
                        "completion": [r["completion"] for r in rows[i:i + args.batch]]})
               for i in range(0, len(rows) - args.batch + 1, args.batch)]
    out = []
    for mode in args.modes.split(","):
        model = init_tiny_model(tok, hidden_size=args.hidden, layers=args.layers, heads=args.hidden // 64)
        if mode == "lora":
            model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(LLAMA_PROJECTIONS),
                                                     task_type="CAUSAL_LM"))
        params = [p for p in model.parameters() if p.requires_grad]
        r = _measure(model, batches, params, args.steps, args.warmup, lr=1e-3)
        r.update(model="tiny", mode=mode, device="cpu", hidden=args.hidden, layers=args.layers, batch=args.batch,
                 max_seq=args.seq, mean_tokens_per_sample=round(sum(int(b["attention_mask"].sum()) for b in batches)
                                                                / (len(batches) * args.batch), 1),
                 threads=torch.get_num_threads())
        out.append(r)
    return out


def bench_7b(args) -> list[dict]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from raylib.train.config import LLAMA_PROJECTIONS

    if not torch.cuda.is_available():
        return [{"model": "7b", "skipped": "no CUDA device"}]
    cfg = LlamaConfig(vocab_size=102400, hidden_size=4096, num_hidden_layers=30, intermediate_size=11008,
                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                      tie_word_embeddings=False)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # build in bf16 directly: no 28 GB fp32 copy
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(default)
    if args.grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, target_modules=list(LLAMA_PROJECTIONS),
                                             task_type="CAUSAL_LM"))
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator(device="cuda").manual_seed(0)
    batches = []
    for _ in range(4):
        ids = torch.randint(3, cfg.vocab_size, (args.batch, args.seq), device="cuda", generator=g)
        labels = ids.clone()
        labels[:, : args.seq - args.completion] = -100
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    r = _measure(model, batches, params, args.steps, args.warmup)
    r.update(model="7b", mode="lora", device=torch.cuda.get_device_name(0), dtype="bfloat16", lora_r=32,
             batch=args.batch, seq=args.seq, grad_ckpt=args.grad_ckpt,
             peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2 ** 30, 1))
    return [r]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["tiny", "7b"], default="tiny")
    p.add_argument("--modes", default="full,lora", help="tiny: comma list of full, lora")
    p.add_argument("--batch", type=int, default=None, help="examples per step (tiny 32, 7b 8)")
    p.add_argument("--seq", type=int, default=None, help="tiny: max tokens (320); 7b: sequence length (512)")
    p.add_argument("--completion", type=int, default=64, help="7b: loss-bearing tokens per sequence")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--sort", action="store_true", help="tiny: batch examples of similar length")
    p.add_argument("--grad-ckpt", action="store_true", help="7b: gradient checkpointing")
    p.add_argument("--work", default="/tmp/rayprover_sft_bench")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    big = args.model == "7b"
    args.batch = args.batch or (8 if big else 32)
    args.seq = args.seq or (512 if big else 320)
    args.steps = args.steps or (10 if big else 20)
    results = bench_7b(args) if big else bench_tiny(args)
    print(json.dumps({"bench": "sft_throughput", "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
