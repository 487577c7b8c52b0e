"""The tactic-step prompt shared by generation and SFT training."""

import pytest

from raylib.models.prompt import (DEFAULT_TEMPLATE, END_MARKER, TemplateError, extract_tactic,
                                  format_example, format_prompt, validate_template)

STATE = "p q : Prop\nh : p ∧ q\n⊢ q ∧ p"


def test_default_prompt_holds_state_and_ends_where_tactic_begins():
    prompt = format_prompt(STATE)
    assert STATE in prompt
    assert prompt == DEFAULT_TEMPLATE.replace("{state}", STATE)
    assert prompt.endswith("-/\n")
    assert "/-" in prompt and prompt.index("/-") < prompt.index(STATE)


def test_state_trailing_newlines_do_not_change_prompt():
    assert format_prompt(STATE + "\n\n") == format_prompt(STATE)


def test_example_is_prompt_plus_tactic_and_end_marker():
    prompt, completion = format_example(STATE, "  exact ⟨h.2, h.1⟩ \n")
    assert prompt == format_prompt(STATE)
    assert completion == "exact ⟨h.2, h.1⟩" + END_MARKER
    assert extract_tactic(completion) == "exact ⟨h.2, h.1⟩"


def test_multiline_tactic_survives_the_end_marker():
    tac = "cases h with\n| inl hp => exact hp\n| inr hq => exact hq"
    _, completion = format_example(STATE, tac)
    assert extract_tactic(completion + "garbage after") == tac
    # A blank line inside a tactic would be read as the end: it is collapsed.
    _, completion = format_example(STATE, "constructor\n\nexact h")
    assert extract_tactic(completion) == "constructor\nexact h"


def test_empty_tactic_rejected():
    with pytest.raises(ValueError, match="empty"):
        format_example(STATE, "  \n")


def test_custom_template_with_lean_braces_needs_no_escaping():
    tmpl = "-- goal {α : Type}\n{state}\n-- tactic:\n"
    assert format_prompt("⊢ p", tmpl) == "-- goal {α : Type}\n⊢ p\n-- tactic:\n"
    assert format_example("⊢ {x}", "rfl", tmpl)[0] == "-- goal {α : Type}\n⊢ {x}\n-- tactic:\n"


@pytest.mark.parametrize("bad, words", [
    ("no placeholder here", "no {state} placeholder"),
    ("{state} and {state}\n", "2 {state} placeholders"),
    ("state: {state}", "ends with {state}"),
])
def test_bad_templates_give_clear_errors(bad, words):
    with pytest.raises(TemplateError) as e:
        format_prompt(STATE, bad)
    assert words in str(e.value)
    with pytest.raises(TemplateError):
        validate_template(bad)


def test_template_error_is_a_value_error_for_config_validation():
    assert issubclass(TemplateError, ValueError)


def test_extract_tactic_cuts_at_first_marker():
    assert extract_tactic("intro h" + END_MARKER + "exact h" + END_MARKER) == "intro h"
    assert extract_tactic("  intro h  ") == "intro h"
