"""Serving and training take the one GPU in turn: the one-GPU profile (configs/gpu1.yaml: generator 0.5 +
encoder 0.5 of the GPU, SFT and EBM workers one whole GPU each, the encode job's actor 0.5) runs an
iteration of the iterate job, prove → ... → gate, on a Ray cluster whose node declares one GPU.

No GPU here: Ray accepts a declared GPU on a CPU machine and schedules by it exactly as by a real one,
while the models run on the CPU (the training workers fall back to the CPU when torch sees no CUDA). The
tiny model and budgets are test_iterate's. If the serving actors kept their GPU share, the SFT worker's
request for the whole GPU could never be met and the run would hang: pytest-timeout stops it then.
Also checked: the held fleet proves exactly what a fresh per-stage fleet proves after a hot-loaded
adapter (same results, trajectories and result key).
"""

import json

import pytest

# a deadlock blocks inside ray.get, which swallows the signal method's exception: the thread method ends the run
pytestmark = [pytest.mark.ray, pytest.mark.timeout(900, method="thread")]

ray = pytest.importorskip("ray")

from actors import iterate_stages as st  # noqa: E402
from jobs.iterate import Runner  # noqa: E402
from raylib.config import load_config  # noqa: E402

HELD = ("GeneratorActor", "EncoderActor", "LeanWorker")  # what the iterate job keeps up between stages


@pytest.fixture(scope="module")
def one_gpu(repo_root):
    from ray.cluster_utils import Cluster

    from tests.test_placement import free_port

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 1, "include_dashboard": True,
                                                      "dashboard_port": free_port()})
    ray.init(address=c.address, namespace="gpu-turns", configure_logging=False, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def gpu1_cfg(repo_root, root, name, model, *extra):
    """configs/gpu1.yaml with its placement as it is, the tiny HF model on the CPU, test_iterate's budget."""
    from tests.test_iterate import LOOSE

    return load_config(repo_root / "configs" / "gpu1.yaml", [
        f"run.root={root}", f"run.name={name}", f"model.path={model}", "model.backend=hf", "model.dtype=float32",
        "model.device=cpu", "value.dtype=float32", "sft.dtype=float32",
        "workers.lean=1", "workers.lean_cpus=0.5", "workers.drivers=1", "workers.searches_per_driver=2",
        "workers.placement_timeout_s=120",
        "search.max_nodes=10", "search.num_candidates=4", "search.max_tokens=24", "search.timeout_per_theorem=30",
        "iterate.train_theorems=8", "iterate.heldout_theorems=4", "iterate.sft_steps=4", "iterate.ebm_steps=4",
        "sft.checkpoint_every=2", "sft.eval_every=2", "sft.batch_size=4", "sft.valid_fraction=0.0",
        "ebm.hidden_sizes=[32]", "ebm.batch_size=8", "ebm.negatives=3", "ebm.checkpoint_every=2",
        "ebm.eval_every=2", "ebm.eval_groups=16", "value.max_length=128", *LOOSE, *extra])


def _alive_held() -> list[str]:
    from ray.util.state import list_actors

    alive = list_actors(address=ray.get_runtime_context().gcs_address, filters=[("state", "=", "ALIVE")],
                        limit=10_000)
    return sorted(a.class_name for a in alive if a.class_name in HELD)


def _gpu_free(wait_s: float = 60.0) -> float:
    """The cluster's free GPU, once it reads the whole GPU (Ray's resource view follows an actor's death
    by a moment) or after ``wait_s``."""
    import time

    deadline = time.monotonic() + wait_s
    while (free := ray.available_resources().get("GPU", 0.0)) < 1.0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return free


def test_one_gpu_profile_iterates_with_serving_and_training_in_turn(one_gpu, repo_root, tmp_path, tiny_model_dir,
                                                                   monkeypatch):
    cfg = gpu1_cfg(repo_root, tmp_path, "gpu1", tiny_model_dir)
    assert (cfg.workers.generator_gpus, cfg.workers.encoder_gpus) == (0.5, 0.5)  # the profile shares the GPU
    assert cfg.sft.use_gpu and cfg.ebm.use_gpu and not cfg.workers.serve_during_training
    seen: dict[str, dict] = {}
    for name in ("sft", "encode", "ebm"):  # what is alive, and the GPU left free, when each stage starts
        real = st.STAGE_FUNCS[name]

        def hooked(ctx, out, name=name, real=real):
            seen[name] = {"serving": _alive_held(), "gpu_free": _gpu_free()}
            return real(ctx, out)
        monkeypatch.setitem(st.STAGE_FUNCS, name, hooked)

    runner = Runner(cfg, 1, None)
    summary = runner.run()
    (it,) = summary["iterations"]
    assert it["iteration"] == 1 and it["proof_rate_llm"] is not None
    assert it["proof_rate_ebm"] is not None  # the new EBM served by the encoder beside the generator, 0.5 + 0.5
    for name in ("sft", "encode", "ebm"):
        assert seen[name] == {"serving": [], "gpu_free": 1.0}, (name, seen[name])
    events = [(e["event"], e["role"]) for e in runner.serving.events]
    # one generator for the baseline evaluation and the prove stage (kept between them), released before
    # SFT, brought back with the new adapter (and an encoder with the new EBM) for the evaluation
    assert [e for e in events if e[1] != "lean"][:6] == [
        ("start", "generator"), ("stop", "generator"), ("released", "serving"),
        ("start", "generator"), ("start", "encoder"), ("stop", "generator")], events
    starts = [e for e in runner.serving.events if e["event"] == "start" and e["role"] != "lean"]
    assert starts[0]["adapter"] is None and starts[1]["adapter"] == str(cfg.run_dir / "iter_1/sft/model")
    assert starts[2]["ebm"] == str(cfg.run_dir / "iter_1/ebm/ebm")
    released = next(e for e in runner.serving.events if e["event"] == "released")
    assert released["stage"] == "iter_1/sft"
    assert _alive_held() == []  # shut down at the end
    assert json.loads((cfg.run_dir / "summary.json").read_text())["iterations"][0]["iteration"] == 1


def _prove_rows(d):
    import pyarrow.parquet as pq

    from actors.fleet import read_results

    res = {t: (r["outcome"], r.get("proof"), r.get("nodes"), r["result_key"])
           for t, r in read_results(d / "results.jsonl").items()}
    cols = ["node_id", "parent_id", "state", "tactic", "step_logprob", "generator_fingerprint"]
    traj = {f.name: pq.read_table(f).select(cols).to_pylist() for f in sorted((d / "trajectories").glob("*.parquet"))}
    return res, traj


def test_held_fleet_with_a_hot_loaded_adapter_proves_what_a_fresh_fleet_proves(one_gpu, repo_root, tmp_path,
                                                                              tiny_model_dir, tiny_adapter_dir):
    from actors.fleet import prove_theorems
    from actors.serving import ServingFleet

    base = gpu1_cfg(repo_root, tmp_path, "held", tiny_model_dir, "workers.searches_per_driver=1")
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
