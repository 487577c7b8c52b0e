"""The tiny built-in model: tokenizer, config shapes, save → load round trip, load errors."""

import json

import pytest
import torch

from raylib.models.loading import (ModelLoadError, check_adapter_dir, load_causal_lm, load_tokenizer,
                                   resolve_device)
from raylib.models.prompt import format_example
from raylib.models.tiny import (LEAN_SYMBOLS, build_tiny_model, builtin_texts, init_tiny_model,
                                save_model, tiny_llama_config, train_tokenizer)

LEAN = "p q : Prop\nh✝ : ¬p ∧ (q ∨ p)\n⊢ (p → q) ↔ ⟨h.1, h.2⟩ ∨ ⊥ ← ∀ x, ∃ y, x ≠ y"


@pytest.fixture(scope="module")
def texts():
    return builtin_texts(n=60)


@pytest.fixture(scope="module")
def tokenizer(texts):
    return train_tokenizer(texts)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, texts):
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), texts=texts, vocab_size=400,
                            hidden_size=128, heads=2, layers=2)


def test_tokenizer_round_trips_lean_unicode(tokenizer):
    for text in (LEAN, LEAN_SYMBOLS, "¬ ∧ ∨ → ↔ ⊢ ⟨ ⟩ ✝", "emoji 🦆 and 中文 are bytes too"):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text


def test_tokenizer_special_tokens(tokenizer):
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token) == ("<pad>", "<s>", "</s>")
    assert len({tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}) == 3
    ids = tokenizer("⊢ p")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.padding_side == "left"
    assert len(tokenizer) <= 512


def test_tokenizer_learns_merges_for_lean_symbols(tokenizer):
    # Each 3-byte symbol should be one token, not three byte tokens.
    assert len(tokenizer("⊢", add_special_tokens=False)["input_ids"]) == 1
    prompt, completion = format_example("p : Prop\n⊢ p → p", "intro h")
    assert len(tokenizer(prompt + completion)["input_ids"]) < len((prompt + completion).encode())


def test_vocab_size_too_small_is_refused():
    with pytest.raises(ValueError, match="byte alphabet"):
        train_tokenizer(["a"], vocab_size=100)


def test_default_config_shapes():
    cfg = tiny_llama_config(512)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (256, 4, 4)
    assert cfg.head_dim == cfg.hidden_size // cfg.num_attention_heads == 64
    assert cfg.max_position_embeddings == 1024
    with pytest.raises(ValueError, match="divisible"):
        tiny_llama_config(512, hidden_size=250, heads=4)


def test_model_shapes_and_seeded_init(tokenizer):
    m = init_tiny_model(tokenizer, hidden_size=128, heads=2, layers=2)
    assert m.config.head_dim == 64
    assert m.config.vocab_size == len(tokenizer)
    x = torch.tensor([tokenizer(LEAN)["input_ids"]])
    with torch.no_grad():
        logits = m(input_ids=x).logits
    assert logits.shape == (1, x.shape[1], len(tokenizer))
    again = init_tiny_model(tokenizer, hidden_size=128, heads=2, layers=2)
    other = init_tiny_model(tokenizer, seed=1, hidden_size=128, heads=2, layers=2)
    w = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(m.state_dict()[w], again.state_dict()[w])
    assert not torch.equal(m.state_dict()[w], other.state_dict()[w])


def test_forward_backward_on_a_training_batch(tokenizer):
    m = init_tiny_model(tokenizer, hidden_size=128, heads=2, layers=2)
    m.train()
    x = torch.randint(3, len(tokenizer), (4, 64))
    loss = m(input_ids=x, labels=x).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert m.model.embed_tokens.weight.grad is not None


def test_save_load_round_trip(model_dir, tokenizer):
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (model_dir / name).is_file()
    tok = load_tokenizer(model_dir)
    assert tok.padding_side == "left"
    assert tok.decode(tok(LEAN, add_special_tokens=False)["input_ids"]) == LEAN
    m = load_causal_lm(model_dir, dtype="float32", device="cpu")
    assert not m.training
    assert m.config.head_dim == 64
    m16 = load_causal_lm(model_dir, dtype="bfloat16", device="cpu")
    assert next(m16.parameters()).dtype == torch.bfloat16
    x = torch.tensor([tok("⊢ p → p")["input_ids"]])
    with torch.no_grad():
        a, b = m(input_ids=x).logits, m16(input_ids=x).logits.float()
    assert torch.allclose(a, b, atol=0.1)


def test_save_model_then_reload_gives_same_logits(tmp_path, tokenizer):
    m = init_tiny_model(tokenizer, hidden_size=128, heads=2, layers=2)
    save_model(m, tokenizer, tmp_path / "m")
    m2 = load_causal_lm(tmp_path / "m")
    x = torch.tensor([tokenizer(LEAN)["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(m(input_ids=x).logits, m2(input_ids=x).logits, atol=1e-5)


def test_missing_dir_error_names_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError, match="does not exist") as e:
        load_causal_lm(missing)
    assert str(missing) in str(e.value)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_tokenizer(missing)


def test_invalid_dir_error_names_expected_files(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelLoadError) as e:
        load_causal_lm(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "weights" in msg and "config.json" not in msg.split("missing")[1]
    with pytest.raises(ModelLoadError, match="tokenizer.json"):
        load_tokenizer(tmp_path)
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        check_adapter_dir(tmp_path)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_causal_lm(f)


def test_bad_dtype_and_device(model_dir):
    with pytest.raises(ModelLoadError, match="dtype 'float8'"):
        load_causal_lm(model_dir, dtype="float8")
    with pytest.raises(ModelLoadError, match="device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no GPU"):
            resolve_device("cuda")
        assert resolve_device("auto") == "cpu"
