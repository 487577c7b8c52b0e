"""State encoder: an LLM's hidden states pooled into one embedding per proof state.

Batches are built under a token budget after sorting states by length (the field saw 0.4% of encodes run
out of memory with fixed-size batches). Every embedding carries a fingerprint of (model, adapter, dtype,
pooling): an EBM trained on one fingerprint refuses embeddings of another (bf16 vs fp16 embeddings of the
same model differ, cosine 0.945 in the field).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from raylib.models.loading import (check_adapter_dir, check_model_dir, load_causal_lm, load_tokenizer, model_hash,
                                   resolve_device)

log = logging.getLogger(__name__)
POOLINGS = ("mean", "last")


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
    def __init__(self, model_path: str | Path, adapter: str | Path | None = None, dtype: str = "float32",
                 device: str = "auto", pooling: str = "mean", max_length: int = 512,
                 max_batch_tokens: int = 16384):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model_path = str(check_model_dir(model_path))
        self.adapter = str(check_adapter_dir(adapter)) if adapter else None
        self.dtype, self.pooling, self.max_length = dtype, pooling, max_length
        self.max_batch_tokens = max_batch_tokens
        self.device = resolve_device(device)
        self.tokenizer = load_tokenizer(self.model_path, padding_side="right")
        self.model = load_causal_lm(self.model_path, dtype=dtype, device=self.device, adapter=self.adapter)
        self.model.eval()
        self._decoder = self.model.get_decoder()  # with a LoRA adapter, its layers carry the adapter
        adapter_tag = model_hash(self.adapter) if self.adapter else "base"
        self._fingerprint = f"{model_hash(self.model_path)}/{adapter_tag}/{dtype}/{pooling}"

    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, states: Sequence[str]):
        """float32 numpy array of shape (len(states), hidden_size), in the order given."""
        import numpy as np
        import torch

        out = np.zeros((len(states), self.dim), dtype=np.float32)
        if not states:
            return out
        ids = self.tokenizer(list(states), truncation=True, max_length=self.max_length)["input_ids"]
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
            out[batch] = pooled.cpu().numpy()
        return out
