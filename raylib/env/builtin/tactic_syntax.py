"""Tactic-sequence parsing (Lean column rules, `;`, `<;>`, `·`) on top of the term parser."""
from __future__ import annotations

from .syntax import (TACTIC_KEYWORDS, ParseError, Parser, Pat, Tactic, lex)


class TacticParser(Parser):
    """Terms, rcases patterns and tactic blocks."""

    # -- tactics
    def tactic_block(self) -> list[Tactic]:
        """A tactic sequence: tactics at one column, or separated by ';'."""
        first = self.peek()
        if first.kind == "eof":
            raise self.unexpected(first, "'{' or tactic")
        col, line = first.col, first.line
        save = (self.stop_col, self.stop_line)
        tacs: list[Tactic] = []
        while True:
            # a tactic may continue on later lines only at columns > col
            self.stop_col, self.stop_line = col, self.peek().line
            tacs.append(self.tactic())
            self.stop_col, self.stop_line = max(save[0], col - 1), line
            t = self.peek()
            if t.kind == "sym" and t.val == ";":
                self.next()
                if self.peek().kind == "eof":
                    break
                continue
            if t.kind != "eof" and t.col == col and t.line > self.toks[self.i - 1].line:
                line = t.line
                continue
            break
        self.stop_col, self.stop_line = save
        return tacs

    def tactic(self) -> Tactic:
        tac = self.tactic_atom()
        while self.at("<;>"):
            self.next()
            rhs = self.tactic_atom()
            tac = Tactic("<;>", (tac, rhs), (tac.span[0], self.last_end()))
        return tac

    def idents(self) -> list[str]:
        out = []
        while self.peek().kind == "id" and self.peek().val not in TACTIC_KEYWORDS:
            out.append(self.next().val)
        return out

    def tactic_atom(self) -> Tactic:
        t = self.peek()
        start = t.start
        if t.kind == "sym" and t.val == "·":
            self.next()
            body = self.tactic_block()
            return Tactic("·", (tuple(body),), (start, self.last_end()))
        if t.kind == "sym" and t.val == "(":
            self.next()
            save = (self.stop_col, self.stop_line)
            self.stop_col = -1
            body = self.tactic_block()
            self.expect(")")
            self.stop_col, self.stop_line = save
            return Tactic("(", (tuple(body),), (start, self.last_end()))
        if t.kind != "id" or t.val not in TACTIC_KEYWORDS:
            if t.kind == "eof":
                raise self.unexpected(t, "tactic")
            raise ParseError("unknown tactic", t.start)
        name = self.next().val
        args: tuple = ()
        if name in ("intro", "intros"):
            args = tuple(self.idents())
        elif name in ("exact", "apply", "show", "refine"):
            args = (self.term(),)
        elif name == "cases":
            args = (self.term(),)
            if self.at("with"):
                raise self.unexpected(self.toks[self.i + 1] if self.i + 1 < len(self.toks) else self.peek(), "'|'")
        elif name == "rcases":
            term = self.term()
            pat: Pat = ("_",)
            if self.at("with"):
                self.next()
                pat = self.pattern()
            args = (term, pat)
        elif name == "obtain":
            pat = self.pattern()
            ty = None
            if self.at(":"):
                self.next()
                ty = self.term()
            self.expect(":=")
            args = (pat, ty, self.term())
        elif name == "by_cases":
            hname = None
            if self.peek().kind == "id" and self.peek(1).kind == "sym" and self.peek(1).val == ":":
                hname = self.next().val
                self.next()
            args = (hname, self.term())
        elif name == "by_contra":
            ids = self.idents()
            args = (ids[0] if ids else None,)
            if len(ids) > 1:
                raise self.unexpected(self.toks[self.i - 1], "command")
        elif name == "have":
            hname = None
            if self.peek().kind == "id" and self.peek().val not in ("fun", "by"):
                nxt = self.peek(1)
                if nxt.kind == "sym" and nxt.val in (":", ":="):
                    hname = self.next().val
            ty = None
            if self.at(":"):
                self.next()
                ty = self.term()
            proof = None
            if self.at(":="):
                self.next()
                proof = self.term()
            if ty is None and proof is None:
                raise self.unexpected(self.peek(), "':' or ':='")
            args = (hname, ty, proof)
        elif name in ("all_goals", "any_goals", "focus"):
            args = (tuple(self.tactic_block()),)
        elif name in ("case", "next"):
            tag = None
            names: list[str] = []
            if name == "case":
                tag = self.expect_ident()
            names = self.idents()
            self.expect("=>")
            args = (tag, tuple(names), tuple(self.tactic_block()))
        elif name == "first":
            alts = []
            while self.at("|"):
                self.next()
                alts.append(tuple(self.tactic_block()))
            if not alts:
                raise self.unexpected(self.peek(), "'|'")
            args = (tuple(alts),)
        return Tactic(name, args, (start, self.last_end()), self.text[start:self.last_end()])

    def expect_ident(self) -> str:
        t = self.peek()
        if t.kind != "id":
            raise self.unexpected(t, "identifier")
        return self.next().val


def parse_tactics(text: str) -> list[Tactic]:
    """Parse a tactic sequence (REPL tactic mode); the whole text must be consumed."""
    p = TacticParser(text, lex(text))
    tacs = p.tactic_block()
    t = p.toks[p.i]
    if t.kind != "eof":
        raise p.unexpected(t, "command") if t.kind != "id" else ParseError("unexpected identifier; expected command", t.start)
    return tacs
