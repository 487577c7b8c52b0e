"""Stage records: skip when complete with the same inputs, resume an interrupted stage, redo on changed
inputs, refuse a run folder of another config unless --from-stage, name the stage that makes a missing input."""

import json

import pytest

from raylib.stages import (
    MissingInputError,
    RunMismatchError,
    Stage,
    StageRef,
    check_run,
    invalidate_from,
    parse_stage_ref,
    run_summary,
    write_run_record,
)

STAGES = ["prove", "sft", "gate"]


def _stage_fn(calls, text="out"):
    def fn(d):
        calls.append(d)
        (d / "part.txt").open("a").write(text + "\n")
        return {"rows": len((d / "part.txt").read_text().splitlines())}
    return fn


def test_complete_stage_with_same_inputs_is_skipped(tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("a")
    st = Stage(tmp_path / "run", 1, "prove")
    calls = []
    out1, skipped1 = st.run(_stage_fn(calls), config_hash="c1", inputs=[inp], params={"n": 1})
    out2, skipped2 = st.run(_stage_fn(calls), config_hash="c1", inputs=[inp], params={"n": 1})
    assert (skipped1, skipped2) == (False, True) and len(calls) == 1 and out1 == out2 == {"rows": 1}
    rec = json.loads((st.dir / "stage.json").read_text())
    assert rec["status"] == "complete" and rec["config_hash"] == "c1" and rec["outputs"] == {"rows": 1}
    assert list(rec["inputs"].values())[0] == __import__("raylib.hashing").hashing.file_hash(inp)


@pytest.mark.parametrize("change", ["input", "config", "fingerprint", "params"])
def test_changed_inputs_redo_the_stage_from_a_clean_folder(tmp_path, change):
    inp = tmp_path / "in.txt"
    inp.write_text("a")
    st = Stage(tmp_path / "run", 1, "prove")
    calls = []
    kw = dict(config_hash="c1", fingerprints={"base": "m1"}, inputs=[inp], params={"n": 1})
    st.run(_stage_fn(calls), **kw)
    if change == "input":
        inp.write_text("b")
    elif change == "config":
        kw["config_hash"] = "c2"
    elif change == "fingerprint":
        kw["fingerprints"] = {"base": "m2"}
    else:
        kw["params"] = {"n": 2}
    out, skipped = st.run(_stage_fn(calls), **kw)
    assert not skipped and len(calls) == 2
    assert out == {"rows": 1}  # the old partial file was cleared, not appended to


def test_interrupted_stage_resumes_in_place_and_record_is_written_last(tmp_path):
    st = Stage(tmp_path / "run", 1, "sft")

    def dies(d):
        (d / "part.txt").write_text("first half\n")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        st.run(dies, config_hash="c1")
    assert not (st.dir / "stage.json").exists() and st.record() is None
    out, skipped = st.run(_stage_fn([]), config_hash="c1")
    assert not skipped and out == {"rows": 2}  # resumed: the partial file was kept
    # an interrupted stage whose inputs changed meanwhile starts afresh
    st2 = Stage(tmp_path / "run", 2, "sft")
    with pytest.raises(KeyboardInterrupt):
        st2.run(dies, config_hash="c1")
    out, _ = st2.run(_stage_fn([]), config_hash="c2")
    assert out == {"rows": 1}


def test_torn_record_counts_as_not_complete(tmp_path):
    st = Stage(tmp_path / "run", 1, "prove")
    st.dir.mkdir(parents=True)
    (st.dir / "stage.json").write_text('{"status": "compl')
    assert st.record() is None
    calls = []
    st.run(_stage_fn(calls), config_hash="c")
    assert len(calls) == 1


def test_adopt_keeps_a_stage_made_from_other_inputs_and_restamps_it(tmp_path):
    st = Stage(tmp_path / "run", 1, "prove")
    calls = []
    st.run(_stage_fn(calls), config_hash="old")
    _, skipped = st.run(_stage_fn(calls), config_hash="new", adopt=True)
    assert skipped and len(calls) == 1
    _, skipped = st.run(_stage_fn(calls), config_hash="new")  # the next plain rerun skips it too
    assert skipped and len(calls) == 1


def test_missing_input_names_the_stage_that_makes_it(tmp_path):
    with pytest.raises(MissingInputError, match=r"iter_3/sft_data.*made by the sft_data stage of iteration 3"):
        Stage(tmp_path, 3, "sft_data").outputs()


def test_run_of_another_config_is_refused_naming_the_difference(tmp_path):
    run = tmp_path / "run"
    cfg = {"search": {"max_nodes": 64}, "sft": {"lr": 0.001}}
    assert check_run(run, cfg, "h1", "m1", None) == []
    write_run_record(run, cfg, "h1", "m1")
    assert check_run(run, cfg, "h1", "m1", None) == []
    changed = {"search": {"max_nodes": 128}, "sft": {"lr": 0.001}}
    with pytest.raises(RunMismatchError, match=r"search\.max_nodes: 64 -> 128[\s\S]*--from-stage"):
        check_run(run, changed, "h2", "m1", None)
    with pytest.raises(RunMismatchError, match="model fingerprint: 'm1' -> 'm2'"):
        check_run(run, cfg, "h1", "m2", None)
    assert check_run(run, changed, "h2", "m1", "sft") == ["search.max_nodes: 64 -> 128"]


def test_from_stage_clears_that_stage_and_everything_after(tmp_path):
    run = tmp_path / "run"
    for k in (1, 2):
        for s in STAGES:
            Stage(run, k, s).run(lambda d: {}, config_hash="c")
    assert parse_stage_ref("iter_1/sft", STAGES) == StageRef(1, "sft")
    with pytest.raises(ValueError, match="unknown stage 'sfx'.*prove, sft, gate"):
        parse_stage_ref("sfx", STAGES)
    with pytest.raises(ValueError, match="iter_K/STAGE"):
        parse_stage_ref("it1/sft", STAGES)
    assert invalidate_from(run, StageRef(1, "sft"), STAGES) == 5
    assert Stage(run, 1, "prove").record() is not None
    assert all(Stage(run, k, s).record() is None for k, s in [(1, "sft"), (1, "gate"), (2, "prove"), (2, "gate")])
    # plain STAGE: the latest iteration with a folder
    for s in STAGES:
        Stage(run, 1, s).run(lambda d: {}, config_hash="c")
    assert invalidate_from(run, StageRef(None, "gate"), STAGES) == 1
    assert Stage(run, 1, "sft").record() is not None and Stage(run, 1, "gate").record() is None


def test_run_summary_lists_finished_iterations_from_records(tmp_path):
    run = tmp_path / "run"
    Stage(run, 0, "evaluate").run(lambda d: {"proof_rate_llm": 0.2, "proof_rate_ebm": None}, config_hash="c")
    Stage(run, 1, "evaluate").run(lambda d: {"proof_rate_llm": 0.3, "proof_rate_ebm": 0.35}, config_hash="c")
    Stage(run, 1, "gate").run(lambda d: {"promote": True, "reason": "promoted: ok",
                                         "current": {"proof_rate": 0.35}}, config_hash="c")
    Stage(run, 2, "prove").run(lambda d: {"proof_rate": 0.5}, config_hash="c")
    s = run_summary(run)
    assert s["baseline"]["proof_rate_llm"] == 0.2
    assert [(i["iteration"], i["proof_rate_llm"], i["proof_rate_ebm"], i["promoted"]) for i in s["iterations"]] \
        == [(1, 0.3, 0.35, True)]
    assert set(s["iterations"][0]["stage_wall_s"]) == {"evaluate", "gate"}
    assert s["in_progress"]["iteration"] == 2 and s["in_progress"]["stages_complete"] == ["prove"]


def test_run_summary_sets_the_rise_of_the_proof_rate_beside_the_noise(tmp_path):
    run = tmp_path / "run"
    Stage(run, 0, "evaluate").run(lambda d: {"proof_rate_llm": 0.2}, config_hash="c")
    Stage(run, 0, "noise").run(lambda d: {"seeds": [0, 1], "proof_rate_llm": [0.2, 0.25], "spread": 0.05},
                               config_hash="c")
    for k, rate, llm in ((1, 0.3, 0.25), (2, 0.4, 0.3)):
        Stage(run, k, "gate").run(lambda d, r=rate, m=llm: {"promote": True,
                                                            "current": {"proof_rate": r, "proof_rate_llm": m}},
                                  config_hash="c")
    p = run_summary(run)["progress"]
    # the rise: the model in use after the last iteration against the starting model on the default seed
    assert (p["baseline"], p["last"], p["gain"], p["noise"]) == (0.2, 0.4, 0.2, 0.05)
    assert (p["last_llm"], p["gain_llm"], p["first"], p["gain_over_first"]) == (0.3, 0.1, 0.3, 0.1)
    assert p["above_noise"] is True
    Stage(run, 0, "noise").clear()
    Stage(run, 0, "noise").run(lambda d: {"seeds": [0, 1], "proof_rate_llm": [0.2, 0.45], "spread": 0.25},
                               config_hash="c")
    assert run_summary(run)["progress"]["above_noise"] is False  # a gain within the noise is no rise
