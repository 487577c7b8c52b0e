import json

import pytest

from raylib.env.theorems import Theorem, TheoremFileError, load_theorems, save_theorems, strip_proof


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n")


def test_native_and_minif2f_rows(tmp_path):
    p = tmp_path / "t.jsonl"
    _write(p, [
        {"name": "a", "statement": "theorem a (p : Prop) (h : p) : p", "split": "valid"},
        {"name": "mathd_1", "split": "test", "header": "import Mathlib\nopen Real\n",
         "formal_statement": "theorem mathd_1 (x : ℝ) (h₀ : x = 2) :\n  x + 1 = 3 := by\n", "informal_prefix": "/--/"},
        {"statement": "theorem named_from_statement : True := by sorry"},
    ])
    ts = load_theorems(p)
    assert ts[0] == Theorem("a", "theorem a (p : Prop) (h : p) : p", "", "valid")
    assert ts[1].statement == "theorem mathd_1 (x : ℝ) (h₀ : x = 2) :\n  x + 1 = 3"
    assert ts[1].header == "import Mathlib\nopen Real" and ts[1].split == "test"
    assert ts[2].name == "named_from_statement" and ts[2].statement.endswith(": True")
    assert ts[0].command() == "theorem a (p : Prop) (h : p) : p := by sorry"


@pytest.mark.parametrize("row, needle", [
    ('{"name": "x"}', "missing 'statement'"),
    ('{"statement": "def x := 1"}', "must start with 'theorem'"),
    ('{"statement": "example : True"}', "missing 'name'"),
    ('{"statement": "theorem x : True", "split": "dev"}', "'split' must be one of"),
    ('not json', "not valid JSON"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_rows_name_the_line(tmp_path, row, needle):
    p = tmp_path / "t.jsonl"
    _write(p, ['{"statement": "theorem ok : True"}', row])
    with pytest.raises(TheoremFileError) as e:
        load_theorems(p)
    assert f"{p}:2" in str(e.value) and needle in str(e.value)


def test_duplicates_missing_and_empty(tmp_path):
    p = tmp_path / "t.jsonl"
    _write(p, ['{"statement": "theorem ok : True"}', '{"statement": "theorem ok : 1 = 1"}'])
    with pytest.raises(TheoremFileError, match="duplicate theorem name 'ok'"):
        load_theorems(p)
    with pytest.raises(TheoremFileError, match="not found"):
        load_theorems(tmp_path / "missing.jsonl")
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(TheoremFileError, match="no theorems"):
        load_theorems(tmp_path / "e.jsonl")


def test_strip_proof_and_round_trip(tmp_path):
    assert strip_proof("theorem t : True := by sorry") == "theorem t : True"
    assert strip_proof("theorem t : True :=\n  by\n") == "theorem t : True"
    assert strip_proof("theorem t : True := sorry") == "theorem t : True"
    ts = [Theorem("t1", "theorem t1 (p : Prop) : p → p", split="train"), Theorem("t2", "theorem t2 : True")]
    save_theorems(ts, tmp_path / "o.jsonl")
    assert load_theorems(tmp_path / "o.jsonl") == ts
