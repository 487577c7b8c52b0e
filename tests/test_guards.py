"""Each training guard driven into failure, and a healthy run where none fires (no Ray)."""

import math

import pytest
import torch

from raylib.models.prompt import format_example, format_prompt
from raylib.models.tiny import init_tiny_model, train_tokenizer
from raylib.train.config import SFTSection
from raylib.train.guards import (
    CollapseGuard,
    GradNormGuard,
    GuardStop,
    analyze_probe,
    check_plan,
    classify_output,
    probe_generate,
)
from raylib.train.schedule import plan_steps
from raylib.train.sft import Collator, sft_step

STATES = ["p : Prop\nhp : p\n⊢ p", "p q : Prop\n⊢ p ∧ q → q", "p q : Prop\nh : p ∨ q\n⊢ q ∨ p",
          "p : Prop\n⊢ ¬¬p → p"]
TACTICS = ["exact hp", "intro h", "rcases h with hp | hq", "by_cases hp : p"]


@pytest.fixture(scope="module")
def tok():
    texts = [a + b for s, t in zip(STATES, TACTICS) for a, b in [format_example(s, t)]] * 20
    return train_tokenizer(texts, vocab_size=300)


def _model(tok):
    return init_tiny_model(tok, hidden_size=64, layers=1, heads=1, intermediate=128)


def _batch(tok):
    pairs = [format_example(s, t) for s, t in zip(STATES, TACTICS)]
    return Collator(tok, 128)({"prompt": [p for p, _ in pairs], "completion": [c for _, c in pairs]})


def test_plan_zero_lr_and_low_coverage_warn_and_can_stop():
    sft = SFTSection(lr=0.0, max_steps=10, batch_size=8)
    rep = check_plan(plan_steps(10_000, sft), sft)
    assert any("peak LR is 0" in w for w in rep.warnings)
    assert any("coverage" in w for w in rep.warnings) and rep.coverage == pytest.approx(0.008)
    assert rep.metrics()["plan_warnings"] == 2
    rep.enforce(stop=False)
    with pytest.raises(GuardStop, match="plan guard"):
        rep.enforce(stop=True)


def test_plan_dead_lr_share():
    sft = SFTSection(lr=1e-3, max_steps=100, min_lr_ratio=0.0, warmup_ratio=0.0,
                     guards={"lr_floor_fraction": 0.6, "lr_floor_max_share": 0.4})
    rep = check_plan(plan_steps(100, sft), sft)
    assert rep.dead_lr_share > 0.4 and any("below 60% of the peak" in w for w in rep.warnings)


def test_frozen_parameters_trip_the_grad_norm_guard(tok):
    model = _model(tok)
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    guard = GradNormGuard(patience=3)
    batch = _batch(tok)
    with pytest.raises(GuardStop) as e:
        for step in range(1, 10):
            loss, tokens, norm = sft_step(model, [batch], params)
            assert norm == 0.0 and tokens > 0 and math.isfinite(loss)
            guard.update(step, norm)
    assert e.value.step == 3 and "zero or NaN for 3 consecutive" in str(e.value)


def test_nan_grad_norm_trips_and_a_good_step_resets():
    g = GradNormGuard(patience=2)
    g.update(1, float("nan"))
    g.update(2, 0.5)  # resets the streak
    g.update(3, float("inf"))
    with pytest.raises(GuardStop, match="NaN"):
        g.update(4, float("nan"))


def test_classify_outputs():
    assert classify_output("\n\n") == "empty"
    assert classify_output(" \t \n\n") == "whitespace"
    assert classify_output("apply h; apply h; apply h; apply h") == "repetitive"
    assert classify_output("))))))))))))))))") == "repetitive"
    assert classify_output("obtain ⟨hp, hq⟩ := h\n\n") == "ok"
    assert classify_output("exact h") == "ok"


def test_newline_model_collapses_and_names_last_healthy(tok):
    model = _model(tok)
    nl = tok("\n", add_special_tokens=False)["input_ids"][0]

    def force_newline(module, inputs, output):
        forced = torch.full_like(output, -1e4)
        forced[..., nl] = 1e4
        return forced

    model.lm_head.register_forward_hook(force_newline)
    prompts = [format_prompt(s) for s in STATES]
    greedy, sampled = probe_generate(model, tok, prompts, samples=2, max_tokens=6)
    assert all(set(g) == {"\n"} for g in greedy)
    guard = CollapseGuard(SFTSection().guards)
    healthy = analyze_probe(TACTICS, [TACTICS[::-1]] * 4)
    # the worker's order at an evaluated checkpoint step: probe (check) first, then save (note_checkpoint)
    assert guard.check(healthy, 10)["probe_healthy"] == 1
    guard.note_checkpoint(10, "checkpoint_000010")
    assert guard.last_healthy == "checkpoint_000010"
    guard.note_checkpoint(15, "checkpoint_000015")  # saved after the last probe: not known healthy
    assert guard.last_healthy == "checkpoint_000010"
    resumed = CollapseGuard(SFTSection().guards)  # a resumed worker restores the record from the checkpoint
    resumed.load_state(guard.state())
    rep = analyze_probe(greedy, sampled)
    assert rep.empty_share == 1.0
    for g in (guard, resumed):
        with pytest.raises(GuardStop) as e:
            g.check(rep, 20)
        assert e.value.last_healthy == "checkpoint_000010" and "empty or whitespace" in str(e.value)


def test_plan_warns_when_no_held_out_rows_feed_the_probe():
    sft = SFTSection(max_steps=10, batch_size=8)
    plan = plan_steps(80, sft)
    assert check_plan(plan, sft, held_out=20).warnings == []
    rep = check_plan(plan, sft, held_out=0)
    assert len(rep.warnings) == 1 and "no held-out examples" in rep.warnings[0] and "probe_states=8" in rep.warnings[0]
    with pytest.raises(GuardStop, match="generation probe"):
        rep.enforce(stop=True)
    off = SFTSection(max_steps=10, batch_size=8, guards={"probe_states": 0})
    assert check_plan(plan, off, held_out=0).warnings == []


class _CharTokenizer:
    """One id per character (prompt ids 1000+, completion ids 2000+), EOS 2: exact token counts."""
    pad_token_id, eos_token_id = 0, 2

    def __call__(self, text, add_special_tokens=True):
        base = 2000 if text.startswith("C") else 1000
        return {"input_ids": [base + i for i in range(len(text))]}


def test_collator_cuts_long_completion_without_duplicating_a_short_prompt():
    col = Collator(_CharTokenizer(), max_len=32, tail=8)
    ids, labels = col.encode("P" * 5, "C" * 100)  # short prompt, long completion: the prompt stays whole
    assert ids[:5] == list(range(1000, 1005)) and labels[:5] == [-100] * 5
    assert ids[5:] == list(range(2000, 2027)) and len(ids) == 32 and col.truncated == 1
    ids, labels = col.encode("P" * 40, "C" * 100)  # both long: each keeps half, the prompt cut by the policy
    assert len(ids) == 32 and labels[:16] == [-100] * 16 and ids[16:] == list(range(2000, 2016))
    ids, _ = col.encode("P" * 40, "C" * 3)  # short completion (+ EOS) kept whole; the prompt's line is cut
    assert ids[-4:] == [2000, 2001, 2002, 2] and len(ids) == len("⋯ 1 hypothesis cut") + 4
    ids, _ = col.encode("P" * 10, "C" * 10)  # fits: untouched
    assert ids == list(range(1000, 1010)) + list(range(2000, 2010)) + [2] and col.truncated == 3


def test_healthy_run_fires_no_guard(tok):
    torch.manual_seed(0)
    model = _model(tok)
    sft = SFTSection(lr=1e-2, max_steps=80, batch_size=4, warmup_ratio=0.0, min_lr_ratio=0.5)
    rep = check_plan(plan_steps(4, sft), sft)
    assert rep.warnings == []
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=sft.lr)
    guard = GradNormGuard(sft.guards.grad_patience)
    batch = _batch(tok)
    losses = []
    for step in range(1, sft.max_steps + 1):
        loss, _, norm = sft_step(model, [batch], params)
        guard.update(step, norm)
        opt.step()
        opt.zero_grad()
        losses.append(loss)
    assert losses[-1] < losses[0] / 4
    greedy, sampled = probe_generate(model, tok, [format_prompt(s) for s in STATES], samples=2, max_tokens=32)
    assert [g.split("\n\n")[0] for g in greedy] == TACTICS
    assert CollapseGuard(sft.guards).check(analyze_probe(greedy, sampled), 80)["probe_healthy"] == 1
