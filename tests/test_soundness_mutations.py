"""SOUNDNESS that bites: the oracle's own proofs, rendered in every syntax the built-in logic knows and
mutated, complete on true statements and never on falsified copies of them.

Seeded (explicit seeds, no unseeded randomness). For each seed: valid sequents over p, q, r with up
to three hypotheses; the oracle's proof parsed into a tree; renderings that pick, node by node, among
equivalent tactics and term formers (``tests/proof_mutations.py``); mutations of the tree (swapped
hypotheses, wrong branch, dropped or duplicated case, a term former applied to the wrong argument, a
subproof replaced by ``sorry``). Every attempt runs on the true statement and on falsified copies that
keep the hypothesis names (a hypothesis dropped, the goal or a hypothesis changed, refuted by a truth
table), both as a whole command and as one tactic block in the ``by sorry`` proof state.

Breaking any one rule's check in the built-in tactics or term checker makes a falsified statement
complete and fails ``test_no_attempt_completes_a_falsified_statement`` (see the issue note's table).
"""

import random
import re

import pytest

from proof_mutations import MUTATIONS, falsified, mutate, proof_tree, valid_sequents
from proof_render import render
from raylib.env.builtin.server import Repl
from raylib.env.builtin.syntax import TACTIC_KEYWORDS

SEEDS = range(6)
PER_SEED = 40          # valid sequents per seed
RENDERS = 3            # unmutated renderings per sequent
FALSIFIED = 5          # falsified copies per sequent


def whole(stmt: str, proof: str) -> bool:
    """The command is accepted with no message at all (no error, no sorry warning)."""
    return "messages" not in Repl().handle({"cmd": f"{stmt} := {proof}"})


def stepwise(stmt: str, proof: str) -> bool:
    """The proof as one tactic block in the statement's ``by sorry`` state reports ``Completed``."""
    repl = Repl()
    ps = repl.handle({"cmd": f"{stmt} := by sorry"})["sorries"][0]["proofState"]
    if proof.startswith("by\n"):
        block = "\n".join(line[2:] for line in proof.split("\n")[1:])
    else:
        block = f"exact {proof}"
    ans = repl.handle({"tactic": block, "proofState": ps})
    return ans.get("proofStatus") == "Completed"


def attempts(seed: int):
    """(sequent, [(label, proof text)]) for every sequent of one seed."""
    rng = random.Random(seed)
    for seq in valid_sequents(rng, PER_SEED):
        tree = proof_tree(seq)
        tries = [("oracle", render(tree, rng)) for _ in range(RENDERS)]
        for kind in MUTATIONS:
            for _ in range(2):
                m = mutate(tree, rng, kind)
                if m is not None:
                    tries.append((kind, render(m, rng)))
        yield seq, tries


@pytest.fixture(scope="module")
def corpus():
    return {seed: list(attempts(seed)) for seed in SEEDS}


def test_oracle_renderings_complete_on_true_statements(corpus):
    done = total = 0
    for seed, items in corpus.items():
        for seq, tries in items:
            for label, proof in tries:
                if label == "oracle":
                    assert whole(seq.statement(), proof), (seed, seq.statement(), proof)
                    assert stepwise(seq.statement(), proof), (seed, seq.statement(), proof)
                else:
                    total += 1
                    done += whole(seq.statement(), proof)
    # mutations often keep a true statement provable (another hypothesis serves, both branches close)
    assert total and done / total > 0.2, (done, total)


def test_no_attempt_completes_a_falsified_statement(corpus):
    checked = 0
    for seed, items in corpus.items():
        rng = random.Random(1000 + seed)
        for seq, tries in items:
            for bad in falsified(seq, rng, FALSIFIED):
                for label, proof in tries:
                    checked += 1
                    assert not whole(bad.statement(), proof), (label, bad.statement(), proof)
                    assert not stepwise(bad.statement(), proof), (label, bad.statement(), proof)
    assert checked > 2000


TERM_FORMERS = ("fun", "⟨", "Or.inl", "Or.inr", "absurd", "Not.elim", "False.elim", "Classical.byContradiction",
                "id ", "Or.elim", "And.intro", "Iff.intro", "Classical.em", ".1", ".2", ".left", ".right", ".mp",
                ".mpr", ".symm", "And.right", "Iff.mp", "Iff.mpr", "And.left", " : ", "by exact", "trivial",
                "True.intro")


def test_every_tactic_and_term_former_is_exercised_by_completed_proofs(corpus):
    seen_tactics, seen_terms = set(), set()
    for items in corpus.values():
        for seq, tries in items:
            for label, proof in tries:
                if label != "oracle":
                    continue
                seen_tactics |= set(re.findall(r"[a-z_]+", proof)) & TACTIC_KEYWORDS
                seen_terms |= {f for f in TERM_FORMERS if f in proof}
                seen_tactics |= {s for s in ("·", "<;>", "(exact", "(assumption", "(apply", "(contradiction")
                                 if s in proof}
    sorry_words = {"sorry", "admit"}  # used by the sorry mutation only: never part of a completed proof
    missing = (TACTIC_KEYWORDS - sorry_words) - seen_tactics
    assert not missing, sorted(missing)
    assert {"·", "<;>"} <= seen_tactics and any(s.startswith("(") for s in seen_tactics)
    assert not set(TERM_FORMERS) - seen_terms, sorted(set(TERM_FORMERS) - seen_terms)
    mutated = {label for items in corpus.values() for _, tries in items for label, _ in tries}
    assert set(MUTATIONS) <= mutated
