"""The run report built from a synthetic run folder laid out as the iterate job lays it out: iteration 0
(baseline evaluation), iteration 1 complete (every stage), iteration 2 in progress (prove running)."""

import base64
import json
import re

import pytest

from raylib.data.trajectory import write_trajectory


def _w(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _stage(run, k, name, outputs, wall):
    _w(run / f"iter_{k}" / name / "stage.json", {"status": "complete", "outputs": outputs, "wall_s": wall})


def _variant(rate, sd, model_only, start_failed=0):
    return {"proof_rate": rate, "proof_rate_sd": sd, "proof_rate_model_only": model_only,
            "proof_rate_model_only_sd": 0.0, "pass_at_k": {"1": rate, "2": rate + 0.05}, "attempt_rates": [rate],
            "per_theorem": {}, "start_failed": start_failed, "infra_errors": 0, "depth_distribution": {"1": 2, "3": 1},
            "time_split": {"seconds": {}, "share": {"generate": 0.8, "lean": 0.1, "ebm": 0.05, "other": 0.05}},
            "label": None}


def _eval(llm, ebm=None):
    v = {"llm": dict(llm, label="LLM-only")} | ({"ebm": dict(ebm, label="LLM+EBM")} if ebm else {})
    return {"theorems": 20, "budget": {"theorems": 20, "attempts": 2, "max_nodes": 16, "timeout_per_theorem_s": 10.0,
                                       "max_expansions": 640, "max_search_s": 400, "seeds": [0, 1],
                                       "num_candidates": 4}, "variants": v}


def _tree(theorem, proved):
    rows = []
    for nid, parent, depth, outcome, on in [(0, None, 0, "state", proved), (1, 0, 1, "state", proved),
                                            (2, 0, 1, "error", False), (3, 0, 1, "state", False),
                                            (4, 1, 2, "finished" if proved else "error", proved)]:
        rows.append({"run": "syn", "iteration": 1, "theorem": theorem, "statement": f"theorem {theorem} : True",
                     "node_id": nid, "parent_id": parent, "depth": depth, "state": f"s{nid}", "tactic": None,
                     "step_logprob": None, "energy": None, "outcome": outcome, "on_proof_path": on,
                     "timings": {"gen_s": 0.0, "lean_s": 0.0, "ebm_s": 0.0}, "generator_fingerprint": "g",
                     "encoder_fingerprint": None, "config_hash": "c"})
    return rows


@pytest.fixture()
def run_dir(tmp_path):
    run = tmp_path / "syn"
    _stage(run, 0, "evaluate", {"proof_rate_llm": 0.25}, 30.0)
    _w(run / "iter_0" / "evaluate" / "eval.json", _eval(_variant(0.25, 0.02, 0.10, start_failed=1)))
    # iteration 1: every stage
    for name, wall in (("prove", 40.0), ("sft_data", 2.0), ("sft", 60.0), ("probe", 5.0), ("encode", 8.0),
                       ("ebm", 12.0), ("evaluate", 35.0), ("gate", 0.1)):
        _stage(run, 1, name, {"passed": True, "steps": 3} if name == "sft" else {}, wall)
    traj = run / "iter_1" / "prove" / "trajectories"
    write_trajectory(_tree("thm_a", True), traj, "thm_a")
    write_trajectory(_tree("thm_b", False), traj, "thm_b")
    _w(run / "iter_1" / "prove" / "summary.json",
       {"theorems": 3, "proved": 1, "proof_rate": 0.3333, "proof_rate_model_only": 0.0,
        "outcomes": {"proved": 1, "exhausted": 1, "start_failed": 1, "infra_error": 0},
        "time_split": {"generate": 0.7, "lean": 0.2, "ebm": 0.0, "other": 0.1}})
    _w(run / "iter_1" / "sft_data" / "sources.json",
       {"iter_1": {"input": 10, "positives": 7, "empty": 0, "sorry": 1, "denied": 0, "probe": 3, "duplicates": 1,
                  "kept": 2}})
    (run / "iter_1" / "sft" / "history.jsonl").write_text(
        "".join(json.dumps(h) + "\n" for h in [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 1.75},
                                               {"step": 3, "loss": 1.25, "eval_loss": 1.5, "probe_empty_share": 0.0,
                                                "probe_repetitive_share": 0.125, "probe_identical_share": 0.25}])
        + '{"step": 4, "lo')  # a torn last line, as a live run may leave it
    _w(run / "iter_1" / "sft" / "result.json", {"metrics": {}, "plan": {"plan_coverage": 1.0, "plan_dead_lr_share": 0.0}})
    _w(run / "iter_1" / "probe" / "probe.json",
       {"generation": {"passed": True}, "separation_before": {"centroid_l2": 6.4, "probe_accuracy": 0.83, "norm_gap": 0.5},
        "separation_after": {"centroid_l2": 5.9, "probe_accuracy": 0.81, "norm_gap": 0.4}})
    (run / "iter_1" / "ebm").mkdir(parents=True, exist_ok=True)
    (run / "iter_1" / "ebm" / "history.jsonl").write_text(
        "".join(json.dumps(h) + "\n" for h in [{"step": 1, "loss": 2.0, "gap": 0.1, "rank": 0.25, "val_loss": 1.9,
                                                "val_gap": 0.1, "val_rank": 0.125},
                                               {"step": 2, "loss": 1.5, "gap": 0.4, "rank": 0.5, "train_loss": 1.6,
                                                "train_gap": 0.5, "train_rank": 0.75, "val_loss": 1.7,
                                                "val_gap": 0.3, "val_rank": 0.25}]))
    _w(run / "iter_1" / "evaluate" / "eval.json", _eval(_variant(0.4, 0.03, 0.2), _variant(0.45, 0.01, 0.25)))
    _w(run / "iter_1" / "gate" / "decision.json",
       {"iteration": 1, "promote": True, "reason": "all checks passed",
        "checks": [{"name": "proof_rate", "passed": True, "before": 0.25, "after": 0.45, "limit": 0.23,
                    "detail": "held-out proof rate 0.250 -> 0.450"}]})
    # iteration 2: prove running (folder, no complete record)
    (run / "iter_2" / "prove" / "trajectories").mkdir(parents=True)
    _w(run / "summary.json", {"iterations": [{"iteration": 1, "proof_rate_llm": 0.4, "proof_rate_ebm": 0.45,
                                              "promoted": True, "reason": "all checks passed",
                                              "stage_wall_s": {"prove": 40.0}}],
                              "baseline": {"iteration": 0, "proof_rate_llm": 0.25,
                                           "noise": {"seeds": [0, 1], "proof_rate_llm": [0.25, 0.3], "spread": 0.05}},
                              "progress": {"baseline": 0.25, "last": 0.45, "gain": 0.2, "last_llm": 0.4,
                                           "gain_llm": 0.15, "first": 0.45, "gain_over_first": 0.0,
                                           "noise": 0.05, "above_noise": True},
                              "in_progress": {"iteration": 2, "stages_complete": []}})
    return run


def _pngs(html):
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)]


def test_report_from_a_synthetic_run_folder(run_dir):
    from jobs.report import main

    assert main([str(run_dir)]) == 0
    md = (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()
    # proof rate per iteration, both columns, with and without probes, sd, gate decision
    assert "| 0 | 25.0% ± 2.0 | 10.0% ± 0.0 | no EBM |" in md
    assert "| 1 | 40.0% ± 3.0 | 20.0% ± 0.0 | 45.0% ± 1.0 | 25.0% ± 0.0 | 0 | **promoted** | all checks passed |" in md
    assert "| 2 | not run yet |  |  |  |  |  |  |" in md  # iteration 2's evaluation is not there yet
    assert "| 1 | LLM+EBM | pass@1 45.0%, pass@2 50.0% |" in md and "| 1 | LLM+EBM | 2 x depth 1, 1 x depth 3 |" in md
    assert "held-out proof rate 0.250 -> 0.450" in md
    # the evaluation's own noise (one model, two seeds) beside the rise of the proof rate
    assert "proves 25.0% of the held-out theorems on seed 0 and 30.0% on seed 1 (spread 5.0%)" in md
    assert ("the starting model 25.0%; the model in use after the last iteration 45.0%, LLM-only 40.0% "
            "(gain +0.200 — above the noise); after iteration 1: 45.0% (gain since +0.000)") in md
    # SFT loss and guard figures; the torn line was skipped
    assert "| 1 | 3 | 1.250 | 1.500 | 1.000 | 0.000 | 0.000 | 0.125 | 0.250 | passed |" in md
    assert "| 1 | iter_1 | 10 | 7 | 0 | 1 | 0 | 3 | 1 | 2 |" in md
    # EBM loss / gap / rank; separation before and after
    assert "| 1 | 2 | 1.500 | 1.600 | 0.500 | 0.750 | 1.700 | 0.300 | 0.250 |" in md
    assert "| 1 | passed | 6.400 | 5.900 | 0.830 | 0.810 | 0.500 | 0.400 |" in md
    # trajectories: two trees of 5 nodes; positives = open states on a proof path (2 in thm_a), start failures apart
    assert "| 1 | 1/3 | 0.0% | 1 | 10 | 2 / 4 (33.3%) | 2.000 | 5.0 / 5 / 5 | 0 |" in md
    assert "| 2 | running |  |  |  |  |  |  |  |" in md  # iteration 2's prove stage is running
    # time: stage wall times and search split
    assert "| iter 1 | 40.0 | 2.0 | 60.0 | 5.0 | 8.0 | 12.0 | 35.0 | 0.1 | – |" in md  # noise: iteration 0's
    assert "| iter 2 | running | not run yet |" in md and "| iter 0 | – | – | – | – | – | – | 30.0 | – | not run yet |" in md
    assert "| 1 | prove (train split) | 70.0% | 20.0% | 0.0% | 10.0% |" in md
    # plots: PNG files linked from the markdown, the same PNGs embedded in the self-contained HTML
    names = re.findall(r"\]\(report_files/([a-z_]+\.png)\)", md)
    assert set(names) == {"proof_rate.png", "sft_loss.png", "ebm_loss.png", "ebm_gap.png", "stage_time.png",
                          "depth.png"}
    embedded = _pngs(html)
    assert len(embedded) == len(names)
    for name, png in zip(names, embedded):
        assert png.startswith(b"\x89PNG") and (run_dir / "report_files" / name).read_bytes() == png
    assert "src='http" not in html and "<link" not in html  # nothing outside the file


def test_report_of_a_run_with_nothing_yet(tmp_path):
    from raylib.eval.report import write_report

    (tmp_path / "fresh" / "iter_0" / "evaluate").mkdir(parents=True)
    md, html = write_report(tmp_path / "fresh")
    text = md.read_text()
    assert "| 0 | running |" in text and "SFT: not run yet" in text and "EBM: not run yet" in text
    assert "No gate yet: not run yet" in text
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        write_report(tmp_path / "missing")
