"""The one truncation policy for state text, with the tiny model's real tokenizer, and its three users:
the generator prompt (HF; vLLM is checked in test_vllm_backend.py), the SFT collator and the encoder."""

import re

import numpy as np
import pytest

from raylib.models.loading import load_tokenizer
from raylib.models.prompt import fit_prompt, format_prompt
from raylib.models.truncate import CUT_MARK, TruncationError, count_tokens, parse_goals, truncate_state


def _goal(tag, n, target, prefix="h"):
    hyps = [f"{prefix}{i} : p{i} ∧ q{i} → r{i} ∨ ¬s{i}" for i in range(n)]
    hyps.insert(1, "    ∨ (a ∧ b)")  # an indented continuation belongs to the hypothesis above it
    head = [f"case {tag}"] if tag else []
    return "\n".join(head + ["p q r s a b : Prop"] + hyps + [target, "    ∧ (q ∨ p)"])


LONG = "\n\n".join([_goal("inl", 40, "⊢ p ∧ (q → r)"), _goal("inr", 30, "⊢ q ∨ ¬p", "k"),
                    _goal(None, 30, "⊢ s")])
TARGETS = ["⊢ p ∧ (q → r)\n    ∧ (q ∨ p)", "⊢ q ∨ ¬p\n    ∧ (q ∨ p)", "⊢ s\n    ∧ (q ∨ p)"]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def _hyp_count(text):
    return sum(len(g.hyps) for g in parse_goals(text)) - text.count("hypothes")


def test_parse_goals_keeps_tags_targets_and_continuations():
    goals = parse_goals(LONG)
    assert [g.tags for g in goals] == [["case inl"], ["case inr"], []]
    assert [g.target for g in goals] == TARGETS
    assert len(goals[0].hyps) == 41 and goals[0].hyps[1].endswith("\n    ∨ (a ∧ b)")


def test_fitting_state_is_untouched(tok):
    t = truncate_state(LONG, tok, count_tokens(tok, LONG))
    assert t.text == LONG and t.cut == 0 and not t.truncated


@pytest.mark.parametrize("limit", [900, 400, 150])
def test_long_state_keeps_every_target_and_tag_and_counts_the_cut(tok, limit):
    assert count_tokens(tok, LONG) > 1500
    t = truncate_state(LONG, tok, limit)
    assert count_tokens(tok, t.text) <= limit
    assert t.truncated and not t.target_cut
    for piece in TARGETS + ["case inl", "case inr"]:
        assert piece in t.text
    marks = [int(n) for n in re.findall(r"⋯ (\d+) hypothes[ie]s cut", t.text)]
    assert sum(marks) == t.cut == _hyp_count(LONG) - _hyp_count(t.text)
    assert t.cut < _hyp_count(LONG)  # only as much as needed: some hypotheses stay


def test_middle_hypotheses_of_the_first_goal_go_last_ends_stay(tok):
    t = truncate_state(LONG, tok, 400)
    first = parse_goals(t.text)[0]
    assert first.hyps[0] == "p q r s a b : Prop" and first.hyps[-1].startswith("h39 :")  # both ends kept
    assert "h20 :" not in first.hyps and any("hypothes" in h for h in first.hyps)  # the middle went
    assert len(parse_goals(t.text)[2].hyps) == 1  # later goals lost all theirs first (one marker left)


def test_targets_too_long_are_cut_by_characters_marked(tok):
    state = "case big\nh : p\n⊢ " + " ∧ ".join(f"p{i}" for i in range(400))
    t = truncate_state(state, tok, 60)
    assert t.target_cut and t.text.endswith(CUT_MARK) and t.text.startswith("case big\n")
    assert count_tokens(tok, t.text) <= 60 and "⊢ p0 ∧ p1" in t.text
    with pytest.raises(TruncationError, match="cannot hold even"):
        truncate_state(state, tok, 1)


def test_fit_prompt_measures_the_whole_prompt(tok):
    prompt, t = fit_prompt(LONG, tok, 300)
    assert count_tokens(tok, prompt) <= 300 < count_tokens(tok, format_prompt(LONG))
    assert prompt == format_prompt(t.text) and all(x in prompt for x in TARGETS)


def test_hf_generator_cuts_prompts_by_the_policy(tiny_model_dir, tok):
    from raylib.models.hf import HFGenerator

    gen = HFGenerator(tiny_model_dir, device="cpu", max_prompt_tokens=256)
    assert gen.prompt_budget(8) == 256 and gen.prompt_budget(1000) == 1024 - 1000  # the model's context bounds it
    prompts = gen._prompts([LONG, "⊢ p"], 8)
    assert prompts == [fit_prompt(LONG, tok, 256)[0], format_prompt("⊢ p")]
    out = gen.generate_raw([LONG], 2, 1.0, 4)
    assert len(out[0]) == 2 and gen.truncation.texts == 2 and gen.truncation.hypotheses > 0


def test_collator_cuts_the_state_inside_the_prompt_by_the_policy(tok):
    from raylib.models.prompt import format_example
    from raylib.train.sft import Collator

    col = Collator(tok, max_len=300)
    prompt, completion = format_example(LONG, "exact ⟨hp, hq⟩")
    ids, labels = col.encode(prompt, completion)
    n_completion = sum(1 for x in labels if x != -100)
    assert len(ids) <= 300 and col.truncated == 1 and col.cuts.hypotheses > 0
    expected = fit_prompt(LONG, tok, 300 - n_completion)[0]
    assert ids[:len(ids) - n_completion] == tok(expected)["input_ids"]  # same policy as the generator prompt
    assert all(x in tok.decode(ids) for x in ("⊢ p ∧ (q → r)", "⊢ q ∨ ¬p", "⊢ s"))


def test_encoder_cuts_long_states_by_the_policy(tiny_model_dir, tok):
    from raylib.models.encoder import StateEncoder

    enc = StateEncoder(tiny_model_dir, device="cpu", max_length=200)
    ids = enc.token_ids([LONG, "⊢ p"])
    cut = truncate_state(LONG, tok, 200)
    assert ids[0] == tok(cut.text)["input_ids"] and len(ids[0]) <= 200
    assert enc.truncation.texts == 1 and enc.truncation.hypotheses == cut.cut
    np.testing.assert_allclose(enc.encode([LONG]), enc.encode([cut.text]), atol=1e-5)
