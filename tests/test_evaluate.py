"""The evaluate stage: disjointness from training theorems, and an end-to-end run on a real local Ray
cluster (real tiny transformers model with random weights, built-in environment through real Lean-worker
actors, a random but seeded EBM head on the model's real state encoder)."""

import json

import pytest

from raylib.config import load_config
from raylib.data.sft import EXAMPLE_SCHEMA
from raylib.data.trajectory import write_trajectory
from raylib.env import Theorem
from raylib.env.builtin.corpus import builtin_theorems
from raylib.eval.disjoint import OverlapError, check_disjoint, read_trained_theorems

PROBE_PROVABLE = [Theorem("imp_self", "theorem imp_self (p : Prop) : p → p"),
                  Theorem("and_intro", "theorem and_intro (p q : Prop) (hp : p) (hq : q) : p ∧ q")]


def _traj_rows(theorem: Theorem):
    return [{"run": "r", "iteration": 0, "theorem": theorem.name, "statement": theorem.statement, "node_id": 0,
             "parent_id": None, "depth": 0, "state": "⊢ p", "tactic": None, "step_logprob": None, "energy": None,
             "outcome": "state", "on_proof_path": False, "timings": {"gen_s": 0.0, "lean_s": 0.0, "ebm_s": 0.0},
             "generator_fingerprint": "g", "encoder_fingerprint": None, "config_hash": "c"}]


def _training_files(tmp_path, traj_theorems, sft_names):
    import pyarrow as pa
    import pyarrow.parquet as pq

    traj = tmp_path / "trained" / "trajectories"
    for t in traj_theorems:
        write_trajectory(_traj_rows(t), traj, t.name)
    sft = tmp_path / "trained" / "sft" / "train.parquet"
    sft.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"prompt": "p", "completion": "c", "theorem": n, "source": "trajectory"}
                                         for n in sft_names], schema=EXAMPLE_SCHEMA), sft)
    return traj, sft


def test_disjointness_refuses_an_overlapping_set_naming_the_theorems(tmp_path):
    train = builtin_theorems("textbook")[:3]
    renamed = Theorem("renamed_copy", train[2].statement.replace(train[2].name, "renamed_copy", 1))
    traj, sft = _training_files(tmp_path, train[:2] + [renamed], ["sft_only_theorem"])
    trained = read_trained_theorems([traj, str(tmp_path / "trained" / "sft" / "*.parquet")])
    assert set(trained) == {train[0].name, train[1].name, "renamed_copy", "sft_only_theorem"}
    held_out = builtin_theorems("textbook")[3:6]
    assert check_disjoint(held_out, trained)["trained_theorems"] == 4  # disjoint: passes
    eval_set = held_out + [train[0], train[2], Theorem("sft_only_theorem", "theorem sft_only_theorem : True")]
    with pytest.raises(OverlapError) as e:
        check_disjoint(eval_set, trained)
    # by name (trajectory and SFT file) and by statement under another name
    assert e.value.theorems == sorted([train[0].name, train[2].name, "sft_only_theorem"])
    msg = str(e.value)
    assert train[0].name in msg and "sft_only_theorem" in msg and "same statement as training theorem renamed_copy" in msg
    with pytest.raises(FileNotFoundError, match="no trajectory, SFT example or theorem file matches"):
        read_trained_theorems([tmp_path / "nowhere" / "*.parquet"])


def test_evaluate_job_refuses_overlap_before_any_work(tmp_path, tiny_model_dir, capsys):
    from jobs.evaluate import main
    from raylib.env.theorems import save_theorems

    thms = builtin_theorems("textbook")[:3]
    traj, _ = _training_files(tmp_path, thms[1:2], [])
    save_theorems(thms, tmp_path / "eval.jsonl")
    rc = main(["--theorems", str(tmp_path / "eval.jsonl"), "--trained-on", str(traj),
               "--set", f"run.root={tmp_path}", "--set", f"model.path={tiny_model_dir}"])
    err = capsys.readouterr().err
    assert rc == 3 and "refused" in err and thms[1].name in err and thms[0].name not in err
    assert not (tmp_path / "local" / "evaluate" / "eval.json").exists()
    assert not (tmp_path / "local" / "evaluate" / "llm").exists()  # nothing was searched


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_evaluate_end_to_end_on_local_ray(local_ray, tmp_path, tiny_model_dir, ebm_dir):
    from actors.evaluate import evaluate
    from raylib.eval.tables import eval_markdown

    theorems = builtin_theorems("textbook")[:1] + PROBE_PROVABLE
    traj, _ = _training_files(tmp_path, builtin_theorems("textbook")[5:7], [])
    cfg = load_config(None, [f"run.root={tmp_path}", f"model.path={tiny_model_dir}", "search.num_candidates=2",
                             "search.max_tokens=16", "search.max_nodes=3", "search.timeout_per_theorem=20",
                             "workers.lean=1", "workers.drivers=1", "workers.searches_per_driver=4",
                             "model.device=cpu"])
    out = tmp_path / "eval"
    other = tmp_path / "other" / "results.jsonl"  # an earlier evaluation to compare with by name
    other.parent.mkdir()
    other.write_text("".join(json.dumps({"theorem": t.name, "proved": t.name != "imp_self", "verified": True})
                             + "\n" for t in theorems))
    res = evaluate(cfg, theorems, out, attempts=2, ebm_path=str(ebm_dir), trained_on=[traj],
                   grid=["search.num_candidates=1,2"], against=other)
    saved = json.loads((out / "eval.json").read_text())
    assert saved["budget"] == {"theorems": 3, "attempts": 2, "max_nodes": 3, "timeout_per_theorem_s": 20.0,
                               "num_candidates": 2, "max_expansions": 18, "max_search_s": 120.0, "seeds": [0, 1]}
    assert saved["disjoint"]["checked"] and saved["disjoint"]["trained_theorems"] == 2
    assert set(saved["variants"]) == {"llm", "ebm"}
    for v in saved["variants"].values():
        # every attempt accounted each theorem once; the figures agree with the prove stage's own files
        assert len(v["dirs"]) == 2 and len(v["attempt_rates"]) == 2
        per_attempt = []
        for d in v["dirs"]:
            rows = [json.loads(x) for x in open(f"{d}/results.jsonl")]
            assert sorted(r["theorem"] for r in rows) == sorted(t.name for t in theorems)
            per_attempt.append({r["theorem"]: bool(r["proved"] and r.get("verified", True)) for r in rows})
        assert v["attempt_rates"] == [round(sum(a.values()) / 3, 4) for a in per_attempt]
        assert v["per_theorem"] == {t.name: sum(a[t.name] for a in per_attempt) for t in theorems}
        # the probe tactics alone prove these two: proved in every attempt, but not by the model
        assert v["per_theorem"]["imp_self"] == 2 and v["per_theorem"]["and_intro"] == 2
        assert v["proof_rate_model_only"] is not None and v["proof_rate_model_only"] <= v["proof_rate"] - 0.666
        assert set(v["pass_at_k"]) == {"1", "2"} and v["pass_at_k"]["2"] >= v["pass_at_k"]["1"]
        assert sum(v["depth_distribution"].values()) == sum(v["per_theorem"].values())
    assert saved["proof_rate_llm"] == saved["variants"]["llm"]["proof_rate"]
    assert saved["proof_rate_ebm"] == saved["variants"]["ebm"]["proof_rate"]
    assert set(saved["ebm_vs_llm"]) >= {"gained", "lost"}
    assert [r["setting"] for r in saved["grid"]["rows"]] == [{"search.num_candidates": "1"},
                                                             {"search.num_candidates": "2"}]
    assert all(r["mean_unique_tactics"] is not None for r in saved["grid"]["rows"])
    md = (out / "eval.md").read_text()
    assert md == eval_markdown(res) and "LLM+EBM" in md and "pass@2" in md and "num_candidates" in md
    llm_any = {t: c > 0 for t, c in saved["variants"]["llm"]["per_theorem"].items()}
    assert saved["against"]["llm"]["compared"] == 3 and "imp_self" in saved["against"]["llm"]["gained"]
    assert saved["against"]["llm"]["lost"] == sorted(t for t, p in llm_any.items() if not p and t != "imp_self")


def test_grid_settings_are_the_product_of_search_values():
    from actors.evaluate import parse_grid

    assert parse_grid(["search.num_candidates=8,16", "search.temperature=0.8,1.3"]) == [
        {"search.num_candidates": "8", "search.temperature": "0.8"},
        {"search.num_candidates": "8", "search.temperature": "1.3"},
        {"search.num_candidates": "16", "search.temperature": "0.8"},
        {"search.num_candidates": "16", "search.temperature": "1.3"}]
    assert parse_grid([]) == []  # no --grid: no grid run (not one empty setting)
    with pytest.raises(ValueError, match="expected KEY=V1,V2"):
        parse_grid(["search.num_candidates"])
    with pytest.raises(ValueError, match="sweeps search settings"):
        parse_grid(["model.path=a,b"])
