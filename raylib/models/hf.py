"""Tactic generation with Hugging Face transformers (CPU or GPU), implementing ``TacticGenerator``.

Decoding, per chunk of prompts (left-padded, KV cache, ``num_return_sequences=n``):

* ``temperature > 0``: pure ancestral sampling at that temperature (``top_k=0``, ``top_p=1``).
* ``temperature == 0`` and ``n == 1``: greedy decoding.
* ``temperature == 0`` and ``n > 1``: beam search of width ``n`` returning all ``n`` beams (greedy
  would return one tactic ``n`` times).

Prompts: a state longer than the prompt budget (``max_prompt_tokens``, at most the model's context
minus ``max_tokens``) is cut by the one truncation policy (``raylib.models.prompt.fit_prompt``: targets
and case tags kept, hypotheses dropped); ``truncation`` counts the cuts.

A completion ends at the first EOS token or at the token that completes ``prompt.END_MARKER``; a
completion with neither is cut at ``max_tokens`` and kept (Lean rejects it if it is malformed).

Log-probability of a candidate: the sum over its generated tokens, up to and including the ending
token (EOS or the token completing the end marker), of ``log_softmax(raw logits)`` at the chosen token.
These are the model's own, unscaled log-probabilities (no temperature, no top-k), the prior the
search wants. Sampling and greedy read them from ``output_logits`` (the raw logits generate returns);
beam search scores the finished beams with one extra forward pass, since beam logits are per beam slot.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import NamedTuple, Sequence

from transformers import StoppingCriteria, StoppingCriteriaList

from raylib.env.filter import TacticFilter
from raylib.models.generator import Candidate, postprocess
from raylib.models.loading import (adapter_tag, attach_adapter, check_adapter_dir, check_model_dir,
                                   load_causal_lm, load_tokenizer, merges_adapter, model_hash, resolve_device)
from raylib.models.prompt import END_MARKER, extract_tactic, fit_prompt, validate_template
from raylib.models.truncate import TruncationStats

log = logging.getLogger(__name__)

__all__ = ["HFGenerator", "Sample", "model_hash"]  # model_hash lives in loading.py; re-exported


class Sample(NamedTuple):
    """One raw completion: the extracted tactic, its log-prob and the generated token ids it sums over."""
    text: str
    logprob: float
    token_ids: tuple[int, ...]


class HFGenerator:
    """Batched tactic generation with transformers; see the module docstring for decoding and log-probs."""

    share_prompt = True  # n samples of a prompt read it once (_shared_prompt); False: generate's own expansion

    def __init__(self, model_path: str | Path, adapter: str | Path | None = None, dtype: str = "float32",
                 device: str = "auto", tactic_filter: TacticFilter | None = None, template: str | None = None,
                 max_batch_prompts: int = 16, max_batch_tokens: int | None = None,
                 adapter_version: str | int | None = None, max_prompt_tokens: int | None = None,
                 seed: int | None = None):
        if max_batch_prompts < 1:
            raise ValueError(f"max_batch_prompts must be >= 1, got {max_batch_prompts}")
        self.model_path = str(check_model_dir(model_path))
        self.dtype = dtype
        self.device = resolve_device(device)
        self.template = validate_template(template) if template is not None else None
        self.tactic_filter = tactic_filter
        self.max_batch_prompts = max_batch_prompts
        self.max_batch_tokens = max_batch_tokens
        self.max_prompt_tokens = max_prompt_tokens
        self.truncation = TruncationStats()
        self.tokenizer = load_tokenizer(self.model_path, padding_side="left")
        self._model_hash = model_hash(self.model_path)
        self._adapter_tag = "base"
        self._adapter_name: str | None = None
        self.model = load_causal_lm(self.model_path, dtype=dtype, device=self.device)
        if adapter is not None:
            self.load_adapter(adapter, adapter_version if adapter_version is not None else "0")
        if seed is not None:
            self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Seed sampling. ``generate`` draws from torch's global generator, which this process (a
        GeneratorActor, a test) owns; concurrent batching still decides which request draws which numbers."""
        import torch

        torch.manual_seed(int(seed))

    @classmethod
    def from_config(cls, model, generation, tactic_filter: TacticFilter | None = None) -> "HFGenerator":
        """Build from ``Config.model`` and ``Config.generation`` sections."""
        return cls(model.path, adapter=model.adapter, dtype=model.dtype, device=model.device,
                   tactic_filter=tactic_filter, template=generation.template,
                   max_batch_prompts=generation.max_batch_prompts, max_batch_tokens=generation.max_batch_tokens,
                   seed=model.seed)

    # -- TacticGenerator ----------------------------------------------------------------------

    def fingerprint(self) -> str:
        """``<model hash>/<adapter tag>/<dtype>``; the adapter tag is ``base`` or ``<version>@<path hash>``."""
        return f"{self._model_hash}/{self._adapter_tag}/{self.dtype}"

    def generate(self, states: Sequence[str], n: int, temperature: float,
                 max_tokens: int) -> list[list[Candidate]]:
        raw = self.generate_raw(states, n, temperature, max_tokens)
        return [postprocess(r, self.tactic_filter, n) for r in raw]

    def load_adapter(self, path: str | Path, version: str | int) -> None:
        """Hot-swap the LoRA adapter in ``path`` (replacing the current one); changes the fingerprint.

        Merged into the weights or kept apart as ``loading.merges_adapter`` says for the dtype. A failed
        load leaves the served model as it was."""
        a = check_adapter_dir(path)
        if merges_adapter(self.dtype):  # a plain model again: base weights read afresh, the adapter merged
            model, name = load_causal_lm(self.model_path, dtype=self.dtype, device=self.device, adapter=a,
                                         merge=True), None
        else:
            name = "v_" + re.sub(r"\W", "_", str(version))
            if self._adapter_name == name:  # peft refuses to overwrite a live adapter name: stage under another
                name += "_reload"
            model = attach_adapter(self.model, a, adapter_name=name)
            if self._adapter_name is not None:
                model.delete_adapter(self._adapter_name)
        model.to(self.device)
        model.eval()
        self.model, self._adapter_name = model, name
        self._adapter_tag = adapter_tag(a, version)
        log.info("adapter %s (version %s) active on %s%s", a, version, self.model_path,
                 " (merged)" if name is None else "")

    # -- generation ---------------------------------------------------------------------------

    def generate_raw(self, states: Sequence[str], n: int, temperature: float,
                     max_tokens: int) -> list[list[tuple[str, float]]]:
        """For each state, ``n`` (tactic text, log-prob) pairs before filtering and deduplication."""
        return [[(s.text, s.logprob) for s in row] for row in self.generate_samples(states, n, temperature, max_tokens)]

    def generate_samples(self, states: Sequence[str], n: int, temperature: float,
                         max_tokens: int) -> list[list[Sample]]:
        """For each state, ``n`` raw samples (text, log-prob, token ids), in generation order."""
        if n < 1 or max_tokens < 1:
            raise ValueError(f"n and max_tokens must be >= 1 (got n={n}, max_tokens={max_tokens})")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        prompts = self._prompts(states, max_tokens)
        lengths = [len(self.tokenizer(p)["input_ids"]) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])  # similar lengths share a batch
        out: list[list[Sample]] = [[] for _ in prompts]
        for chunk in self._chunks(order, lengths, n, max_tokens):
            results = self._generate_chunk([prompts[i] for i in chunk], n, temperature, max_tokens)
            for i, r in zip(chunk, results):
                out[i] = r
        return out

    def prompt_budget(self, max_tokens: int) -> int:
        """Longest prompt in tokens: the model's context minus ``max_tokens``, capped by max_prompt_tokens."""
        ctx = getattr(self.model.config, "max_position_embeddings", None)
        budget = ctx - max_tokens if ctx else None
        if self.max_prompt_tokens is not None:
            budget = self.max_prompt_tokens if budget is None else min(budget, self.max_prompt_tokens)
        if budget is None:
            return 1 << 30
        if budget < 1:
            raise ValueError(f"max_tokens {max_tokens} leaves no room for a prompt in the model's context {ctx}")
        return budget

    def _prompts(self, states: Sequence[str], max_tokens: int) -> list[str]:
        budget = self.prompt_budget(max_tokens)
        prompts = []
        for s in states:
            prompt, cut = fit_prompt(s, self.tokenizer, budget, self.template)
            self.truncation.add(cut)
            if cut.truncated:
                log.debug("state cut to fit %d prompt tokens: %d hypotheses dropped", budget, cut.cut)
            prompts.append(prompt)
        return prompts

    def _chunks(self, order: list[int], lengths: list[int], n: int, max_tokens: int):
        chunk: list[int] = []
        for i in order:
            longest = max([lengths[j] for j in chunk] + [lengths[i]])
            cost = (len(chunk) + 1) * n * (longest + max_tokens)
            too_many = len(chunk) >= self.max_batch_prompts
            too_big = self.max_batch_tokens is not None and cost > self.max_batch_tokens
            if chunk and (too_many or too_big):
                yield chunk
                chunk = []
            chunk.append(i)
        if chunk:
            yield chunk

    def _generate_chunk(self, prompts: list[str], n: int, temperature: float,
                        max_tokens: int) -> list[list[Sample]]:
        import torch

        tok = self.tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True).to(self.device)
        prompt_len = enc["input_ids"].shape[1]
        beam = temperature == 0 and n > 1
        kwargs = dict(max_new_tokens=max_tokens, num_return_sequences=n, return_dict_in_generate=True,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      repetition_penalty=1.0, no_repeat_ngram_size=0)  # override a saved generation_config
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=float(temperature), top_k=0, top_p=1.0,
                          output_logits=True)
        elif beam:
            kwargs.update(do_sample=False, num_beams=n, early_stopping=True, length_penalty=1.0)
        else:
            kwargs.update(do_sample=False, num_beams=1, output_logits=True)
        if not beam:  # beam search only stops beams at EOS; the end marker is cut afterwards
            kwargs["stopping_criteria"] = StoppingCriteriaList([_EndMarkerStop(tok, prompt_len)])
        with torch.inference_mode():
            if beam or n == 1 or prompt_len < 2 or not self.share_prompt:
                res = self.model.generate(**enc, **kwargs)
            else:
                res = self.model.generate(**self._shared_prompt(enc, n), **dict(kwargs, num_return_sequences=1))
        gen = res.sequences[:, prompt_len:]
        ends = [self._end_of(row) for row in gen.tolist()]
        if beam:
            attn = enc["attention_mask"].repeat_interleave(n, dim=0)
            logprobs = self._score(enc["input_ids"].repeat_interleave(n, dim=0), attn, gen, ends)
        else:
            # One step at a time: a float32 copy of all steps' logits would double the memory.
            picked = torch.stack([step.float().log_softmax(-1).gather(-1, gen[:, t, None]).squeeze(-1)
                                  for t, step in enumerate(res.logits)], dim=1)  # (rows, steps)
            logprobs = [float(picked[r, :ends[r]].sum()) for r in range(gen.shape[0])]
        rows = gen.tolist()
        samples = [Sample(extract_tactic(tok.decode(rows[r][:ends[r]], skip_special_tokens=True)),
                          logprobs[r], tuple(rows[r][:ends[r]])) for r in range(len(rows))]
        return [samples[k * n:(k + 1) * n] for k in range(len(prompts))]

    def _shared_prompt(self, enc, n: int) -> dict:
        """``generate`` inputs for ``n`` samples per prompt that read each prompt once: the prompts but their
        last token go through the model once, and the KV cache is repeated ``n`` times per row, in the order
        ``num_return_sequences`` expands rows (so the samples drawn for a seed are the same as without it).
        Generation then starts from each prompt's last token. With n=8 this takes the prompt's forward pass
        out of 7 of every 8 rows: the larger share of a sampling call on CPU when states are long."""
        ids, mask = enc["input_ids"], enc["attention_mask"]
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)  # left padding: positions count real tokens only
        cache = self.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=pos[:, :-1],
                           use_cache=True).past_key_values
        cache.batch_repeat_interleave(n)
        return {"input_ids": ids.repeat_interleave(n, dim=0), "attention_mask": mask.repeat_interleave(n, dim=0),
                "past_key_values": cache}

    def _end_of(self, ids: list[int]) -> int:
        """Number of tokens of a completion: up to the first EOS or the token completing END_MARKER."""
        eos = self.tokenizer.eos_token_id
        limit = ids.index(eos) + 1 if eos in ids else len(ids)
        decode = self.tokenizer.decode
        if END_MARKER not in decode(ids[:limit], skip_special_tokens=True):
            return limit
        lo, hi = 1, limit  # smallest k with the marker in decode(ids[:k]): the property is monotone
        while lo < hi:
            mid = (lo + hi) // 2
            if END_MARKER in decode(ids[:mid], skip_special_tokens=True):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _score(self, prompt_ids, prompt_mask, gen, ends: list[int]) -> list[float]:
        """Sum of unscaled token log-probs of gen[r, :ends[r]] after each left-padded prompt (one forward)."""
        import torch

        steps = torch.arange(gen.shape[1], device=gen.device)[None, :]
        gen_mask = (steps < torch.tensor(ends, device=gen.device)[:, None]).to(prompt_mask.dtype)
        ids = torch.cat([prompt_ids, gen], dim=1)
        mask = torch.cat([prompt_mask, gen_mask], dim=1)
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        p = prompt_ids.shape[1]
        lp = logits[:, p - 1:-1].float().log_softmax(-1).gather(-1, gen[..., None]).squeeze(-1)
        return [float((lp[r] * gen_mask[r]).sum()) for r in range(gen.shape[0])]


class _EndMarkerStop(StoppingCriteria):
    """Per-row stopping criterion: the generated text (after the prompt) contains END_MARKER."""

    def __init__(self, tokenizer, prompt_len: int, window: int = 8):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.window = window

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        tail = input_ids[:, self.prompt_len:][:, -self.window:]
        texts = self.tokenizer.batch_decode(tail, skip_special_tokens=True)
        return torch.tensor([END_MARKER in t for t in texts], dtype=torch.bool, device=input_ids.device)
