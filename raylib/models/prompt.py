"""The tactic-step prompt, shared verbatim by generation (every backend) and SFT training.

A prompt is a short fixed instruction, the proof state in a Lean block comment, and ends exactly where
the tactic begins (DeepSeek-Prover style, one tactic per step). The training target ("completion") is
the tactic followed by ``END_MARKER``; callers append the tokenizer's EOS token after it. Generation
stops at EOS or at ``END_MARKER`` and the text is cut there with ``extract_tactic``.

``END_MARKER`` is a blank line (``"\\n\\n"``) rather than a single newline, so a tactic that spans
several lines (``induction n with`` / ``| zero => ...``) survives generation intact; Lean tactic
blocks do not contain blank lines.

A state too long for the token limit is cut by the one truncation policy (``raylib.models.truncate``)
before it is formatted: ``fit_prompt`` keeps the ``⊢`` targets and case tags and drops hypotheses.

Templates substitute ``{state}`` with ``str.replace`` (not ``str.format``), so Lean braces such as
``{α : Type}`` in a template or a state need no escaping.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_TEMPLATE", "END_MARKER", "STATE_FIELD", "TemplateError",
    "validate_template", "format_prompt", "format_example", "extract_tactic", "fit_prompt", "split_prompt",
]

STATE_FIELD = "{state}"
END_MARKER = "\n\n"

DEFAULT_TEMPLATE = (
    "Complete the following Lean 4 proof: give the next tactic for the goals below.\n"
    "/- tactic state:\n"
    "{state}\n"
    "-/\n"
)


class TemplateError(ValueError):
    """A prompt template that cannot be used; the message says what is wrong and what is expected."""


def validate_template(template: str) -> str:
    """Return ``template`` if usable; raise TemplateError naming the problem otherwise."""
    if not isinstance(template, str):
        raise TemplateError(f"prompt template must be a string, got {type(template).__name__}")
    count = template.count(STATE_FIELD)
    if count == 0:
        raise TemplateError(
            f"prompt template has no {STATE_FIELD} placeholder (where the proof state goes): {template!r}")
    if count > 1:
        raise TemplateError(f"prompt template has {count} {STATE_FIELD} placeholders; expected exactly one")
    if template.endswith(STATE_FIELD):
        # Nothing separates the state from the tactic: the model could not tell where the tactic starts.
        raise TemplateError(
            f"prompt template ends with {STATE_FIELD}; put a separator (e.g. a newline) before the tactic")
    return template


def format_prompt(state: str, template: str | None = None) -> str:
    """The prompt for one proof state; the tactic is generated right after its last character."""
    tmpl = validate_template(DEFAULT_TEMPLATE if template is None else template)
    return tmpl.replace(STATE_FIELD, state.strip("\n"))


def format_example(state: str, tactic: str, template: str | None = None) -> tuple[str, str]:
    """(prompt, completion) for SFT: completion = stripped tactic + END_MARKER (EOS added by the caller)."""
    tac = tactic.strip()
    if not tac:
        raise ValueError("format_example: empty tactic")
    if END_MARKER in tac:
        # Collapse blank lines inside a tactic so the end marker stays unambiguous.
        tac = "\n".join(line for line in tac.split("\n") if line.strip())
    return format_prompt(state, template), tac + END_MARKER


def extract_tactic(completion: str) -> str:
    """The tactic in a generated completion: text before the first END_MARKER, stripped."""
    return completion.split(END_MARKER, 1)[0].strip()


def fit_prompt(state: str, tokenizer, max_tokens: int, template: str | None = None):
    """``(prompt, Truncated)``: the prompt for ``state`` cut by the truncation policy so that it has at most
    ``max_tokens`` tokens (special tokens included). Raises TruncationError when the template alone
    does not fit."""
    from raylib.models.truncate import truncate_state

    tmpl = validate_template(DEFAULT_TEMPLATE if template is None else template)
    t = truncate_state(state.strip("\n"), tokenizer, max_tokens, wrap=lambda s: format_prompt(s, tmpl))
    return format_prompt(t.text, tmpl), t


def split_prompt(prompt: str, template: str | None = None) -> str | None:
    """The state inside a prompt made by ``format_prompt`` with ``template``; None if it was not."""
    tmpl = validate_template(DEFAULT_TEMPLATE if template is None else template)
    head, _, tail = tmpl.partition(STATE_FIELD)
    if len(prompt) >= len(head) + len(tail) and prompt.startswith(head) and prompt.endswith(tail):
        return prompt[len(head):len(prompt) - len(tail)]
    return None
