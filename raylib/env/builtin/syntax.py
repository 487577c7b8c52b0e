"""Lexer and parsers for the built-in environment: terms, tactics, rcases patterns.

Positions are character offsets into the source text; the REPL layer turns them into
(line, column).  Terms and formulas share one grammar (in Lean a proposition is a term).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from .formula import is_ident_char, is_ident_start


class ParseError(Exception):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Tok:
    kind: str  # 'id' | 'sym' | 'eof'
    val: str
    start: int
    end: int
    line: int
    col: int


_SYMS = [
    "<;>", "<->", "->", "/\\", "\\/", ":=", "=>", "↔", "→", "∧", "∨", "¬", "(", ")", "⟨", "⟩",
    ",", ":", "|", ";", "·", "{", "}", "[", "]", "↦", "λ", "-", ".", "@", "?", "⊢", "=", "+",
]
_NORMAL = {"<->": "↔", "->": "→", "/\\": "∧", "\\/": "∨", "↦": "=>", ".": "·"}


def lex(text: str, start: int = 0, end: Optional[int] = None) -> list[Tok]:
    end = len(text) if end is None else end
    toks: list[Tok] = []
    i = start
    line_no = text.count("\n", 0, start) + 1
    line_start = text.rfind("\n", 0, start) + 1
    while i < end:
        c = text[i]
        if c == "\n":
            i += 1
            line_no += 1
            line_start = i
            continue
        if c in " \t\r":  # Lean's whitespace; any other space or control character is a bad token
            i += 1
            continue
        if text.startswith("--", i):
            while i < end and text[i] != "\n":
                i += 1
            continue
        if text.startswith("/-", i):
            j = text.find("-/", i + 2)
            j = end if j < 0 else j + 2
            line_no += text.count("\n", i, j)
            nl = text.rfind("\n", i, j)
            if nl >= 0:
                line_start = nl + 1
            i = j
            continue
        col = i - line_start
        if c == "#" and i + 1 < end and is_ident_start(text[i + 1]):  # a `#print`-style command word
            j = i + 1
            while j < end and is_ident_char(text[j]):
                j += 1
            toks.append(Tok("id", text[i:j], i, j, line_no, col))
            i = j
            continue
        if is_ident_start(c) or c == "_":
            j = i + 1
            while j < end:
                if is_ident_char(text[j]):
                    j += 1
                elif text[j] == "." and j + 1 < end and (is_ident_start(text[j + 1]) or text[j + 1].isdigit()):
                    j += 1
                else:
                    break
            toks.append(Tok("id", text[i:j], i, j, line_no, col))
            i = j
            continue
        if c.isdigit():
            j = i
            while j < end and text[j].isdigit():
                j += 1
            toks.append(Tok("num", text[i:j], i, j, line_no, col))
            i = j
            continue
        for s in _SYMS:
            if text.startswith(s, i):
                # a '.' glued to the previous token is a projection
                if s == "." and toks and toks[-1].end == i and i + 1 < end and (is_ident_start(text[i + 1]) or text[i + 1].isdigit()):
                    j = i + 1
                    while j < end and is_ident_char(text[j]):
                        j += 1
                    toks.append(Tok("proj", text[i + 1:j], i, j, line_no, col))
                    i = j
                    break
                toks.append(Tok("sym", _NORMAL.get(s, s), i, i + len(s), line_no, col))
                i += len(s)
                break
        else:
            toks.append(Tok("bad", c, i, i + 1, line_no, col))
            i += 1
    toks.append(Tok("eof", "", end, end, line_no + 1, 0))
    return toks


# ---------------------------------------------------------------------------
# term AST

@dataclass(frozen=True)
class Var:
    name: str
    span: tuple[int, int]


@dataclass(frozen=True)
class App:
    fn: "Term"
    args: tuple["Term", ...]
    span: tuple[int, int]


@dataclass(frozen=True)
class Proj:
    term: "Term"
    field: str
    span: tuple[int, int]


@dataclass(frozen=True)
class Anon:
    items: tuple["Term", ...]
    span: tuple[int, int]


@dataclass(frozen=True)
class Fun:
    binders: tuple[tuple["Pat", Optional["Term"]], ...]
    body: "Term"
    span: tuple[int, int]


@dataclass(frozen=True)
class Ascribe:
    term: "Term"
    type: "Term"
    span: tuple[int, int]


@dataclass(frozen=True)
class Conn:
    op: str  # '¬' (b is None), '∧', '∨', '→', '↔'
    a: "Term"
    b: Optional["Term"]
    span: tuple[int, int]


@dataclass(frozen=True)
class Sorry:
    span: tuple[int, int]


@dataclass(frozen=True)
class Hole:
    span: tuple[int, int]


@dataclass(frozen=True)
class ByTac:
    tactics: tuple["Tactic", ...]
    span: tuple[int, int]


Term = Union[Var, App, Proj, Anon, Fun, Ascribe, Conn, Sorry, Hole, ByTac]

# rcases patterns: ('name', str) | ('_',) | ('-',) | ('tuple', [pats]) | ('alts', [pats])
Pat = tuple


@dataclass(frozen=True)
class Tactic:
    name: str
    args: tuple
    span: tuple[int, int]
    text: str = field(default="", compare=False)


_BIN = {"∧": (35, "r"), "∨": (30, "r"), "→": (25, "r"), "↔": (20, "n")}
TACTIC_KEYWORDS = frozenset({
    "intro", "intros", "exact", "apply", "constructor", "left", "right", "cases", "rcases",
    "obtain", "exfalso", "contradiction", "assumption", "trivial", "by_cases", "by_contra",
    "have", "sorry", "admit", "skip", "done", "show", "rfl", "all_goals", "any_goals", "case",
    "next", "focus", "refine", "first",
})


class Parser:
    """Recursive-descent parser over a token list, with Lean-style column limits."""

    def __init__(self, text: str, toks: list[Tok]):
        self.text = text
        self.toks = toks
        self.i = 0
        self.stop_col = -1   # tokens on a later line at column <= stop_col end the construct
        self.stop_line = 0

    # -- token helpers
    def peek(self, k: int = 0) -> Tok:
        t = self.toks[min(self.i + k, len(self.toks) - 1)]
        if t.kind != "eof" and t.line > self.stop_line and t.col <= self.stop_col:
            return Tok("eof", "", t.start, t.start, t.line, t.col)
        return t

    def next(self) -> Tok:
        t = self.peek()
        if t.kind != "eof":
            self.i += 1
        return t

    def at(self, val: str) -> bool:
        t = self.peek()
        return t.kind in ("sym", "id") and t.val == val

    def expect(self, val: str, what: Optional[str] = None) -> Tok:
        t = self.peek()
        if t.kind in ("sym", "id") and t.val == val:
            return self.next()
        raise self.unexpected(t, what or f"'{val}'")

    def unexpected(self, t: Tok, expected: str) -> ParseError:
        if t.kind == "eof":
            return ParseError(f"unexpected end of input; expected {expected}", t.start)
        if t.kind == "id":
            return ParseError(f"unexpected identifier; expected {expected}", t.start)
        return ParseError(f"unexpected token '{t.val}'; expected {expected}", t.start)

    def last_end(self) -> int:
        return self.toks[self.i - 1].end if self.i > 0 else 0

    # -- terms
    def term(self, min_prec: int = 0) -> Term:
        t = self.peek()
        start = t.start
        if t.kind == "sym" and t.val == "¬":
            self.next()
            a = self.term(40)
            left: Term = Conn("¬", a, None, (start, self.last_end()))
            left_prec = 1024
        elif t.kind == "id" and t.val == "fun" or t.kind == "sym" and t.val == "λ":
            return self.fun()
        elif t.kind == "id" and t.val == "by":
            self.next()
            tacs = self.tactic_block()  # provided by TacticParser
            return ByTac(tuple(tacs), (start, self.last_end()))
        else:
            left = self.app()
            left_prec = 1024
        while True:
            t = self.peek()
            if t.kind != "sym" or t.val not in _BIN:
                return left
            prec, assoc = _BIN[t.val]
            if prec < min_prec:
                return left
            if left_prec < (prec if assoc == "r" else prec + 1):
                raise ParseError(f"unexpected token '{t.val}'; expected term", t.start)
            self.next()
            rhs = self.term(prec if assoc == "r" else prec + 1)
            left = Conn(t.val, left, rhs, (start, self.last_end()))
            left_prec = prec

    def app(self) -> Term:
        head = self.arg()
        args = []
        while self.starts_arg():
            args.append(self.arg())
        if args:
            return App(head, tuple(args), (head.span[0], self.last_end()))
        return head

    def starts_arg(self) -> bool:
        t = self.peek()
        if t.kind == "id":
            return t.val not in ("fun", "with", "at", "from", "then", "else", "by") and t.val not in TACTIC_KEYWORDS - {"trivial", "sorry"}
        return t.kind == "sym" and t.val in ("(", "⟨")

    def arg(self) -> Term:
        t = self.next()
        if t.kind == "id":
            if t.val == "sorry":
                node: Term = Sorry((t.start, t.end))
            elif t.val == "_":
                node = Hole((t.start, t.end))
            elif t.val in ("fun", "by", "with", "at", "from", "have", "show"):
                raise self.unexpected_kw(t)
            else:
                node = Var(t.val, (t.start, t.end))
        elif t.kind == "sym" and t.val == "(":
            save = (self.stop_col, self.stop_line)
            self.stop_col = -1
            inner = self.term()
            if self.at(":"):
                self.next()
                ty = self.term()
                self.expect(")")
                node = Ascribe(inner, ty, (t.start, self.last_end()))
            else:
                self.expect(")", "')', ',' or ':'")
                node = inner
            self.stop_col, self.stop_line = save
        elif t.kind == "sym" and t.val == "⟨":
            save = (self.stop_col, self.stop_line)
            self.stop_col = -1
            items = []
            if not self.at("⟩"):
                items.append(self.term())
                while self.at(","):
                    self.next()
                    items.append(self.term())
            self.expect("⟩", "',' or '⟩'")
            self.stop_col, self.stop_line = save
            node = Anon(tuple(items), (t.start, self.last_end()))
        else:
            raise self.unexpected(t, "term")
        while self.peek().kind == "proj":
            p = self.next()
            node = Proj(node, p.val, (node.span[0], p.end))
        return node

    def unexpected_kw(self, t: Tok) -> ParseError:
        return ParseError(f"unexpected token '{t.val}'; expected term", t.start)

    def fun(self) -> Term:
        start = self.next().start
        binders: list[tuple[Pat, Optional[Term]]] = []
        while not self.at("=>"):
            t = self.peek()
            if t.kind == "id" and t.val not in ("fun",):
                self.next()
                binders.append((("name", t.val) if t.val != "_" else ("_",), None))
            elif t.kind == "sym" and t.val == "(":
                self.next()
                names = []
                while self.peek().kind == "id":
                    names.append(self.next().val)
                if not names:
                    raise self.unexpected(self.peek(), "identifier")
                self.expect(":")
                ty = self.term()
                self.expect(")")
                for n in names:
                    binders.append((("name", n) if n != "_" else ("_",), ty))
            elif t.kind == "sym" and t.val == "⟨":
                binders.append((self.pattern_atom(), None))
            else:
                raise self.unexpected(t, "'=>'" if binders else "identifier")
        if not binders:
            raise self.unexpected(self.peek(), "identifier")
        self.expect("=>")
        body = self.term()
        return Fun(tuple(binders), body, (start, self.last_end()))

    # -- rcases patterns
    def pattern(self) -> Pat:
        alts = [self.pattern_atom()]
        while self.at("|"):
            self.next()
            alts.append(self.pattern_atom())
        return alts[0] if len(alts) == 1 else ("alts", alts)

    def pattern_atom(self) -> Pat:
        t = self.next()
        if t.kind == "id":
            return ("_",) if t.val == "_" else ("name", t.val)
        if t.kind == "sym" and t.val == "-":
            return ("-",)
        if t.kind == "sym" and t.val == "⟨":
            items = []
            if not self.at("⟩"):
                items.append(self.pattern())
                while self.at(","):
                    self.next()
                    items.append(self.pattern())
            self.expect("⟩", "',' or '⟩'")
            return ("tuple", items)
        if t.kind == "sym" and t.val == "(":
            p = self.pattern()
            self.expect(")")
            return p
        raise self.unexpected(t, "rcases pattern")

def parse_term(text: str) -> Term:
    from .tactic_syntax import TacticParser  # `by` blocks inside terms
    p = TacticParser(text, lex(text))
    term = p.term()
    t = p.toks[p.i]
    if t.kind != "eof":
        raise p.unexpected(t, "command")
    return term
