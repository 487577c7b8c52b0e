"""A FAKE Lean REPL for tests that need answers no built-in proof can give: it says yes to everything.

No Lean toolchain exists here, so this small program stands in for leanprover-community/repl. It reads
JSON requests separated by blank lines and answers in the real REPL's shapes (``REPL/JSON.lean``: a command
answers ``{"env", "messages", "sorries"}`` with empty lists left out; a tactic answers ``{"proofState",
"goals", "messages", "sorries", "proofStatus"}``; ``#print axioms`` answers one info message
``'NAME' depends on axioms: [...]`` or ``'NAME' does not depend on any axioms``), but it checks nothing:

- a command holding ``by sorry`` opens one proof state (goal ``⊢ p``) with the ``declaration uses 'sorry'``
  warning, as Lean does; any other command succeeds with no message;
- ``#print axioms NAME`` reports the axioms listed in ``$FAKE_REPL_AXIOMS`` (comma-separated; empty: none;
  ``$FAKE_REPL_WRAP=1`` wraps the list over lines as Lean does for long names);
- every tactic succeeds with no goals left and ``proofStatus: "Completed"``, unless ``$FAKE_REPL_TACTICS``
  names a JSON file mapping a tactic to the answer fields to give instead (null: field left out, as REPL
  versions before ``proofStatus`` do);
- ``$FAKE_REPL_LOG`` (optional) gets every request, one JSON line each.

A proof this fake accepts is refused only by the client's own checks: what the tests exercise.
"""

import json
import os
import sys


def main() -> None:
    axioms = [a.strip() for a in os.environ.get("FAKE_REPL_AXIOMS", "").split(",") if a.strip()]
    wrap = os.environ.get("FAKE_REPL_WRAP") == "1"
    scripted = {}
    if os.environ.get("FAKE_REPL_TACTICS"):
        with open(os.environ["FAKE_REPL_TACTICS"], encoding="utf-8") as f:
            scripted = json.load(f)
    log = open(os.environ["FAKE_REPL_LOG"], "a", encoding="utf-8") if os.environ.get("FAKE_REPL_LOG") else None
    envs = states = 0

    def pos(line, col):
        return {"line": line, "column": col}

    def answer(req: dict) -> dict:
        nonlocal envs, states
        if log is not None:
            log.write(json.dumps(req, ensure_ascii=False) + "\n")
            log.flush()
        if "tactic" in req:
            if not 0 <= req["proofState"] < states:
                return {"message": "Unknown proof state."}
            out = {"proofState": states, "goals": [], "proofStatus": "Completed"}
            for key, value in scripted.get(req["tactic"], {}).items():  # null: leave the field out
                if value is None:
                    out.pop(key, None)
                else:
                    out[key] = value
            states += 1
            return out
        cmd = req["cmd"]
        env, envs = envs, envs + 1
        if cmd.startswith("#print axioms "):
            name = cmd.split()[2]
            if not axioms:
                data = f"'{name}' does not depend on any axioms"
            else:
                data = f"'{name}' depends on axioms: [" + (",\n " if wrap else ", ").join(axioms) + "]"
            return {"env": env, "messages": [{"severity": "info", "pos": pos(1, 0), "endPos": pos(1, len(cmd)),
                                              "data": data}]}
        if "by sorry" in cmd:
            at = cmd.index("by sorry") + 3
            states += 1
            return {"env": env,
                    "messages": [{"severity": "warning", "pos": pos(1, 8), "endPos": pos(1, 12),
                                  "data": "declaration uses 'sorry'"}],
                    "sorries": [{"proofState": states - 1, "pos": pos(1, at), "endPos": pos(1, at + 5),
                                 "goal": "p : Prop\nh : p\n⊢ p"}]}
        return {"env": env}

    buf = []
    for line in sys.stdin:
        if line.strip():
            buf.append(line)
            continue
        if buf:
            out = answer(json.loads("".join(buf)))
            buf = []
            sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=1) + "\n\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
