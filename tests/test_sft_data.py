"""SFT example building and the trajectory parquet: filters, splits, contamination, schema errors."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylib.data.sft import (
    ContaminationError,
    Pair,
    build_sft_examples,
    jsonl_pairs,
    oracle_pairs,
    read_examples,
    trajectory_pairs,
)
from raylib.data.trajectory import (
    TRAJECTORY_SCHEMA,
    TrajectoryError,
    read_trajectories,
    read_trajectory,
    trajectory_path,
    write_trajectory,
)
from raylib.env.builtin.corpus import textbook_theorems
from raylib.env.theorems import Theorem


def _pair(thm, state, tactic, stmt=None):
    return Pair(thm, state, tactic, "test", stmt)


def test_filters_are_counted(tmp_path):
    pairs = [_pair("a", "p : Prop\n⊢ p", "exact h"), _pair("a", "p : Prop\n⊢ p", "exact h"),   # duplicate
             _pair("a", "   ", "intro h"), _pair("b", "⊢ q", "  "),                              # empty x2
             _pair("b", "⊢ q", "sorry"), _pair("b", "⊢ q", "exact (admit)"),                   # sorry x2
             _pair("c", "⊢ r", "#eval 1"), _pair("c", "⊢ r", "constructor")]                   # denied
    b = build_sft_examples(pairs, tmp_path, valid_fraction=0.0)
    c = b.counts
    assert (c["input"], c["duplicate"], c["empty"], c["sorry"], c["denied"], c["kept"]) == (8, 1, 2, 2, 1, 2)
    rows = read_examples(b.train_path).to_pylist()
    assert {r["completion"] for r in rows} == {"exact h\n\n", "constructor\n\n"}
    assert json.loads((tmp_path / "stats.json").read_text())["counts"]["sorry"] == 2


def test_split_by_theorem(tmp_path):
    pairs = [_pair(f"t{i}", f"⊢ goal {i} {j}", f"tac {j}") for i in range(60) for j in range(3)]
    b = build_sft_examples(pairs, tmp_path, valid_fraction=0.3)
    train = {r["theorem"] for r in read_examples(b.train_path).to_pylist()}
    valid = {r["theorem"] for r in read_examples(b.valid_path).to_pylist()}
    assert train and valid and not (train & valid)
    assert b.counts["train"] + b.counts["valid"] == 180
    assert build_sft_examples(pairs, tmp_path / "again", valid_fraction=0.3).data_hash == b.data_hash


def test_contamination_fails_naming_theorems(tmp_path):
    ev = [Theorem("secret", "theorem secret (p q : Prop) : p ∧ q → q ∧ p"),
          Theorem("other", "theorem other (p : Prop) : p → p")]
    by_name = [_pair("secret", "⊢ x", "intro h")]
    with pytest.raises(ContaminationError, match="secret"):
        build_sft_examples(by_name, tmp_path, eval_theorems=ev)
    renamed = [_pair("innocent", "⊢ x", "intro h", "theorem innocent  (p q : Prop) :\n  p ∧ q →   q ∧ p := by sorry")]
    with pytest.raises(ContaminationError) as e:
        build_sft_examples(renamed, tmp_path, eval_theorems=ev)
    assert "secret" in str(e.value) and "innocent" in str(e.value) and "other" not in str(e.value)
    assert not (tmp_path / "train.parquet").exists()


EVAL_SWAP = Theorem("mathd_1", "theorem mathd_1 (p q : Prop) : p ∧ q → q ∧ p")


@pytest.mark.parametrize("statement", [
    "lemma foo (p q : Prop) : p ∧ q → q ∧ p",
    "example (p q : Prop) : p ∧ q → q ∧ p",
    "@[simp] theorem foo (p q : Prop) : p ∧ q → q ∧ p",
    "/-- Swap a conjunction. -/\n@[simp, aesop safe]\ntheorem foo (p q : Prop) : p ∧ q → q ∧ p",
    "theorem foo (p q : Prop) : p ∧ q → q ∧ p := by\n intro h\n exact ⟨h.2, h.1⟩",
    "private lemma foo(p q : Prop) :\n    p ∧ q → q ∧ p := fun h => ⟨h.2, h.1⟩",
], ids=["lemma", "example", "attribute", "doc_comment", "with_proof", "private_no_space"])
def test_contamination_sees_through_declaration_forms(tmp_path, statement):
    with pytest.raises(ContaminationError, match="mathd_1.*same statement as training theorem foo"):
        build_sft_examples([_pair("foo", "⊢ x", "intro h", statement)], tmp_path, eval_theorems=[EVAL_SWAP])


def test_contamination_keeps_different_statements_and_checks_statementless_by_name(tmp_path, caplog):
    ok = [_pair("foo", "⊢ x", "intro h", "lemma foo (p q : Prop) : p ∧ q → p := by\n intro h"),
          _pair("bar", "⊢ y", "intro h", "theorem bar (p q : Prop) (d : Nat := 2) : p ∧ q → q"),
          _pair("nostmt", "⊢ z", "intro h")]
    with caplog.at_level("WARNING", logger="raylib.data.sft"):
        assert build_sft_examples(ok, tmp_path, eval_theorems=[EVAL_SWAP], valid_fraction=0.0).counts["kept"] == 3
    assert "1 training theorems carry no statement and were checked by name only" in caplog.text
    with pytest.raises(ContaminationError, match="mathd_1 \\(same name"):
        build_sft_examples([_pair("mathd_1", "⊢ z", "intro h")], tmp_path / "x", eval_theorems=[EVAL_SWAP])


def test_oracle_pairs_replay_textbook():
    thms = textbook_theorems()[:5]
    pairs = list(oracle_pairs(thms))
    assert {p.theorem for p in pairs} == {t.name for t in thms}
    first = [p for p in pairs if p.theorem == thms[0].name][0]
    assert "⊢" in first.state and first.source == "oracle" and first.statement == thms[0].statement


def test_jsonl_pairs_hook(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text(json.dumps({"state": "⊢ p", "tactic": "exact hp", "theorem": "t1"}) + "\n\n")
    assert list(jsonl_pairs(f)) == [Pair("t1", "⊢ p", "exact hp", "leandojo", None)]
    f.write_text(json.dumps({"state": "⊢ p", "theorem": "t1"}) + "\n")
    with pytest.raises(ValueError, match="tactic"):
        list(jsonl_pairs(f))


def _rows(theorem="thm1"):
    base = dict(run="r", iteration=1, theorem=theorem, statement=f"theorem {theorem} (p : Prop) (hp : p) : p ∧ p",
                step_logprob=None, energy=None, timings={"gen_s": 0.1, "lean_s": 0.01, "ebm_s": 0.0},
                generator_fingerprint="g", encoder_fingerprint=None, config_hash="c")
    return [dict(base, node_id=0, parent_id=None, depth=0, state="p : Prop\n⊢ p ∧ p", tactic=None,
                 outcome="state", on_proof_path=True),
            dict(base, node_id=1, parent_id=0, depth=1, state="⊢ p", tactic="left", outcome="error",
                 on_proof_path=False, energy=1.5),
            dict(base, node_id=2, parent_id=0, depth=1, state="", tactic="exact ⟨hp, hp⟩", outcome="finished",
                 on_proof_path=True, step_logprob=-0.3)]


def test_trajectory_roundtrip_and_pairs(tmp_path):
    path = write_trajectory(_rows(), tmp_path)
    assert path == trajectory_path(tmp_path, "thm1")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no tmp file left behind
    t = read_trajectories(tmp_path)
    assert t.schema.equals(TRAJECTORY_SCHEMA, check_metadata=False) and t.num_rows == 3
    pairs = list(trajectory_pairs(tmp_path))
    assert pairs == [Pair("thm1", "p : Prop\n⊢ p ∧ p", "exact ⟨hp, hp⟩", "trajectory", _rows()[0]["statement"])]


def test_trajectory_pairs_keep_iterations_of_one_theorem_apart(tmp_path):
    first = write_trajectory(_rows(), tmp_path / "iter_1")
    second_rows = [dict(r, iteration=2) for r in _rows()]
    second_rows[0]["state"] = "p : Prop\nhp : p\n⊢ p ∧ p"
    second_rows[2]["tactic"] = "constructor <;> exact hp"
    second = write_trajectory(second_rows, tmp_path / "iter_2")
    got = [(p.state, p.tactic) for p in trajectory_pairs([first, second])]
    assert got == [("p : Prop\n⊢ p ∧ p", "exact ⟨hp, hp⟩"), ("p : Prop\nhp : p\n⊢ p ∧ p", "constructor <;> exact hp")]


def test_trajectory_errors_name_file_and_columns(tmp_path):
    bad = [dict(r, outcome="maybe") for r in _rows()]
    with pytest.raises(TrajectoryError, match="outcome 'maybe'"):
        write_trajectory(bad, tmp_path)
    orphan = _rows()[:1] + [dict(_rows()[1], parent_id=7)]
    with pytest.raises(TrajectoryError, match="parent_id 7"):
        write_trajectory(orphan, tmp_path)
    f = tmp_path / "broken.parquet"
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k not in ("energy", "config_hash")}
                                  for r in _rows()])
    pq.write_table(table, f)
    with pytest.raises(TrajectoryError) as e:
        read_trajectory(f)
    assert "broken.parquet" in str(e.value) and "energy" in str(e.value) and "config_hash" in str(e.value)
    typed = tmp_path / "typed.parquet"
    pq.write_table(pa.Table.from_pylist([dict(r, depth="deep") for r in _rows()]), typed)
    with pytest.raises(TrajectoryError, match="depth"):
        read_trajectory(typed)


def test_probe_steps_of_a_real_search_are_counted_apart_and_left_out(tmp_path):
    """A real best-first search on the built-in environment: the generator (a test double that always
    proposes ``intro h``) makes the first step and the probe ``assumption`` closes the goal. The
    trajectory records which step was whose; SFT keeps the generator's step only, unless asked."""
    import asyncio

    from raylib.config import load_config
    from raylib.env import make_env
    from raylib.models.generator import Candidate
    from raylib.search.best_first import BestFirstSearch
    from raylib.search.config import SearchSection
    from raylib.search.env import ThreadedEnv

    class IntroOnly:
        async def propose(self, state, n, temperature, max_tokens):
            return [Candidate("intro h", -0.1)]

    thm = {t.name: t for t in textbook_theorems()}["imp_self"]
    env = ThreadedEnv.from_factory(lambda: make_env(load_config(None).env), max_workers=1)
    try:
        search = BestFirstSearch(SearchSection(timeout_per_theorem=30.0, max_nodes=8, probe_tactics=["assumption"]),
                                 env, IntroOnly())
        r = asyncio.run(search.prove(thm))
    finally:
        env.close()
    assert r.proved and list(r.proof) == ["intro h", "assumption"]
    path = write_trajectory(r.rows("r", 1), tmp_path / "traj")
    flags = {(t, p) for t, p, on in zip(*(read_trajectory(path).column(c).to_pylist()
                                          for c in ("tactic", "probe", "on_proof_path"))) if on and t}
    assert flags == {("intro h", False), ("assumption", True)}
    pairs = list(trajectory_pairs(path))
    b = build_sft_examples(pairs, tmp_path / "ex", valid_fraction=0.0)
    assert (b.counts["input"], b.counts["probe"], b.counts["kept"]) == (2, 1, 1)
    assert b.by_source["trajectory"]["probe"] == 1
    assert [x["completion"] for x in read_examples(b.train_path).to_pylist()] == ["intro h\n\n"]
    both = build_sft_examples(pairs, tmp_path / "ex2", valid_fraction=0.0, probe_steps=True)
    assert (both.counts["probe"], both.counts["kept"]) == (0, 2)
    # a file written before the column existed: its steps read as the generator's (kept)
    old = pq.read_table(path).drop_columns(["probe"])
    pq.write_table(old, tmp_path / "old.parquet")
    assert read_trajectory(tmp_path / "old.parquet").column("probe").null_count == old.num_rows
    assert build_sft_examples(trajectory_pairs(tmp_path / "old.parquet"), tmp_path / "ex3",
                              valid_fraction=0.0).counts["kept"] == 2
