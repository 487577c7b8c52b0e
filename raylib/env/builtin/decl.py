"""Commands: `theorem`/`lemma`/`example` declarations checked whole, `#print axioms`, plus `import`/`open`.

``run_command(text, names, fresh)`` returns messages (offset spans), sorries (goal + span) and
the names declared with the axioms each depends on (``names`` maps every known name to its axioms).
``#print axioms NAME`` answers as Lean does, with one info message.  Errors never escape as Python
exceptions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Optional

from .kernel import Goal, Hyp, LeanError, fresh_uid, to_formula
from .terms import Elab, check
from .syntax import ByTac, ParseError, Tok, lex
from .tactic_syntax import TacticParser
from .tactics import run, unsolved

log = logging.getLogger(__name__)

DECL_KEYWORDS = ("theorem", "lemma", "example")
COMMAND_KEYWORDS = DECL_KEYWORDS + ("import", "open", "set_option", "namespace", "section", "end",
                                    "variable", "def", "#check", "#eval", "axiom", "noncomputable",
                                    "universe", "instance", "abbrev", "#print")
KNOWN_MODULES = ("Init",)


@dataclass
class Msg:
    severity: str
    span: tuple[int, int]
    text: str


@dataclass
class CmdResult:
    messages: list[Msg] = field(default_factory=list)
    sorries: list[tuple[Goal, tuple[int, int]]] = field(default_factory=list)
    declared: list[str] = field(default_factory=list)
    axioms: dict[str, tuple[str, ...]] = field(default_factory=dict)  # declared name -> its axioms


def _is_cmd_start(t: Tok) -> bool:
    return t.kind == "id" and t.col == 0 and t.val in COMMAND_KEYWORDS


def run_command(text: str, names: Mapping[str, tuple[str, ...]], fresh: bool) -> CmdResult:
    res = CmdResult()
    toks = lex(text)
    i, first = 0, True
    known = dict(names)
    while toks[i].kind != "eof":
        t = toks[i]
        j = i + 1
        while toks[j].kind != "eof" and not _is_cmd_start(toks[j]):
            j += 1
        chunk = toks[i:j] + [Tok("eof", "", toks[j].start, toks[j].start, toks[j].line, 0)]
        if t.kind == "id" and t.val == "import":
            if not (fresh and first):
                res.messages.append(Msg("error", (t.start, t.end),
                                        "invalid 'import' command, it must be used in the beginning of the file"))
            else:
                for m in chunk[1:-1]:
                    mod = m.val
                    if mod.split(".")[0] not in KNOWN_MODULES:
                        root = mod.split(".")[0]
                        res.messages.append(Msg("error", (0, 0), f"unknown module prefix '{root}'\n\n"
                                                f"No directory '{root}' or file '{root}.olean' in the search "
                                                f"path entries:\n<built-in propositional environment>"))
        elif t.kind == "id" and t.val in ("open", "set_option", "namespace", "section", "end", "universe"):
            pass
        elif t.kind == "id" and t.val in DECL_KEYWORDS:
            _declaration(text, chunk, res, known)
        elif t.kind == "id" and t.val == "#print":
            _print_axioms(chunk, res, known)
        else:
            what = "identifier" if t.kind == "id" else f"token '{t.val}'"
            res.messages.append(Msg("error", (t.start, t.end), f"unexpected {what}; expected command"))
        first = False
        i = j
    return res


def axiom_report(name: str, axioms: tuple[str, ...]) -> str:
    """Lean's answer to ``#print axioms NAME``."""
    if not axioms:
        return f"'{name}' does not depend on any axioms"
    return f"'{name}' depends on axioms: [{', '.join(axioms)}]"


def _print_axioms(toks: list[Tok], res: CmdResult, known: dict) -> None:
    words = toks[:-1]
    span = (words[0].start, words[-1].end)
    if len(words) != 3 or words[1].val != "axioms" or words[2].kind != "id":
        res.messages.append(Msg("error", span, "the built-in environment supports only '#print axioms NAME'"))
        return
    name = words[2].val
    if name not in known:
        res.messages.append(Msg("error", (words[2].start, words[2].end), f"unknown constant '{name}'"))
        return
    res.messages.append(Msg("info", span, axiom_report(name, known[name])))


def _declaration(text: str, toks: list[Tok], res: CmdResult, known: dict) -> None:
    p = TacticParser(text, toks)
    kw = p.next()
    name_span = (kw.start, kw.end)
    name: Optional[str] = None
    try:
        if kw.val != "example":
            nt = p.next()
            if nt.kind != "id":
                raise p.unexpected(nt, "identifier")
            name, name_span = nt.val, (nt.start, nt.end)
        binders = []
        while p.at("(") or p.at("{"):
            open_t = p.next()
            close = ")" if open_t.val == "(" else "}"
            ids = []
            while p.peek().kind == "id":
                ids.append(p.next())
            if not ids:
                raise p.unexpected(p.peek(), "identifier")
            ty = None  # an untyped binder `(p q)`: in this logic its type can only be Prop
            if not p.at(close):
                p.expect(":")
                ty = p.term()
            p.expect(close)
            binders.append((ids, ty))
        p.expect(":", "':'")
        target_t = p.term()
        assign = p.expect(":=", "':='")
        p.stop_col, p.stop_line = 0, assign.line
        body = p.term()
        rest = p.peek()
        if rest.kind != "eof":
            raise p.unexpected(rest, "command")
    except ParseError as e:
        res.messages.append(Msg("error", (e.offset, e.offset), e.message))
        return
    el = Elab(src=text)
    try:
        ctx: tuple[Hyp, ...] = ()
        for ids, ty in binders:
            is_prop = ty is None or ty.__class__.__name__ == "Var" and getattr(ty, "name", "") == "Prop"
            f = None if is_prop else to_formula(ctx, ty, text)
            for it in ids:
                if is_prop:
                    uid = it.val if not any(h.uid == it.val for h in ctx) else fresh_uid(it.val)
                    ctx += (Hyp(uid, it.val, None),)
                else:
                    ctx += (Hyp(fresh_uid(it.val), it.val, f),)
        target = to_formula(ctx, target_t, text)
    except LeanError as e:
        res.messages.append(Msg("error", e.span or name_span, e.message))
        return
    if name is not None and name in known:
        res.messages.append(Msg("error", name_span, f"'{name}' has already been declared"))
        return
    goal = Goal(ctx, target)
    ok = True
    try:
        if isinstance(body, ByTac):
            goals: tuple[Goal, ...] = (goal,)
            for tac in body.tactics:
                goals = run(el, goals, tac)
            if goals:
                res.messages.append(Msg("error", (body.span[0], body.span[1]), unsolved(goals)))
                ok = False
        else:
            from .tactics import run_by
            el.run_by = run_by
            check(el, ctx, body, target)
    except LeanError as e:
        res.messages.append(Msg("error", e.span or body.span, e.message))
        ok = False
    except RecursionError:
        res.messages.append(Msg("error", body.span, "maximum recursion depth has been reached"))
        ok = False
    res.sorries.extend(el.sorries)
    if el.sorries:
        res.messages.append(Msg("warning", name_span, "declaration uses 'sorry'"))
    if ok and name is not None:
        axioms = el.axioms()
        known[name] = axioms
        res.declared.append(name)
        res.axioms[name] = axioms
    log.debug("declaration %s ok=%s sorries=%d", name, ok, len(el.sorries))


