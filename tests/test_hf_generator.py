"""HFGenerator on a tiny random Llama: candidates, left padding, exact log-probs, filtering, adapters."""

import math

import pytest
import torch

from raylib.env.filter import TacticFilter
from raylib.models.generator import Candidate, make_generator
from raylib.models.hf import HFGenerator
from raylib.models.loading import ModelLoadError
from raylib.models.prompt import format_prompt
from raylib.models.tiny import build_tiny_model, builtin_texts

STATES = [
    "p : Prop\n⊢ p → p",
    "p q r : Prop\nh₁ : p ∧ q ∧ r\nh₂ : ¬(q ∨ r) → ¬p\n⊢ (p → q) ∧ (q → r) ∧ ¬¬(r ∨ p ∨ q)",
    "p q : Prop\nh : p ∨ q\n⊢ q ∨ p",
]


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir):
    return tiny_model_dir


@pytest.fixture(scope="module")
def adapter_dir(tiny_adapter_dir):
    return tiny_adapter_dir


@pytest.fixture(scope="module")
def gen(model_dir):
    return HFGenerator(model_dir, device="cpu", max_batch_prompts=8)


def forward_logprob(g: HFGenerator, state: str, token_ids) -> float:
    """Unscaled log-prob of token_ids after the prompt, from one unpadded forward pass."""
    prompt = g.tokenizer(format_prompt(state))["input_ids"]
    ids = torch.tensor([prompt + list(token_ids)])
    with torch.no_grad():
        logp = g.model(input_ids=ids).logits[0].float().log_softmax(-1)
    return sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(token_ids))


def test_n_candidates_per_state(gen):
    out = gen.generate(STATES, n=4, temperature=1.0, max_tokens=8)
    assert len(out) == len(STATES)
    for cands in out:
        assert 1 <= len(cands) <= 4
        assert all(isinstance(c, Candidate) and c.tactic == c.tactic.strip() and c.tactic for c in cands)
        assert [c.logprob for c in cands] == sorted((c.logprob for c in cands), reverse=True)
    raw = gen.generate_samples(STATES, n=4, temperature=1.0, max_tokens=8)
    assert [len(r) for r in raw] == [4] * len(STATES)


def test_batched_greedy_equals_one_by_one(gen):
    """Different-length states in one left-padded batch decode exactly as they do alone."""
    batched = gen.generate_samples(STATES, n=1, temperature=0.0, max_tokens=12)
    for state, row in zip(STATES, batched):
        alone = gen.generate_samples([state], n=1, temperature=0.0, max_tokens=12)[0]
        assert row[0].token_ids == alone[0].token_ids
        assert row[0].logprob == pytest.approx(alone[0].logprob, abs=1e-3)


def test_chunking_does_not_change_greedy_results(model_dir, gen):
    small = HFGenerator(model_dir, device="cpu", max_batch_prompts=1, max_batch_tokens=64)
    a = gen.generate_samples(STATES, 1, 0.0, 6)
    b = small.generate_samples(STATES, 1, 0.0, 6)
    assert [r[0].token_ids for r in a] == [r[0].token_ids for r in b]


@pytest.mark.parametrize("temperature, n", [(0.7, 3), (1.0, 2), (0.0, 1), (0.0, 3)])
def test_logprobs_are_unscaled_model_logprobs(gen, temperature, n):
    rows = gen.generate_samples(STATES[:2], n=n, temperature=temperature, max_tokens=8)
    for state, row in zip(STATES[:2], rows):
        assert len(row) == n
        for s in row:
            assert math.isfinite(s.logprob) and s.logprob <= 0
            assert 1 <= len(s.token_ids) <= 8
            assert s.logprob == pytest.approx(forward_logprob(gen, state, s.token_ids), abs=2e-3)


@pytest.mark.parametrize("with_adapter", [False, True])
def test_prompt_read_once_draws_the_samples_of_the_plain_expansion(model_dir, adapter_dir, with_adapter):
    """n samples per prompt from one pass over each prompt (its KV cache repeated n times) are the samples
    generate's own expansion of the prompt draws for the same seed, with the same log-probs: left padding
    (prompts of different lengths in one batch), positions and row order carried over, LoRA included."""
    g = HFGenerator(model_dir, adapter=adapter_dir if with_adapter else None, device="cpu")

    def draw(shared: bool):
        g.share_prompt = shared
        g.reseed(3)
        return g.generate_samples(STATES, 4, 1.0, 12)

    plain, shared = draw(False), draw(True)
    assert [[s.token_ids for s in row] for row in shared] == [[s.token_ids for s in row] for row in plain]
    assert [s.logprob for row in shared for s in row] == pytest.approx([s.logprob for row in plain for s in row],
                                                                       abs=1e-4)
    assert len({s.token_ids for row in shared for s in row}) > 3  # real sampling, not one repeated answer


def test_beam_search_at_temperature_zero_gives_distinct_candidates(gen):
    rows = gen.generate_samples(STATES[:1], n=3, temperature=0.0, max_tokens=6)
    assert len({s.token_ids for s in rows[0]}) == 3
    greedy = gen.generate_samples(STATES[:1], n=1, temperature=0.0, max_tokens=6)[0][0]
    assert max(s.logprob for s in rows[0]) >= greedy.logprob - 1e-3


def _biased(gen: HFGenerator, token_id: int) -> HFGenerator:
    """A copy of the generator whose model always emits token_id (a large output bias)."""
    import copy

    g = copy.copy(gen)
    g.model = copy.deepcopy(gen.model)
    old = g.model.lm_head
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight)
        head.bias.zero_()
        head.bias[token_id] = 100.0
    g.model.lm_head = head
    return g


def test_generation_stops_at_end_marker_and_eos(gen):
    nl = gen.tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert len(nl) == 1
    g = _biased(gen, nl[0])
    s = g.generate_samples(STATES[:1], n=2, temperature=1.0, max_tokens=10)[0]
    assert all(x.token_ids == (nl[0], nl[0]) and x.text == "" for x in s)  # "\n\n" ends it
    assert g.generate(STATES[:1], 2, 1.0, 10) == [[]]  # empty tactics are dropped
    eos = gen.tokenizer.eos_token_id
    g = _biased(gen, eos)
    s = g.generate_samples(STATES, n=1, temperature=0.0, max_tokens=10)
    assert all(r[0].token_ids == (eos,) for r in s)


def test_dedupe_and_filter_applied(model_dir, monkeypatch):
    g = HFGenerator(model_dir, device="cpu", tactic_filter=TacticFilter())
    raw = [[("intro h", -3.0), (" intro h ", -1.0), ("sorry", -0.1), ("  ", -0.2), ("exact h", -2.0),
            ("set_option maxHeartbeats 0 in simp", -0.3)]]
    monkeypatch.setattr(g, "generate_raw", lambda states, n, t, m: raw)
    assert g.generate(["⊢ p"], 6, 1.0, 8) == [[Candidate("intro h", -1.0), Candidate("exact h", -2.0)]]
    assert g.generate(["⊢ p"], 1, 1.0, 8) == [[Candidate("intro h", -1.0)]]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_adapter_changes_fingerprint_and_outputs(model_dir, adapter_dir, dtype):
    """float32 serves the adapter merged into a fresh copy of the base (a plain model, the function of base +
    LoRA); bfloat16 keeps it apart through peft (a merge would round small updates away), old one dropped."""
    from peft import PeftModel

    from raylib.models.loading import attach_adapter, load_causal_lm

    g = HFGenerator(model_dir, device="cpu", dtype=dtype)
    base_fp = g.fingerprint()
    assert base_fp.endswith(f"/base/{dtype}")
    base = g.generate_samples(STATES, 1, 0.0, 8)
    g.load_adapter(adapter_dir, 1)
    v1 = g.fingerprint()
    assert v1 != base_fp and "/1@" in v1
    tuned = g.generate_samples(STATES, 1, 0.0, 8)
    assert [r[0].token_ids for r in tuned] != [r[0].token_ids for r in base]
    tol = 2e-3 if dtype == "float32" else 2e-2  # bfloat16: a batched and a lone forward round apart
    for state, r in zip(STATES, tuned):  # log-probs are those of the adapted model
        assert r[0].logprob == pytest.approx(forward_logprob(g, state, r[0].token_ids), abs=tol)
    g.load_adapter(adapter_dir, 2)  # hot swap: same weights, new version
    assert g.fingerprint() not in (base_fp, v1)
    assert [r[0].token_ids for r in g.generate_samples(STATES, 1, 0.0, 8)] == [r[0].token_ids for r in tuned]
    if dtype == "float32":
        assert not isinstance(g.model, PeftModel)
        apart = attach_adapter(load_causal_lm(model_dir, dtype=dtype, device="cpu"), adapter_dir).eval()
        ids = g.tokenizer([format_prompt(s) for s in STATES[:1]], return_tensors="pt")["input_ids"]
        with torch.no_grad():
            torch.testing.assert_close(g.model(input_ids=ids).logits, apart(input_ids=ids).logits,
                                       rtol=1e-4, atol=1e-4)
    else:
        assert len(g.model.peft_config) == 1  # the old adapter was dropped
    g.load_adapter(adapter_dir, 2)  # reloading the same version works too
    same = HFGenerator(model_dir, device="cpu", dtype=dtype, adapter=adapter_dir, adapter_version=2)
    assert same.fingerprint() == g.fingerprint()


def test_fingerprint_tells_models_and_dtypes_apart(tmp_path, model_dir):
    other = build_tiny_model(tmp_path / "other", texts=builtin_texts(n=20), seed=1,
                             hidden_size=128, heads=2, layers=2)
    a = HFGenerator(model_dir, device="cpu").fingerprint()
    assert HFGenerator(model_dir, device="cpu").fingerprint() == a
    assert HFGenerator(other, device="cpu").fingerprint() != a
    bf = HFGenerator(model_dir, device="cpu", dtype="bfloat16")
    assert bf.fingerprint() != a and bf.fingerprint().endswith("/bfloat16")
    assert bf.generate(STATES[:1], 2, 1.0, 4)[0]


def test_errors(model_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        HFGenerator(tmp_path / "missing")
    with pytest.raises(ValueError, match="placeholder"):
        HFGenerator(model_dir, device="cpu", template="no state")
    g = HFGenerator(model_dir, device="cpu")
    with pytest.raises(ValueError, match="temperature"):
        g.generate(STATES, 1, -1.0, 4)
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        g.load_adapter(tmp_path, 1)


def test_from_config(model_dir):
    from raylib.config import load_config

    cfg = load_config(overrides=[f"model.path={model_dir}", "model.device=cpu",
                                 "generation.max_batch_prompts=2"])
    g = make_generator(cfg.model, cfg.generation, TacticFilter())
    assert isinstance(g, HFGenerator) and g.max_batch_prompts == 2 and g.tactic_filter is not None
    out = g.generate(STATES, cfg.search.num_candidates, cfg.search.temperature, 4)
    assert len(out) == len(STATES)


def test_reseed_makes_sampling_repeatable_and_seeds_differ(gen):
    """Evaluation attempts differ only by seed: the same seed gives the same samples, another seed others."""
    def draw(seed):
        gen.reseed(seed)
        return [[s.text for s in row] for row in gen.generate_samples(STATES, 4, 1.0, 16)]

    first, again, other = draw(7), draw(7), draw(8)
    assert first == again
    assert first != other
