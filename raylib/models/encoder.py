"""State encoder: an LLM's hidden states pooled into one embedding per proof state.

* The model runs in the configured dtype; the last hidden states are pooled (``mean`` over the state's
  tokens or the ``last`` token) and returned as float32.
* A state longer than ``max_length`` tokens is cut by the one truncation policy
  (``raylib.models.truncate``: ``⊢`` targets and case tags kept, hypotheses dropped); ``truncation``
  counts the cuts.
* Batches are built under a token budget after sorting states by length (``token_budget_batches``, the
  one place that does it: the field saw 0.4% of encodes run out of memory with fixed-size batches).
* Every batch is checked: an all-zero, NaN or Inf embedding raises ``EmbeddingCheckError`` naming the
  state (an encode server in the field returned all-zero hidden states for 10-18% of requests).
* Every embedding carries the fingerprint of (model, adapter, dtype, pooling, max length): an EBM
  trained on one fingerprint refuses embeddings of another (bf16 vs fp16 embeddings of the same model
  differ, cosine 0.945 in the field).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from raylib.hashing import state_hash
from raylib.models.loading import (check_adapter_dir, check_model_dir, load_causal_lm, load_tokenizer, model_hash,
                                   resolve_device)
from raylib.models.truncate import TruncationStats, truncate_state

log = logging.getLogger(__name__)
POOLINGS = ("mean", "last")

__all__ = ["POOLINGS", "EmbeddingCheckError", "StateEncoder", "check_embeddings", "config_fingerprint",
           "encoder_fingerprint", "state_encoder_from_config", "token_budget_batches"]


class EmbeddingCheckError(RuntimeError):
    """The encoder produced an unusable embedding (all zeros, NaN or Inf); the message names the state."""


def check_embeddings(array, states: Sequence[str]) -> None:
    """Raise EmbeddingCheckError naming the first state whose embedding row is all-zero, NaN or Inf."""
    import numpy as np

    bad_value = ~np.isfinite(array).all(axis=1)
    zero = ~np.any(array != 0, axis=1)
    for i in np.flatnonzero(bad_value | zero):
        what = "NaN or Inf values" if bad_value[i] else "all zeros"
        text = states[i] if len(states[i]) <= 200 else states[i][:200] + "…"
        raise EmbeddingCheckError(
            f"encoder produced {what} for state {state_hash(states[i])} ({int(bad_value.sum() + zero.sum())} of "
            f"{len(states)} in the batch): {text!r}; check the model, dtype and device")


def encoder_fingerprint(model_path: str | Path, adapter: str | Path | None, dtype: str, pooling: str,
                        max_length: int) -> str:
    """``<model hash>/<adapter hash or base>/<dtype>/<pooling>/<max length>``: what makes embeddings
    comparable; computed from the folders' content without loading the model."""
    adapter_tag = model_hash(adapter) if adapter else "base"
    return f"{model_hash(model_path)}/{adapter_tag}/{dtype}/{pooling}/{max_length}"


def config_fingerprint(cfg) -> str:
    """The fingerprint a ``state_encoder_from_config(cfg)`` encoder will have (no model loaded)."""
    v = cfg.value
    model = check_model_dir(v.encoder_path or cfg.model.path)
    adapter = check_adapter_dir(v.encoder_adapter) if v.encoder_adapter else None
    return encoder_fingerprint(model, adapter, v.dtype, v.pooling, v.max_length)


def state_encoder_from_config(cfg, device: str | None = None) -> "StateEncoder":
    """The StateEncoder the ``value`` section describes (model: value.encoder_path or model.path)."""
    v = cfg.value
    return StateEncoder(v.encoder_path or cfg.model.path, adapter=v.encoder_adapter, dtype=v.dtype,
                        device=device or cfg.model.device, pooling=v.pooling, max_length=v.max_length,
                        max_batch_tokens=v.max_batch_tokens)


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_items: int | None = None) -> list[list[int]]:
    """Indices grouped into batches whose padded size (items × longest) stays within ``max_tokens``.

    Indices are sorted by length first, so each batch holds similar lengths; one over-long item still
    forms a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = max(lengths[i], max((lengths[j] for j in cur), default=0))
        if cur and ((len(cur) + 1) * longest > max_tokens or (max_items and len(cur) >= max_items)):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


class StateEncoder:
    """Encodes proof states into float32 embeddings; see the module docstring."""

    def __init__(self, model_path: str | Path, adapter: str | Path | None = None, dtype: str = "float32",
                 device: str = "auto", pooling: str = "mean", max_length: int = 512,
                 max_batch_tokens: int = 16384):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model_path = str(check_model_dir(model_path))
        self.adapter = str(check_adapter_dir(adapter)) if adapter else None
        self.dtype, self.pooling, self.max_length = dtype, pooling, max_length
        self.max_batch_tokens = max_batch_tokens
        self.truncation = TruncationStats()
        self.device = resolve_device(device)
        self.tokenizer = load_tokenizer(self.model_path, padding_side="right")
        self.model = load_causal_lm(self.model_path, dtype=dtype, device=self.device, adapter=self.adapter,
                                     merge=True)
        self.model.eval()
        self._decoder = self.model.get_decoder()  # a LoRA adapter: merged into it, or in its layers (peft)
        self._fingerprint = encoder_fingerprint(self.model_path, self.adapter, dtype, pooling, max_length)

    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def token_ids(self, states: Sequence[str], cut: list[bool] | None = None) -> list[list[int]]:
        """Token ids of each state, a state over ``max_length`` tokens cut by the truncation policy.

        ``cut``, when given, receives one flag per state: whether it was cut."""
        ids = self.tokenizer(list(states))["input_ids"]
        for i, x in enumerate(ids):
            over = len(x) > self.max_length
            if over:
                t = truncate_state(states[i], self.tokenizer, self.max_length)
                self.truncation.add(t)
                ids[i] = self.tokenizer(t.text)["input_ids"]
            if cut is not None:
                cut.append(over)
        return ids

    def encode(self, states: Sequence[str], ids: list[list[int]] | None = None):
        """float32 numpy array of shape (len(states), hidden_size), in the order given.

        ``ids`` (from ``token_ids``) skips tokenizing again. Raises EmbeddingCheckError when a row is
        all-zero, NaN or Inf.
        """
        import numpy as np
        import torch

        out = np.zeros((len(states), self.dim), dtype=np.float32)
        if not states:
            return out
        ids = self.token_ids(states) if ids is None else ids
        for batch in token_budget_batches([len(x) for x in ids], self.max_batch_tokens):
            enc = self.tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items()}
            with torch.inference_mode():  # the decoder body only: no LM head logits, no per-layer states kept
                hidden = self._decoder(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            if self.pooling == "mean":
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            else:
                last = enc["attention_mask"].sum(1) - 1
                pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
            rows = pooled.cpu().numpy()
            check_embeddings(rows, [states[i] for i in batch])
            out[batch] = rows
        return out
