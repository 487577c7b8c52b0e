"""The iterate job end to end, tiny budget, on the one-GPU profile: an iteration from scratch in which
serving and training take the GPU in turn, a rerun that skips everything, kills in the middle of prove /
SFT / EBM training followed by the same command (equal to the uninterrupted run), the gate refusing a
policy trained on shuffled tactics, the refusal of a run folder made by another config, and a held
fleet with a hot-loaded adapter proving what a fresh fleet proves.

No GPU here: the local Ray cluster's node declares one GPU, which Ray accepts on a CPU machine and
schedules by exactly as by a real one, while the models run on the CPU (training workers fall back to
the CPU when torch sees no CUDA). configs/gpu1.yaml's placement is used as it is: generator 0.5 +
encoder 0.5 of the GPU, SFT and EBM workers the whole GPU, so if the serving actors kept their share
the SFT worker could never be placed and the run would hang (pytest-timeout stops it then). The
embedded local profile runs the same job under ``ray job submit`` (test_job_submit.py).

The model is the real tiny Llama of ``tiny_model_dir`` (random weights): its proofs come mostly from the
probe tactics, which is enough to make trajectories, SFT examples, embeddings and an EBM. Its greedy
outputs are degenerate from the start, so the generation probe's thresholds are loosened here (the gate
test below tightens them again). Kills are raised in-process at a chosen point (an exception out of the
trajectory writer, Ray Train's ``interrupt_after_step`` hooks), which leaves the files as a SIGKILL there would.
"""

import json
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import pytest

# a deadlock blocks inside ray.get, which swallows the signal method's exception: the thread method ends the run
pytestmark = [pytest.mark.ray, pytest.mark.timeout(900, method="thread")]

ray = pytest.importorskip("ray")

from actors import iterate_stages as st  # noqa: E402
from jobs.iterate import Runner  # noqa: E402
from raylib.config import load_config  # noqa: E402
from raylib.stages import RunMismatchError, Stage  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LOOSE = ["sft.guards.max_identical_share=1.0", "sft.guards.max_empty_share=1.0",
         "sft.guards.max_repetitive_share=1.0", "sft.guards.probe_states=4", "sft.guards.probe_samples=1",
         "sft.guards.probe_max_tokens=8"]
HELD = ("GeneratorActor", "EncoderActor", "LeanWorker")  # what the iterate job keeps up between stages


def make_cfg(root, name, model, *extra):
    """configs/gpu1.yaml with its placement as it is, the tiny HF model on the CPU, a tiny budget."""
    return load_config(ROOT / "configs" / "gpu1.yaml", [
        f"run.root={root}", f"run.name={name}", f"model.path={model}", "model.backend=hf", "model.dtype=float32",
        "model.device=cpu", "value.dtype=float32", "sft.dtype=float32",
        "workers.lean=1", "workers.lean_cpus=0.5", "workers.drivers=1", "workers.searches_per_driver=2",
        "workers.placement_timeout_s=120",
        "search.max_nodes=10", "search.num_candidates=4", "search.max_tokens=24", "search.timeout_per_theorem=30",
        "iterate.train_theorems=8", "iterate.heldout_theorems=4", "iterate.sft_steps=4", "iterate.ebm_steps=4",
        "iterate.sft_probe_steps=true",  # a random model proves with the probe tactics only
        "iterate.prove_max_nodes=16", "iterate.eval_max_nodes=16",
        "sft.checkpoint_every=2", "sft.eval_every=2", "sft.batch_size=4", "sft.valid_fraction=0.0",
        "ebm.hidden_sizes=[32]", "ebm.batch_size=8", "ebm.negatives=3", "ebm.checkpoint_every=2",
        "ebm.eval_every=2", "ebm.eval_groups=16", "value.max_length=128",
        *LOOSE, *extra])


@pytest.fixture(scope="module", autouse=True)
def one_gpu():
    """A local Ray cluster whose one node declares one GPU (and 4 CPUs, as a small GPU box)."""
    from ray.cluster_utils import Cluster

    from tests.test_placement import free_port

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 1, "include_dashboard": True,
                                                      "dashboard_port": free_port()})
    ray.init(address=c.address, namespace="iterate", configure_logging=False, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("iterate")


def _alive_held() -> list[str]:
    from ray.util.state import list_actors

    alive = list_actors(address=ray.get_runtime_context().gcs_address, filters=[("state", "=", "ALIVE")],
                        limit=10_000)
    return sorted(a.class_name for a in alive if a.class_name in HELD)


def _gpu_free(wait_s: float = 60.0) -> float:
    """The cluster's free GPU, once it reads the whole GPU (Ray's resource view follows an actor's death
    by a moment) or after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while (free := ray.available_resources().get("GPU", 0.0)) < 1.0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return free


class Reference(NamedTuple):
    cfg: object
    summary: dict
    seen: dict     # by stage (sft, encode, ebm): the held actors alive and the GPU free as it started
    events: list   # the serving fleet's start / stop / hot_load / released events


@pytest.fixture(scope="module")
def reference(root, tiny_model_dir):
    """One uninterrupted iteration from scratch, watching what holds the GPU as each training stage starts."""
    cfg = make_cfg(root, "ref", tiny_model_dir)
    seen: dict[str, dict] = {}
    patch = pytest.MonkeyPatch()
    for name in ("sft", "encode", "ebm"):
        real = st.STAGE_FUNCS[name]

        def hooked(ctx, out, name=name, real=real):
            seen[name] = {"serving": _alive_held(), "gpu_free": _gpu_free()}
            return real(ctx, out)
        patch.setitem(st.STAGE_FUNCS, name, hooked)
    try:
        runner = Runner(cfg, 1, None)
        summary = runner.run()
    finally:
        patch.undo()
    return Reference(cfg, summary, seen, runner.serving.events)


def _records(run_dir):
    return {p.parent.relative_to(run_dir).as_posix(): json.loads(p.read_text())
            for p in sorted(run_dir.glob("iter_*/*/stage.json"))}


def test_iteration_from_scratch(reference):
    cfg, summary = reference.cfg, reference.summary
    run = cfg.run_dir
    recs = _records(run)
    assert set(recs) == {"iter_0/evaluate", "iter_0/noise"} | {f"iter_1/{s}" for s in st.STAGES}
    noise = summary["baseline"]["noise"]  # the starting model on a second seed: the evaluation's own noise
    assert noise["seeds"] == [cfg.run.seed, cfg.run.seed + 1] and noise["proof_rate_llm"][0] == \
        summary["baseline"]["proof_rate_llm"] and noise["spread"] == abs(noise["proof_rate_llm"][1]
                                                                          - noise["proof_rate_llm"][0])
    assert all(r["status"] == "complete" and r["config_hash"] and "base" in r["fingerprints"] for r in recs.values())
    (it,) = summary["iterations"]
    assert it["iteration"] == 1 and isinstance(it["promoted"], bool) and it["reason"]
    assert it["proof_rate_llm"] is not None and it["proof_rate_ebm"] is not None  # the EBM was trained and used
    assert set(it["stage_wall_s"]) == set(st.STAGES)
    assert json.loads((run / "summary.json").read_text())["iterations"][0]["iteration"] == 1
    table = recs["iter_1/sft_data"]["outputs"]["sources"]["iter_1"]
    assert set(table) == {"input", "positives", "empty", "sorry", "denied", "probe", "duplicates", "kept"}
    assert table["input"] > table["positives"] >= table["kept"] > 0
    decision = json.loads((run / "iter_1/gate/decision.json").read_text())
    assert [c["name"] for c in decision["checks"]][:2] == ["proof_rate", "generation_probe"]
    current = json.loads((run / "current.json").read_text())
    assert current["adapter"] == (str(run / "iter_1/sft/model") if it["promoted"] else None)
    assert recs["iter_1/ebm"]["outputs"]["ebm"] and (run / "iter_1/ebm/ebm").is_dir()


def test_serving_and_training_take_the_gpu_in_turn(reference):
    cfg = reference.cfg
    assert (cfg.workers.generator_gpus, cfg.workers.encoder_gpus) == (0.5, 0.5)  # the profile shares the GPU
    assert cfg.sft.use_gpu and cfg.ebm.use_gpu and not cfg.workers.serve_during_training
    assert reference.summary["iterations"][0]["proof_rate_ebm"] is not None  # the encoder served the new EBM
    for name in ("sft", "encode", "ebm"):
        assert reference.seen[name] == {"serving": [], "gpu_free": 1.0}, (name, reference.seen[name])
    events = [(e["event"], e["role"]) for e in reference.events]
    # one generator for the baseline evaluation and the prove stage (kept between them), released before
    # SFT, brought back with the new adapter (and an encoder with the new EBM) for the evaluation
    assert [e for e in events if e[1] != "lean"][:6] == [
        ("start", "generator"), ("stop", "generator"), ("released", "serving"),
        ("start", "generator"), ("start", "encoder"), ("stop", "generator")], events
    starts = [e for e in reference.events if e["event"] == "start" and e["role"] != "lean"]
    assert starts[0]["adapter"] is None and starts[1]["adapter"] == str(cfg.run_dir / "iter_1/sft/model")
    assert starts[2]["ebm"] == str(cfg.run_dir / "iter_1/ebm/ebm")
    released = next(e for e in reference.events if e["event"] == "released")
    assert released["stage"] == "iter_1/sft"
    assert _alive_held() == []  # shut down at the end


def test_rerun_skips_every_complete_stage(reference, monkeypatch):
    cfg, summary = reference.cfg, reference.summary
    before = _records(cfg.run_dir)
    for name in st.STAGES:  # any stage function called again fails the test
        monkeypatch.setitem(st.STAGE_FUNCS, name, lambda ctx, out, n=name: pytest.fail(f"{n} ran again"))
    assert Runner(cfg, 1, None).run()["iterations"] == summary["iterations"]
    assert _records(cfg.run_dir) == before


def test_changed_config_is_refused_unless_from_stage(reference, monkeypatch):
    cfg = reference.cfg
    Runner(cfg, 1, None).pin()  # the same config: accepted
    changed = make_cfg(cfg.run.root, "ref", cfg.model.path, "iterate.tolerance=0.5")
    with pytest.raises(RunMismatchError, match=r"iterate\.tolerance: 0\.02 -> 0\.5"):
        Runner(changed, 1, None).pin()
    # --from-stage gate on a copy: the stages before the gate are kept, only the gate runs again
    shutil.copytree(cfg.run_dir, cfg.run_dir.parent / "from_gate")
    moved = make_cfg(cfg.run.root, "from_gate", cfg.model.path, "iterate.tolerance=0.5")
    for name in st.STAGES[:-1]:
        monkeypatch.setitem(st.STAGE_FUNCS, name, lambda ctx, out, n=name: pytest.fail(f"{n} ran again"))
    runner = Runner(moved, 1, "gate")
    runner.pin()
    runner.run()
    decision = json.loads((moved.run_dir / "iter_1/gate/decision.json").read_text())
    assert decision["checks"][0]["limit"] == pytest.approx(decision["checks"][0]["before"] - 0.5)
    Runner(moved, 1, None).pin()  # the run folder now belongs to the new config


def _copy_until(cfg, name, stage):
    """A copy of the reference run folder holding the stages before ``stage`` of iteration 1 only."""
    dst = cfg.run_dir.parent / name
    shutil.copytree(cfg.run_dir, dst)
    keep = st.STAGES.index(stage)
    for s in st.STAGES[keep:]:
        shutil.rmtree(dst / "iter_1" / s, ignore_errors=True)
    for f in ("summary.json", "current.json"):
        (dst / f).unlink(missing_ok=True)
    return dst


def _rows(run_dir, stage="prove"):
    import pyarrow.parquet as pq

    d = run_dir / "iter_1" / stage / "trajectories"
    return {f.name: pq.read_table(f).select(["node_id", "parent_id", "state", "tactic", "on_proof_path"]).to_pylist()
            for f in sorted(d.glob("*.parquet"))}


def _results(run_dir):
    rows = [json.loads(x) for x in (run_dir / "iter_1/prove/results.jsonl").read_text().splitlines()]
    return rows, {r["theorem"]: (r.get("outcome"), r.get("proved"), r.get("proof"), r.get("nodes")) for r in rows}


def test_kill_during_prove_then_rerun_equals_uninterrupted(reference, monkeypatch):
    cfg = reference.cfg
    run = _copy_until(cfg, "kill_prove", "prove")
    kcfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"name": "kill_prove"})})
    import raylib.data.trajectory as traj

    real, calls = traj.write_trajectory, []

    def dies_after_three(*a, **kw):
        if len(calls) == 3:
            raise KeyboardInterrupt("killed in the middle of prove")
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(traj, "write_trajectory", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        Runner(kcfg, 1, None).run()
    assert Stage(run, 1, "prove").record() is None and len(_rows(run)) == 3
    monkeypatch.setattr(traj, "write_trajectory", real)
    Runner(kcfg, 1, None, stop_after="sft_data").run()
    lines, res = _results(run)
    ref_lines, ref_res = _results(cfg.run_dir)
    assert len({r["theorem"] for r in lines}) == len(ref_res) == 8
    assert res == ref_res
    assert _rows(run) == _rows(cfg.run_dir)
    assert _records(run)["iter_1/sft_data"]["outputs"]["sources"] == \
        _records(cfg.run_dir)["iter_1/sft_data"]["outputs"]["sources"]


def _interrupting(monkeypatch, module, func, step):
    import importlib

    mod = importlib.import_module(module)
    real = getattr(mod, func)
    monkeypatch.setattr(mod, func, lambda *a, **kw: real(*a, **dict(kw, interrupt_after_step=step)))
    return mod, func, real


@pytest.mark.parametrize("stage,module,func", [("sft", "raylib.train.sft", "run_sft"),
                                               ("ebm", "raylib.train.ebm", "train_ebm")])
def test_kill_during_training_then_rerun_resumes_and_equals_uninterrupted(reference, monkeypatch, stage, module,
                                                                          func):
    cfg = reference.cfg
    name = f"kill_{stage}"
    run = _copy_until(cfg, name, stage)
    kcfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"name": name})})
    mod, _, real = _interrupting(monkeypatch, module, func, 2)
    with pytest.raises(ray.train.TrainingFailedError, match="interrupted after the checkpoint of step 2"):
        Runner(kcfg, 1, None, stop_after=stage).run()
    assert Stage(run, 1, stage).record() is None
    monkeypatch.setattr(mod, func, real)
    Runner(kcfg, 1, None, stop_after=stage).run()
    got, ref = _records(run)[f"iter_1/{stage}"]["outputs"], _records(cfg.run_dir)[f"iter_1/{stage}"]["outputs"]
    hist = (run / f"iter_1/{stage}/history.jsonl").read_text().splitlines()
    ref_hist = (cfg.run_dir / f"iter_1/{stage}/history.jsonl").read_text().splitlines()
    assert len(hist) == len(ref_hist)  # no step lost or repeated
    assert [json.loads(h)["loss"] for h in hist] == pytest.approx([json.loads(h)["loss"] for h in ref_hist], rel=1e-5)
    assert got["steps"] == ref["steps"]
    resumed = json.loads((run / f"iter_1/{stage}/result.json").read_text()).get("resumed_from")
    assert resumed == 2, "the rerun trained from scratch instead of resuming from the step-2 checkpoint"


@pytest.fixture(scope="module")
def taught_model(repo_root):
    """The bootstrapped tiny model (python -m jobs.bootstrap; make run builds it): a policy that proves
    held-out theorems with its own tactics, so that a worse one can be told from it."""
    from raylib.config import Config

    d = repo_root / Config().model.path
    if not (d / "BOOTSTRAP_COMPLETE").is_file():
        pytest.skip(f"needs the bootstrapped tiny model in {d} (python -m jobs.bootstrap, about 5-20 min on 2 cores)")
    return d


def test_gate_refuses_a_policy_trained_on_shuffled_tactics_and_keeps_the_old(root, taught_model, monkeypatch):
    """SFT on tactics shuffled across states teaches the marginal tactic distribution, not the policy: the
    candidate must fail the gate (proof rate or generation probe) and current.json must still name the
    starting model. The guards are the defaults here."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    cfg = load_config(None, [
        f"run.root={root}", "run.name=shuffled", f"model.path={taught_model}", "model.device=cpu",
        "workers.lean=1", "workers.drivers=1", "workers.searches_per_driver=4",
        "search.max_nodes=16", "search.timeout_per_theorem=30", "iterate.train_theorems=24",
        "iterate.heldout_theorems=16", "iterate.value_model=false", "iterate.sft_steps=40", "sft.lr=0.02",
        "sft.checkpoint_every=40", "sft.eval_every=0", "sft.valid_fraction=0.0", "sft.guards.probe_states=8"])
    real = st.STAGE_FUNCS["sft_data"]

    def shuffled(ctx, out):
        res = real(ctx, out)
        t = pq.read_table(out / "train.parquet")
        comp = t.column("completion").to_pylist()
        random.Random(0).shuffle(comp)
        pq.write_table(t.set_column(t.schema.get_field_index("completion"), "completion", pa.array(comp)),
                       out / "train.parquet")
        return res

    monkeypatch.setitem(st.STAGE_FUNCS, "sft_data", shuffled)
    summary = Runner(cfg, 1, None).run()
    (it,) = summary["iterations"]
    decision = json.loads((cfg.run_dir / "iter_1/gate/decision.json").read_text())
    assert it["promoted"] is False and decision["promote"] is False, decision
    bad = {c["name"] for c in decision["checks"] if not c["passed"]}
    assert bad & {"proof_rate", "generation_probe"}, decision
    rate = next(c for c in decision["checks"] if c["name"] == "proof_rate")
    assert rate["before"] == summary["baseline"]["proof_rate_llm"] > 0  # the old policy proves held-out theorems
    current = json.loads((cfg.run_dir / "current.json").read_text())
    assert current["adapter"] is None and current["base"] == str(taught_model)


def _prove_rows(d):
    import pyarrow.parquet as pq

    from actors.fleet import read_results

    res = {t: (r["outcome"], r.get("proof"), r.get("nodes"), r["result_key"])
           for t, r in read_results(d / "results.jsonl").items()}
    cols = ["node_id", "parent_id", "state", "tactic", "step_logprob", "generator_fingerprint"]
    traj = {f.name: pq.read_table(f).select(cols).to_pylist() for f in sorted((d / "trajectories").glob("*.parquet"))}
    return res, traj


def test_held_fleet_with_a_hot_loaded_adapter_proves_what_a_fresh_fleet_proves(tmp_path, tiny_model_dir,
                                                                              tiny_adapter_dir):
    from actors.fleet import prove_theorems
    from actors.serving import ServingFleet

    base = make_cfg(tmp_path, "held", tiny_model_dir, "workers.searches_per_driver=1")
    tuned = st.with_settings(base, model__adapter=str(tiny_adapter_dir))
    theorems = st.train_window(base, 1)[:3]
    holder = ServingFleet(base)
    try:
        holder.fleet(base)  # serving the base model, as after the baseline evaluation
        fleet = holder.fleet(tuned)
        assert [(e["event"], e["role"]) for e in holder.events][-1] == ("hot_load", "generator")
        held = prove_theorems(tuned, theorems, tmp_path / "held", fleet=fleet, seed=7)
    finally:
        holder.shutdown()
    fresh = prove_theorems(tuned, theorems, tmp_path / "fresh", seed=7)
    assert held["fingerprints"] == fresh["fingerprints"] and held["result_key"] == fresh["result_key"]
    assert _prove_rows(tmp_path / "held") == _prove_rows(tmp_path / "fresh")
