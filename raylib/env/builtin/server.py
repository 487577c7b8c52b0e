"""A leanprover-community/repl look-alike for the built-in propositional environment.

``Repl.handle`` is pure and in-process; ``serve`` speaks the line protocol (JSON requests
separated by blank lines; each answer is pretty-printed JSON followed by a blank line).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import IO, Any, Optional

from .decl import run_command
from .kernel import Goal, LeanError, goal_text
from .syntax import ParseError
from .tactic_syntax import parse_tactics
from .terms import Elab
from .tactics import run_seq

log = logging.getLogger(__name__)
WIDTH = 80


# ---------------------------------------------------------------------------
# JSON layout as Lean's `Json.pretty` prints it (keys in the order Lean emits them)

def _ordered(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _ordered(v[k]) for k in sorted(v, reverse=True)}
    if isinstance(v, list):
        return [_ordered(x) for x in v]
    return v


def _compact(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))


def _render(v: Any, col: int, trail: int) -> str:
    flat = _compact(v)
    if col + len(flat) + trail <= WIDTH or not isinstance(v, (dict, list)) or not v:
        return flat
    ind = col + 1
    parts = []
    if isinstance(v, dict):
        items = list(v.items())
        for n, (k, x) in enumerate(items):
            t = 1
            key = _compact(k) + ":"
            xs = _compact(x)
            if ind + len(key) + 1 + len(xs) + t <= WIDTH or not isinstance(x, (dict, list)) or not x:
                if ind + len(key) + 1 + len(xs) + t <= WIDTH or not isinstance(x, (dict, list)):
                    parts.append(f"{key} {xs}" if ind + len(key) + 1 + len(xs) + t <= WIDTH
                                 else f"{key}\n{' ' * ind}{xs}")
                    continue
            parts.append(f"{key}\n{' ' * ind}{_render(x, ind, t)}")
        return "{" + f",\n{' ' * ind}".join(parts) + "}"
    for x in v:
        parts.append(_render(x, ind, 1))
    return "[" + f",\n{' ' * ind}".join(parts) + "]"


def render(answer: dict) -> str:
    """Lay out an answer the way the real REPL does (several lines, width 80)."""
    return _render(_ordered(answer), 0, 0)


# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ProofState:
    goals: tuple[Goal, ...]
    sorry: bool = False


def _pos(text: str, offset: int) -> dict:
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return {"line": line, "column": offset - (text.rfind("\n", 0, offset) + 1)}


class Repl:
    """In-process REPL state: environments and immutable, reusable proof states."""

    def __init__(self) -> None:
        self.envs: list[dict[str, tuple[str, ...]]] = []  # declared name -> its axioms
        self.states: list[Optional[ProofState]] = []  # None: forgotten (fault_forget)

    def _record(self, st: ProofState) -> int:
        self.states.append(st)
        return len(self.states) - 1

    def handle_text(self, query: str) -> dict:
        try:
            req = json.loads(query)
        except json.JSONDecodeError as e:
            return {"message": f"Could not parse JSON:\n{e}"}
        return self.handle(req)

    def handle(self, request: Any) -> dict:
        try:
            return self._handle(request)
        except Exception as e:  # a bug here must still answer as the REPL would
            log.exception("internal error")
            return {"message": f"Lean error:\ninternal error: {type(e).__name__}: {e}"}

    def _handle(self, req: Any) -> dict:
        if not isinstance(req, dict):
            return {"message": "Could not parse as a valid JSON command:\nexpected an object"}
        if any(k.startswith(("pickle", "unpickle")) for k in req):
            return {"message": "pickling is not supported by the built-in environment"}
        if isinstance(req.get("tactic"), str) and isinstance(req.get("proofState"), int):
            return self.tactic(req["tactic"], req["proofState"])
        if isinstance(req.get("cmd"), str):
            env = req.get("env")
            if env is not None and not isinstance(env, int):
                return {"message": "Could not parse as a valid JSON command:\nenv: expected a number"}
            return self.command(req["cmd"], env)
        return {"message": "Could not parse as a valid JSON command:\n"
                           "expected {\"cmd\": ...} or {\"tactic\": ..., \"proofState\": ...}"}

    def command(self, cmd: str, env: Optional[int] = None) -> dict:
        if env is not None and not 0 <= env < len(self.envs):
            return {"message": "Unknown environment."}
        names = self.envs[env] if env is not None else {}
        res = run_command(cmd, names, env is None)
        self.envs.append({**names, **res.axioms})
        out: dict[str, Any] = {"env": len(self.envs) - 1}
        sorries = []
        for goal, (s, e) in res.sorries:
            sid = self._record(ProofState((goal,)))
            sorries.append({"proofState": sid, "pos": _pos(cmd, s), "endPos": _pos(cmd, e),
                            "goal": goal_text(goal)})
        messages = []
        for m in res.messages:
            messages.append({"severity": m.severity, "pos": _pos(cmd, m.span[0]),
                             "endPos": _pos(cmd, m.span[1]), "data": m.text})
        if messages:
            out["messages"] = messages
        if sorries:
            out["sorries"] = sorries
        return out

    def tactic(self, text: str, state_id: int) -> dict:
        if not 0 <= state_id < len(self.states) or self.states[state_id] is None:
            return {"message": "Unknown proof state."}
        st = self.states[state_id]
        try:
            tacs = parse_tactics(text)
        except ParseError as e:
            p = _pos(text, e.offset)
            return {"message": f"Lean error:\n<input>:{p['line']}:{p['column']}: {e.message}"}
        el = Elab(src=text)
        try:
            goals = run_seq(el, st.goals, tacs)
        except LeanError as e:
            return {"message": f"Lean error:\n{e.message}"}
        except RecursionError:
            return {"message": "Lean error:\nmaximum recursion depth has been reached"}
        sorries = []
        for goal, _ in el.sorries:
            sid = self._record(ProofState((goal,)))
            sorries.append({"proofState": sid, "goal": goal_text(goal)})
        new = ProofState(goals, st.sorry or bool(el.sorries))
        out: dict[str, Any] = {"proofState": self._record(new), "goals": [goal_text(g) for g in goals]}
        if sorries:
            out["sorries"] = sorries
        if goals:
            out["proofStatus"] = "Incomplete: open goals remain"
        elif new.sorry:
            out["proofStatus"] = "Incomplete: contains sorry"
        else:
            out["proofStatus"] = "Completed"
        return out


# ---------------------------------------------------------------------------
# the stdin/stdout loop

class _Faults:
    def __init__(self) -> None:
        self.hoard: list[bytearray] = []

    def intercept(self, repl: Repl, req: Any, out: IO[str]) -> Optional[dict]:
        """Act on a fault tactic; return the request to answer instead (None: no fault)."""
        if not isinstance(req, dict) or not isinstance(req.get("tactic"), str):
            return None
        words = req["tactic"].split()
        if not words or not words[0].startswith("fault_"):
            return None
        kind = words[0]
        skip = dict(req, tactic="skip")
        if kind == "fault_forget":  # forget every proof state so far, as a REPL that lost them would
            repl.states = [None] * len(repl.states)
            return skip
        if kind == "fault_sleep":
            time.sleep(float(words[1]) if len(words) > 1 else 1.0)
            return skip
        if kind == "fault_alloc":
            mb = int(float(words[1])) if len(words) > 1 else 1
            block = bytearray(mb * 1024 * 1024)
            block[::4096] = b"\x01" * len(block[::4096])
            self.hoard.append(block)
            return skip
        if kind == "fault_exit":
            log.warning("fault_exit: exiting with code 3")
            out.flush()
            os._exit(3)
        if kind == "fault_garbage":
            out.write("@@garbage: this is not JSON {{{\n\n")
            out.flush()
            return {}
        if kind == "fault_truncate":
            text = render(repl.handle(skip))
            out.write(text[: len(text) // 2])
            out.flush()
            while True:
                time.sleep(3600)
        return None


def serve(stdin: IO[str], stdout: IO[str], faults: bool = False) -> None:
    repl = Repl()
    fx = _Faults() if faults else None
    buf: list[str] = []

    def answer(query: str) -> None:
        if query.startswith("#") or query.startswith("--"):
            return
        try:
            req: Any = json.loads(query)
        except json.JSONDecodeError as e:
            reply: dict = {"message": f"Could not parse JSON:\n{e}"}
        else:
            if fx is not None:
                sub = fx.intercept(repl, req, stdout)
                if sub == {}:
                    return
                if sub is not None:
                    req = sub
            reply = repl.handle(req)
        stdout.write(render(reply) + "\n\n")
        stdout.flush()

    for line in stdin:
        if line.strip():
            buf.append(line.rstrip())
            continue
        if buf:
            answer("".join(buf))
            buf = []
    if buf:
        answer("".join(buf))
