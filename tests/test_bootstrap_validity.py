"""Honest tactic validity: the bootstrap counts a tactic only when it changes the state.

Real built-in REPL states (oracle replays of valid-split theorems); the generated tactics are written
by hand, so the expected shares are exact."""

from jobs.bootstrap import _valid_states, score_tactics
from raylib.env.builtin.corpus import builtin_theorems


def test_accepted_noop_is_not_valid():
    theorems = [t for t in builtin_theorems("generated", 60, 0) if t.split == "valid"][:6]
    repl, states = _valid_states(theorems, 4, seed=0)
    assert len(states) == 4
    # greedy: two no-ops (accepted, goals unchanged), one refused by the filter, one that the REPL rejects
    greedy = ["skip", "skip", "sorry", "exact no_such_hypothesis"]
    # sampled: only no-ops, which must never count as valid
    sampled = [["skip", "skip"] for _ in states]
    out = score_tactics(repl, states, greedy, sampled)
    assert out["greedy_valid"] == 0.0 and out["greedy_accepted_noop"] == 0.5
    assert out["sampled_valid"] == 0.0 and out["sampled_accepted_noop"] == 1.0
    assert out["distinct_sampled_per_state"] == 1.0


def test_state_changing_tactic_is_valid():
    from raylib.env.builtin.oracle import oracle_proof

    theorems = [t for t in builtin_theorems("generated", 60, 0) if t.split == "valid"][:6]
    repl, states = _valid_states(theorems, 200, seed=0)
    # the oracle's first tactic at each theorem's root state changes it (or finishes the proof)
    roots = []
    for thm in theorems:
        ans = repl.handle({"cmd": thm.command()})
        if ans.get("sorries"):
            roots.append(((ans["sorries"][0]["proofState"], ans["sorries"][0]["goal"]),
                          oracle_proof(thm.statement)[0]))
    out = score_tactics(repl, [s for s, _ in roots], [t for _, t in roots], [[t, "skip"] for _, t in roots])
    assert out["greedy_valid"] == 1.0 and out["greedy_accepted_noop"] == 0.0
    assert out["sampled_valid"] == 0.5 and out["sampled_accepted_noop"] == 0.5
