"""Break each rule's check of the built-in logic, one at a time, and see which test fails.

    .venv/bin/python tests/break_rules.py [--tests tests/test_soundness_mutations.py ...] [--only NAME]

Each break is a one-line change to ``raylib/env/builtin/*`` (a check removed or the wrong component
used). It is applied to a copy of ``raylib/`` and ``tests/`` in a temporary folder (the working tree
is never touched), the soundness tests run there, and a JSON line lists the failing tests. A
break that no test notices is reported as ``"caught": false``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
B = "raylib/env/builtin/"

# (rule, file, text to find (must be unique), replacement)
BREAKS = [
    ("intro: hypothesis is the antecedent", B + "tactics.py", "g.add(hyp_name, ab[0],", "g.add(hyp_name, ab[1],"),
    ("exact/term: inferred type must match the goal", B + "terms.py",
     "    got = infer(el, ctx, t)\n    if not defeq(got, want):", "    got = infer(el, ctx, t)\n    if False:"),
    ("apply: conclusion must match the goal", B + "tactics.py", "        if defeq(concl, t):", "        if True:"),
    ("constructor (And): both goals", B + "tactics.py",
     '        if isinstance(t, And):\n            return [Goal(g.ctx, t.a, subtag(g.tag, "left")), Goal(g.ctx, t.b, subtag(g.tag, "right"))]',
     '        if isinstance(t, And):\n            return [Goal(g.ctx, t.a, subtag(g.tag, "left"))]'),
    ("constructor (Iff): both directions", B + "tactics.py",
     '            return [Goal(g.ctx, Imp(t.a, t.b), subtag(g.tag, "mp")),\n                    Goal(g.ctx, Imp(t.b, t.a), subtag(g.tag, "mpr"))]\n        if isinstance(t, Top):',
     '            return [Goal(g.ctx, Imp(t.a, t.b), subtag(g.tag, "mp"))]\n        if isinstance(t, Top):'),
    ("apply And.intro: both goals", B + "tactics.py",
     '        if c == "And.intro" and isinstance(t, And):\n            return [Goal(g.ctx, t.a, subtag(g.tag, "left")), Goal(g.ctx, t.b, subtag(g.tag, "right"))]',
     '        if c == "And.intro" and isinstance(t, And):\n            return [Goal(g.ctx, t.a, subtag(g.tag, "left"))]'),
    ("left/right: the goal is a disjunction", B + "tactics.py", "        if not isinstance(t, Or):",
     "        if not isinstance(t, (Or, And)):"),
    ("apply Or.inl/Or.inr: the goal is a disjunction", B + "tactics.py",
     'if c in ("Or.inl", "Or.inr") and isinstance(t, Or):', 'if c in ("Or.inl", "Or.inr") and isinstance(t, (Or, And)):'),
    ("exfalso: the goal becomes False", B + "tactics.py",
     '    if name == "exfalso":\n        return [g.with_target(Bot())]\n    if name in ("sorry"',
     '    if name == "exfalso":\n        return []\n    if name in ("sorry"'),
    ("apply False.elim: the goal becomes False", B + "tactics.py",
     '        if c == "False.elim":\n            return [g.with_target(Bot())]', '        if c == "False.elim":\n            return []'),
    ("sorry: recorded as a sorry", B + "tactics.py", "        el.sorries.append((g, tac.span))", "        pass"),
    ("assumption: the hypothesis must match", B + "tactics.py",
     "h.type is not None and defeq(h.type, g.target) for h in g.ctx", "h.type is not None for h in g.ctx"),
    ("contradiction: the negated hypothesis must match", B + "tactics.py",
     "any(defeq(x, ab[0]) for x in hyps)", "True"),
    ("contradiction: a False hypothesis", B + "tactics.py",
     "if isinstance(h, Bot) or isinstance(h, Not) and isinstance(h.a, Top):", "if True:"),
    ("trivial: decide evaluates the closed goal", B + "tactics.py", "return not atoms(t) and evaluate(t, {})",
     "return not atoms(t)"),
    ("rfl: both sides equal", B + "tactics.py", "if isinstance(t, Iff) and defeq(t.a, t.b):\n            return []",
     "if isinstance(t, Iff):\n            return []"),
    ("by_cases: the negative case assumes ¬p", B + "tactics.py", "g.add(n, Not(f), acc)", "g.add(n, f, acc)"),
    ("by_contra: the hypothesis is ¬goal", B + "tactics.py", 'g.add(n or "x", Not(t),', 'g.add(n or "x", t,'),
    ("apply Classical.byContradiction: the goal becomes ¬goal → False", B + "tactics.py",
     "return [g.with_target(Imp(Not(t), Bot()))]", "return [g.with_target(Imp(t, Bot()))]"),
    ("have: the proof is checked", B + "tactics.py", "            check(el, g.ctx, proof, f)\n        else:",
     "            pass\n        else:"),
    ("have (no proof): the new goal is kept", B + "tactics.py", "return [Goal(g.ctx, f), g.add(n, f)]",
     "return [g.add(n, f)]"),
    ("show: the new goal must be the goal", B + "tactics.py", "        if not defeq(f, t):\n            raise LeanError(f\"type mismatch",
     "        if False:\n            raise LeanError(f\"type mismatch"),
    ("cases (Or): the second case assumes the right side", B + "tactics.py",
     'replace(g2.add("h", ty.b, False), tag=subtag(g.tag, "inr"))', 'replace(g2.add("h", ty.a, False), tag=subtag(g.tag, "inr"))'),
    ("cases (And): the parts are exactly a and b", B + "tactics.py", 'g2.add("left", ty.a, False).add("right", ty.b, False)',
     'g2.add("left", ty.a, False).add("right", Not(ty.a), False)'),
    ("cases: the major premise must be inductive", B + "tactics.py",
     "    raise LeanError(f\"tactic 'induction' failed", "    return []\n    raise LeanError(f\"tactic 'induction' failed"),
    ("rcases/obtain ⟨a, b⟩: only a conjunction splits into both parts", B + "tactics.py",
     "        if isinstance(ty, And):\n            g = replace(g, tag=subtag(g.tag, \"intro\"))",
     "        if isinstance(ty, (And, Or)):\n            g = replace(g, tag=subtag(g.tag, \"intro\"))"),
    ("rcases/obtain a | b (Or): the second alternative", B + "tactics.py",
     '_destruct(replace(g, tag=subtag(g.tag, "inr")), ty.b, rest, "h")', '_destruct(replace(g, tag=subtag(g.tag, "inr")), ty.a, rest, "h")'),
    ("obtain with a type: the term is checked", B + "tactics.py",
     "        f = to_formula(g.ctx, ty_term, el.src)\n        check(el, g.ctx, term, f)",
     "        f = to_formula(g.ctx, ty_term, el.src)"),
    ("· (focus): the goal must be closed", B + "tactics.py",
     "        if left:\n            raise LeanError(unsolved(left), (tac.span[0], tac.span[0] + 1))",
     "        if False:\n            raise LeanError(unsolved(left), (tac.span[0], tac.span[0] + 1))"),
    ("case/next: the goal must be closed", B + "tactics.py",
     "        if left:\n            raise LeanError(unsolved(left))\n        return goals[:idx]",
     "        if False:\n            raise LeanError(unsolved(left))\n        return goals[:idx]"),
    ("all_goals: keeps what the tactic leaves", B + "tactics.py",
     "        for g in goals:\n            out.extend(run_seq(el, (g,), args[0]))\n        return tuple(out)",
     "        for g in goals:\n            run_seq(el, (g,), args[0])\n        return tuple(out)"),
    ("any_goals: keeps the goals it fails on", B + "tactics.py", "                out.append(g)\n                err = err or e",
     "                err = err or e"),
    ("first: a failing alternative changes nothing", B + "tactics.py", "            except LeanError as e:\n                last = e",
     "            except LeanError as e:\n                return ()"),
    ("<;>: keeps what the second tactic leaves", B + "tactics.py", "            out.extend(run(el, (g,), args[1]))",
     "            run(el, (g,), args[1])"),
    ("done: no goals may remain", B + "tactics.py", "        if goals:\n            raise LeanError(unsolved(goals))\n        return goals",
     "        return ()"),
    ("skip: changes nothing", B + "tactics.py", '    if name == "skip":\n        return goals', '    if name == "skip":\n        return ()'),
    ("by-block in a term: must close its goal", B + "tactics.py",
     "    if rest:\n        raise LeanError(unsolved(rest), (t.span[0], t.span[0] + 2))",
     "    if False:\n        raise LeanError(unsolved(rest), (t.span[0], t.span[0] + 2))"),
    ("fun: a typed binder must match the domain", B + "terms.py", "                if not defeq(given, dom):",
     "                dom = given\n                if False:"),
    ("⟨a, b⟩ (And): the second component", B + "terms.py",
     "        if len(items) == 2:\n            check(el, ctx, items[1], want.b)", "        if len(items) == 2:\n            pass"),
    ("⟨a, b⟩ (Iff): the second direction", B + "terms.py",
     "        check(el, ctx, items[0], Imp(want.a, want.b))\n        check(el, ctx, items[1], Imp(want.b, want.a))\n        return",
     "        check(el, ctx, items[0], Imp(want.a, want.b))\n        return"),
    ("Or.inl/Or.inr: the goal is a disjunction", B + "terms.py", "        if not isinstance(want, Or):",
     "        if not isinstance(want, (Or, And)):"),
    ("False.elim: the argument proves False", B + "terms.py", '"False.elim": Bot(),', '"False.elim": Top(),'),
    ("Classical.byContradiction: the argument proves ¬goal → False", B + "terms.py",
     '"Classical.byContradiction": Imp(Not(want), Bot())', '"Classical.byContradiction": Imp(want, Bot())'),
    ("id: the argument proves the goal", B + "terms.py", '"id": want}', '"id": Top()}'),
    ("absurd: the second argument proves ¬a", B + "terms.py",
     '        if name == "absurd":\n            check(el, ctx, args[1], Not(a))', '        if name == "absurd":\n            pass'),
    ("Not.elim: the first argument proves ¬a", B + "terms.py",
     "        else:\n            check(el, ctx, args[0], Not(a))\n        return True", "        else:\n            pass\n        return True"),
    ("Or.elim: the second branch is checked", B + "terms.py", "        check(el, ctx, args[2], Imp(ab.b, want))\n", ""),
    ("Or.elim: the first branch is checked", B + "terms.py", "        check(el, ctx, args[1], Imp(ab.a, want))\n", ""),
    ("And.intro: the second argument", B + "terms.py", "            check(el, ctx, args[0], want.a)\n            check(el, ctx, args[1], want.b)",
     "            check(el, ctx, args[0], want.a)"),
    ("Iff.intro: the second direction", B + "terms.py",
     "            check(el, ctx, args[0], Imp(want.a, want.b))\n            check(el, ctx, args[1], Imp(want.b, want.a))\n        return True",
     "            check(el, ctx, args[0], Imp(want.a, want.b))\n        return True"),
    ("projection .2/.right: only of a conjunction", B + "terms.py", 'if isinstance(f, And) and fld in ("2", "right"):',
     'if isinstance(f, (And, Or)) and fld in ("2", "right"):'),
    ("projection .1/.left: only of a conjunction", B + "terms.py", 'if isinstance(f, And) and fld in ("1", "left"):',
     'if isinstance(f, (And, Or)) and fld in ("1", "left"):'),
    ("projection .mpr: only of an Iff", B + "terms.py", 'if isinstance(f, Iff) and fld in ("2", "mpr"):',
     'if isinstance(f, (Iff, Or)) and fld in ("2", "mpr"):'),
    ("projection .mp: only of an Iff", B + "terms.py", 'if isinstance(f, Iff) and fld in ("1", "mp"):\n        return Imp(f.a, f.b)',
     'if isinstance(f, (Iff, Or)) and fld in ("1", "mp"):\n        return Imp(f.a, f.b)'),
    (".symm of And: only of a conjunction", B + "terms.py", 'if isinstance(f, And) and fld == "symm":',
     'if isinstance(f, (And, Or)) and fld == "symm":'),
    (".symm of Or", B + "terms.py", 'if isinstance(f, Or) and fld == "symm":\n        return Or(f.b, f.a)',
     'if isinstance(f, Or) and fld == "symm":\n        return And(f.b, f.a)'),
    (".symm of Iff", B + "terms.py", 'if isinstance(f, Iff) and fld == "symm":\n        return Iff(f.b, f.a)',
     'if isinstance(f, Iff) and fld == "symm":\n        return And(f.b, f.a)'),
    ("ascription (t : A): t is checked", B + "terms.py",
     "        f = to_formula(ctx, t.type, el.src)\n        check(el, ctx, t.term, f)\n        return f",
     "        f = to_formula(ctx, t.type, el.src)\n        return f"),
    ("application: the argument proves the domain", B + "terms.py", "            check(el, ctx, a, dom)\n", "            pass\n"),
    ("Classical.em: p ∨ ¬p", B + "terms.py", "Or(p, Not(p)), args[1:])", "Or(p, p), args[1:])"),
    ("fun ⟨a, b⟩ pattern: only a conjunction splits", B + "terms.py", "if isinstance(ty, And) and len(items) >= 2:",
     "if isinstance(ty, (And, Or)) and len(items) >= 2:"),
    ("¬a unfolds to a → False", B + "kernel.py", "return Imp(unfold(f.a), Bot())", "return unfold(f.a)"),
    ("¬a as an implication: a → False", B + "kernel.py", "        return f.a, Bot()", "        return f.a, Top()"),
    ("whole proof: unsolved goals are an error", B + "decl.py", "            if goals:\n                res.messages.append",
     "            if False:\n                res.messages.append"),
    ("whole proof: sorry is reported", B + "decl.py", "    if el.sorries:\n        res.messages.append",
     "    if False:\n        res.messages.append"),
    ("tactic mode: sorry is not Completed", B + "server.py", "        elif new.sorry:", "        elif False:"),
]


def run_one(rule: str, path: str, old: str, new: str, tests: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="break-") as tmp:
        for d in ("raylib", "tests"):
            shutil.copytree(ROOT / d, Path(tmp) / d, ignore=shutil.ignore_patterns("__pycache__"))
        target = Path(tmp) / path
        text = target.read_text(encoding="utf-8")
        if text.count(old) != 1:
            return {"rule": rule, "error": f"pattern found {text.count(old)} times in {path}"}
        target.write_text(text.replace(old, new), encoding="utf-8")
        if tests:
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                                  cwd=tmp, capture_output=True, text=True)
            failed = [ln.split(" ")[1].split("::")[-1] for ln in proc.stdout.splitlines() if ln.startswith("FAILED ")]
            return {"rule": rule, "file": path, "caught": proc.returncode != 0, "failed": failed}
        proc = subprocess.run([sys.executable, "-c", _FAST], cwd=tmp, capture_output=True, text=True)
        failed = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else [proc.stderr[-500:]]
        return {"rule": rule, "file": path, "caught": bool(failed), "failed": failed}


# The soundness tests of test_soundness_mutations.py called directly (no pytest start-up), in order.
_FAST = """
import json, sys
sys.path[:0] = ['.', 'tests']
import test_soundness_mutations as t
corpus = {seed: list(t.attempts(seed)) for seed in t.SEEDS}
failed = []
for name in ('test_oracle_renderings_complete_on_true_statements', 'test_no_attempt_completes_a_falsified_statement'):
    try:
        getattr(t, name)(corpus)
    except Exception:  # an assertion, or an answer of the wrong shape (e.g. no sorries from `by sorry`)
        failed.append(name)
print(json.dumps(failed))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tests", nargs="*", default=[],
                    help="pytest these files in the broken copy (default: call the two soundness tests of "
                         "tests/test_soundness_mutations.py directly, which is faster)")
    ap.add_argument("--only", help="run only rules whose name contains this text")
    args = ap.parse_args(argv)
    missed = 0
    for rule, path, old, new in BREAKS:
        if args.only and args.only not in rule:
            continue
        res = run_one(rule, path, old, new, args.tests)
        missed += not res.get("caught", False)
        print(json.dumps(res, ensure_ascii=False), flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
