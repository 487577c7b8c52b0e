"""Generation parts of ``bench/gpu_suite.py`` (run them through it): HF generation through the coalescing
batcher the GeneratorActor uses vs a plain 8-prompt loop, and vLLM tokens/s with a LoRA adapter vs the same
engine without it. ``st`` is ``gpu_suite.Setup`` (device, dtype, shape, the saved random model).
"""

from __future__ import annotations

import asyncio
import time


def _rate(count: float, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else 0.0

# -- generate (HF through the coalescing batcher) ------------------------------------------------------
def _prompt_states(tok, n: int, tokens: int) -> list[str]:
    from _encode_bench import make_states

    return make_states(tok, n, tokens - 16, tokens - 8)


def bench_generate(st) -> dict:
    import torch

    from raylib.batching import AsyncBatcher
    from raylib.config import GenerationSection
    from raylib.models.hf import HFGenerator
    from raylib.models.prompt import format_prompt

    z = st.sizes(dict(prompt=384, new=48, n=4, searches=16, rounds=3, plain_batch=8),
                 dict(prompt=64, new=8, n=4, searches=4, rounds=2, plain_batch=2))
    model_dir = st.model_dir()
    gen_cfg = GenerationSection()
    backend = HFGenerator(model_dir, dtype=st.dtype, device=st.device, max_batch_prompts=gen_cfg.max_batch_prompts,
                          max_batch_tokens=gen_cfg.max_batch_tokens)
    states = _prompt_states(backend.tokenizer, z["searches"] * z["rounds"], z["prompt"])
    key = (z["n"], 1.0, z["new"])

    def batch_fn(k, items):  # what GeneratorActor._generate_batch runs, keeping token counts
        return backend.generate_samples(items, *k)

    batcher = AsyncBatcher(batch_fn, linger_s=0.005, max_items=4 * gen_cfg.max_batch_prompts)

    async def search(i: int) -> int:  # one search: its expansions one after another
        toks = 0
        for r in range(z["rounds"]):
            samples = await batcher.submit(states[i * z["rounds"] + r], key=key)
            toks += sum(len(s.token_ids) for s in samples)
        return toks

    async def all_searches() -> int:
        return sum(await asyncio.gather(*(search(i) for i in range(z["searches"]))))

    backend.generate_samples(states[:2], *key)  # warm-up
    st.sync()
    t0 = time.perf_counter()
    tokens = asyncio.run(all_searches())
    st.sync()
    coalesced = _rate(tokens, time.perf_counter() - t0)

    tok, model = backend.tokenizer, backend.model  # plain: 8 prompts a call, one sample each
    tok.padding_side = "left"
    prompts = [format_prompt(s) for s in states]
    st.sync()
    t0, plain_tokens = time.perf_counter(), 0
    for i in range(0, len(prompts), z["plain_batch"]):
        b = tok(prompts[i:i + z["plain_batch"]], return_tensors="pt", padding=True).to(st.device)
        with torch.inference_mode():
            out = model.generate(**b, max_new_tokens=z["new"], min_new_tokens=z["new"], do_sample=True)
        plain_tokens += int(out[:, b["input_ids"].shape[1]:].numel())
    st.sync()
    plain = _rate(plain_tokens, time.perf_counter() - t0)
    s = batcher.stats
    return {"tokens_per_s": coalesced, "plain_tokens_per_s": plain, "ratio": round(coalesced / plain, 3),
            "concurrent_searches": z["searches"], "candidates": z["n"], "prompt_tokens": z["prompt"],
            "max_new_tokens": z["new"], "batches": s.batches, "mean_batch": s.mean_batch, "max_batch": s.max_batch,
            "plain_batch": z["plain_batch"], "target": ">= 700 tok/s (plain 8-prompt loop 85) on one H100"}


# -- vllm ---------------------------------------------------------------------------------------------
def bench_vllm(st) -> dict:
    from raylib.models.vllm_backend import VLLMUnavailable, vllm_available

    if not vllm_available():
        return {"skipped": "vllm does not import here"}
    import torch
    from peft import LoraConfig, get_peft_model

    from raylib.models.loading import load_causal_lm
    from raylib.models.vllm_backend import VLLMGenerator
    from raylib.train.config import LLAMA_PROJECTIONS

    z = st.sizes(dict(prompt=384, new=48, n=16, states=64, mem=0.85), dict(prompt=64, new=8, n=16, states=4, mem=0.05))
    model_dir = st.model_dir()
    adapter = st.work / "adapter_r32"
    if not (adapter / "adapter_config.json").is_file():
        peft_model = get_peft_model(load_causal_lm(model_dir, dtype=st.dtype, device=st.device),
                                    LoraConfig(r=32, lora_alpha=64, target_modules=list(LLAMA_PROJECTIONS)))
        peft_model.save_pretrained(adapter)
        del peft_model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    try:
        g = VLLMGenerator(model_dir, dtype=st.dtype, gpu_memory_utilization=z["mem"], max_model_len=1024,
                          max_num_seqs=256, enforce_eager=st.smoke)
    except VLLMUnavailable as e:
        return {"skipped": str(e)[:200]}
    with g:
        states = _prompt_states(g.tokenizer, z["states"], z["prompt"])
        g.generate_raw(states[:2], 2, 1.0, z["new"])  # warm-up

        def run() -> float:
            t0 = time.perf_counter()
            rows = g.generate_raw(states, z["n"], 1.0, z["new"])
            return _rate(sum(len(ids) for row in rows for _, _, ids in row), time.perf_counter() - t0)

        base = run()
        g.load_adapter(adapter, 1)
        g.generate_raw(states[:2], 2, 1.0, z["new"])  # adapter loaded into the engine
        lora = run()
    return {"tokens_per_s": lora, "base_tokens_per_s": base, "ratio": round(lora / base, 3), "candidates": z["n"],
            "states": z["states"], "prompt_tokens": z["prompt"], "max_new_tokens": z["new"], "lora_r": 32}
