"""Load a tokenizer and a causal LM (optionally with a peft LoRA adapter) from local directories only.

Nothing here ever reaches the Hugging Face hub: every path must be an existing local directory, checked
before transformers sees it, and every call passes ``local_files_only=True``. Errors name the path and
what was expected in it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["ModelLoadError", "DTYPES", "check_model_dir", "check_adapter_dir", "resolve_device",
           "torch_dtype", "load_tokenizer", "load_causal_lm", "load_quantized_causal_lm", "attach_adapter",
           "model_hash", "adapter_tag"]

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json")


class ModelLoadError(RuntimeError):
    """A model, tokenizer or adapter directory that cannot be loaded; the message names the path."""


def _as_dir(path: str | Path, what: str) -> Path:
    if path is None or str(path).strip() == "":
        raise ModelLoadError(f"no {what} path given")
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"{what} directory {str(p)!r} does not exist (expected a local directory; "
                             "models are never downloaded from the hub)")
    if not p.is_dir():
        raise ModelLoadError(f"{what} path {str(p)!r} is not a directory")
    return p


def check_model_dir(path: str | Path, need_weights: bool = True, need_tokenizer: bool = True) -> Path:
    """Return the model directory if it holds config.json, weights and tokenizer files; else raise."""
    p = _as_dir(path, "model")
    missing = []
    if not (p / "config.json").is_file():
        missing.append("config.json")
    if need_weights and not any(any(p.glob(pat)) for pat in WEIGHT_PATTERNS):
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    if need_tokenizer and not any((p / f).is_file() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (" + " or ".join(TOKENIZER_FILES) + ")")
    if missing:
        raise ModelLoadError(f"model directory {str(p)!r} is missing {', '.join(missing)}; expected a "
                             "directory written by save_pretrained (e.g. raylib.models.tiny.save_model)")
    return p


def check_adapter_dir(path: str | Path) -> Path:
    """Return the adapter directory if it holds adapter_config.json and adapter weights; else raise."""
    p = _as_dir(path, "adapter")
    missing = []
    if not (p / "adapter_config.json").is_file():
        missing.append("adapter_config.json")
    if not any(p.glob("adapter_model.*")):
        missing.append("adapter_model.safetensors (or .bin)")
    if missing:
        raise ModelLoadError(f"adapter directory {str(p)!r} is missing {', '.join(missing)}; expected a "
                             "peft adapter written by PeftModel.save_pretrained")
    return p


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when available else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    if device not in DEVICES:
        raise ModelLoadError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' asked for but torch sees no GPU (use device: cpu or auto)")
    return device


def torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def load_tokenizer(path: str | Path, padding_side: str = "left"):
    """The tokenizer saved in ``path`` with left padding (for batched generation) and a pad token."""
    from transformers import AutoTokenizer

    p = _as_dir(path, "tokenizer")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(f"tokenizer directory {str(p)!r} has none of {', '.join(TOKENIZER_FILES)}")
    try:
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as e:  # transformers raises many types; name the path
        raise ModelLoadError(f"cannot load the tokenizer in {str(p)!r}: {type(e).__name__}: {e}") from e
    tok.padding_side = padding_side
    if tok.pad_token_id is None:
        if tok.eos_token_id is None:
            raise ModelLoadError(f"tokenizer in {str(p)!r} has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
        log.info("tokenizer %s has no pad token: using eos %r", p, tok.eos_token)
    return tok


def merges_adapter(dtype: str) -> bool:
    """Serving policy: a LoRA adapter is merged into float32 weights (the same function as base + LoRA, without
    LoRA's extra matmuls at every projection, which on CPU cost as much as a small model itself); in a lower
    precision it stays apart, since adding it into bfloat16 weights rounds small updates away."""
    return dtype == "float32"


def load_causal_lm(path: str | Path, dtype: str = "float32", device: str = "cpu",
                   adapter: str | Path | None = None, adapter_name: str = "default", merge: bool = False,
                   **kwargs: Any):
    """A causal LM from ``path`` in eval mode on ``device``, with an optional peft adapter applied.

    With an adapter the result is a ``peft.PeftModel`` (its ``load_adapter``/``set_adapter`` hot-swap
    adapters); ``adapter_name`` names the first one. ``merge=True`` (for serving, not training): where
    ``merges_adapter(dtype)``, the adapter is merged into the weights and the result is a plain model.
    """
    from transformers import AutoModelForCausalLM

    p = check_model_dir(path, need_tokenizer=False)
    td = torch_dtype(dtype)
    dev = resolve_device(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(p), dtype=td, local_files_only=True, **kwargs)
    except Exception as e:
        raise ModelLoadError(f"cannot load the model in {str(p)!r}: {type(e).__name__}: {e}") from e
    if adapter is not None:
        model = attach_adapter(model, adapter, adapter_name)
        if merge and merges_adapter(dtype):
            model = model.merge_and_unload()
    model.to(dev)
    model.eval()
    log.info("loaded %s (%s, %s%s)", p, dtype, dev, f", adapter {adapter}" if adapter else "")
    return model


def load_quantized_causal_lm(path: str | Path, quantization: str, compute_dtype: str = "bfloat16",
                             device: Any = "cuda"):
    """A causal LM from ``path`` with its linear layers quantized by bitsandbytes on a CUDA ``device``.

    ``quantization``: ``4bit`` (nf4 with double quantization, matmuls in ``compute_dtype``; QLoRA) or
    ``8bit`` (LLM.int8). bitsandbytes is imported here only (it is the ``gpu`` extra), so a CPU install
    never needs it; callers refuse the setting beforehand where it cannot run
    (``raylib.train.options.runtime_refusal``).
    """
    import bitsandbytes  # noqa: F401  (lazily: GPU machines only; a clear ImportError otherwise)
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if quantization not in ("4bit", "8bit"):
        raise ModelLoadError(f"quantization {quantization!r} is not one of 4bit, 8bit")
    p = check_model_dir(path, need_tokenizer=False)
    td = torch_dtype(compute_dtype)
    if quantization == "4bit":
        qcfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=td)
    else:
        qcfg = BitsAndBytesConfig(load_in_8bit=True)
    dev = torch.device(device)
    index = dev.index if dev.index is not None else torch.cuda.current_device()  # the whole model on this GPU
    try:
        model = AutoModelForCausalLM.from_pretrained(str(p), quantization_config=qcfg, dtype=td,
                                                     device_map={"": index}, local_files_only=True)
    except Exception as e:
        raise ModelLoadError(f"cannot load the model in {str(p)!r} {quantization}: {type(e).__name__}: {e}") from e
    log.info("loaded %s quantized %s (compute %s) on %s", p, quantization, compute_dtype, device)
    return model


def attach_adapter(model, adapter: str | Path, adapter_name: str = "default"):
    """Apply the peft adapter in ``adapter`` to ``model`` (a base model or a PeftModel) and activate it."""
    from peft import PeftModel

    a = check_adapter_dir(adapter)
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(str(a), adapter_name=adapter_name, is_trainable=False)
            model.set_adapter(adapter_name)
            return model
        return PeftModel.from_pretrained(model, str(a), adapter_name=adapter_name, is_trainable=False)
    except Exception as e:
        raise ModelLoadError(f"cannot load the adapter in {str(a)!r}: {type(e).__name__}: {e}") from e


def model_hash(path: str | Path) -> str:
    """12 hex digits identifying a model or adapter directory by content, not by where it lies.

    Hashes config.json / adapter_config.json and, of each weight file, its name, size, first MiB and 64
    evenly spaced 64 KiB samples: two checkpoints of one shape (a LoRA merged into every layer included)
    differ, the same model copied to another node or mount does not, and a multi-GB checkpoint costs a
    few MiB of reading.
    """
    p = Path(path).expanduser().resolve()
    h = hashlib.sha256()
    for name in ("config.json", "adapter_config.json"):
        if (p / name).is_file():
            h.update((p / name).read_bytes())
    weights = sorted(list(p.glob("*.safetensors")) + list(p.glob("pytorch_model*.bin")) + list(p.glob("*.bin")))
    for w in dict.fromkeys(weights):
        size = w.stat().st_size
        h.update(w.name.encode())
        h.update(str(size).encode())
        with open(w, "rb") as f:
            h.update(f.read(1 << 20))
            for k in range(64):
                f.seek(size * k // 64)
                h.update(f.read(1 << 16))
    return h.hexdigest()[:12]


def adapter_tag(path: str | Path, version: str | int) -> str:
    """``<version>@<8 hex digits of the adapter's content>``: the adapter part of a fingerprint."""
    return f"{version}@{model_hash(path)[:8]}"

