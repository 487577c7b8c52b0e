"""The tiny built-in model: a byte-level BPE tokenizer trained locally and a small random Llama.

It lets the whole loop (generation, SFT/LoRA, EBM encoding, vLLM serving) run on a laptop CPU.
Shapes are chosen so vLLM serves it too: head_dim = hidden_size / heads = 64 (vLLM refuses 16).
With the defaults (hidden 256, 4 layers, intermediate 512, vocab 512, ~2.8M parameters) a
forward+backward pass on a 16 x 256 token batch takes ~0.55 s on two CPU cores (steady state).

Nothing here touches the network: the tokenizer is trained from the given texts with ``tokenizers``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

from raylib.models.prompt import DEFAULT_TEMPLATE, END_MARKER

log = logging.getLogger(__name__)

__all__ = [
    "PAD_TOKEN", "BOS_TOKEN", "EOS_TOKEN", "LEAN_SYMBOLS",
    "train_tokenizer", "tiny_llama_config", "init_tiny_model", "save_model", "builtin_texts",
    "build_tiny_model",
]

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN]  # ids 0, 1, 2
# Lean symbols that must round-trip; they also seed the BPE training so each tends to get one token.
LEAN_SYMBOLS = "¬ ∧ ∨ → ↔ ⊢ ⟨ ⟩ ✝ ← ∀ ∃ λ ↦ · ⊥ ⊤ ≠ ≤ ≥ ∘ × ₁ ₂ ₃ ₄ ₅ ₆ α β"
MODEL_MAX_LENGTH = 1024


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512, min_frequency: int = 2,
                    model_max_length: int = MODEL_MAX_LENGTH):
    """Train a byte-level BPE tokenizer on ``texts``; return a ``PreTrainedTokenizerFast``.

    Every byte is in the base alphabet, so any Unicode text round-trips through encode/decode.
    Special tokens: ``<pad>`` (0), ``<s>`` (1, prepended to every encoded text like Llama's
    tokenizers do; pass ``add_special_tokens=False`` to skip it) and ``</s>`` (2, EOS).
    Padding side is left (what batched generation needs); training code may switch it.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} is below the byte alphabet plus special tokens "
                         f"({len(alphabet) + len(SPECIAL_TOKENS)})")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), initial_alphabet=alphabet,
                                  show_progress=False)

    def corpus() -> Iterable[str]:
        # The prompt scaffold and the Lean symbols are always in the training data.
        symbols = LEAN_SYMBOLS.split()
        for _ in range(max(20, min_frequency)):  # each symbol, bare and after a space, gets its merges
            yield DEFAULT_TEMPLATE.replace("{state}", " ".join(symbols)) + END_MARKER
            yield "\n".join(symbols)
        yield from texts

    tok.train_from_iterator(corpus(), trainer=trainer)
    bos_id = tok.token_to_id(BOS_TOKEN)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B", special_tokens=[(BOS_TOKEN, bos_id)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
        padding_side="left", model_max_length=model_max_length, clean_up_tokenization_spaces=False)
    log.info("trained byte-level BPE tokenizer: vocab %d (asked %d)", len(fast), vocab_size)
    return fast


def tiny_llama_config(vocab_size: int, hidden_size: int = 256, layers: int = 4, heads: int = 4,
                      intermediate: int | None = None, max_position_embeddings: int = MODEL_MAX_LENGTH,
                      **overrides: Any):
    """A small ``LlamaConfig``; head_dim = hidden_size // heads must be 64 for vLLM to serve it."""
    from transformers import LlamaConfig

    if hidden_size % heads:
        raise ValueError(f"hidden_size {hidden_size} is not divisible by heads {heads}")
    head_dim = hidden_size // heads
    if head_dim != 64:
        log.warning("head_dim %d: vLLM serves head_dim 64 (16 is refused); HF generation still works",
                    head_dim)
    if intermediate is None:
        intermediate = 2 * hidden_size  # below Llama's 8/3 ratio: keeps a CPU training step fast
    fields: dict[str, Any] = dict(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        head_dim=head_dim, max_position_embeddings=max_position_embeddings, rms_norm_eps=1e-5,
        tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    fields.update(overrides)
    return LlamaConfig(**fields)


def init_tiny_model(tokenizer, seed: int = 0, **config_overrides: Any):
    """A randomly initialised ``LlamaForCausalLM`` matching ``tokenizer`` (seeded, float32, eval mode).

    ``config_overrides`` go to ``tiny_llama_config`` (hidden_size, layers, heads, intermediate, ...).
    """
    import torch
    from transformers import LlamaForCausalLM

    cfg = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    cfg.update(config_overrides)
    config = tiny_llama_config(len(tokenizer), **cfg)
    with torch.random.fork_rng(devices=[]):  # seed locally, leave the caller's RNG untouched
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.eval()
    n = sum(p.numel() for p in model.parameters())
    log.info("tiny Llama: %d parameters, hidden %d, layers %d, heads %d", n, config.hidden_size,
             config.num_hidden_layers, config.num_attention_heads)
    return model


def save_model(model, tokenizer, path: str | Path) -> Path:
    """Save model (safetensors + config.json + generation_config.json) and tokenizer files to ``path``."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    log.info("saved model and tokenizer to %s", out)
    return out


def builtin_texts(n: int = 300, seed: int = 0) -> list[str]:
    """Tokenizer training texts from the built-in environment: theorem statements and oracle proofs."""
    from raylib.env.builtin.corpus import builtin_theorems, oracle_proof

    theorems = builtin_theorems("textbook") + builtin_theorems("generated", n, seed)
    texts = [t.statement for t in theorems]
    texts += ["\n".join(oracle_proof(t.statement)) for t in theorems]
    return texts


def build_tiny_model(path: str | Path, texts: Iterable[str] | None = None, vocab_size: int = 512,
                     seed: int = 0, **config_overrides: Any) -> Path:
    """Train a tokenizer (on ``texts``, default ``builtin_texts()``), init a tiny Llama, save both to ``path``."""
    tok = train_tokenizer(builtin_texts() if texts is None else texts, vocab_size=vocab_size)
    model = init_tiny_model(tok, seed=seed, **config_overrides)
    return save_model(model, tok, path)
