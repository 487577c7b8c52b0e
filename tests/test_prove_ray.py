"""The prove job end to end on a real local Ray cluster: a real tiny transformers model (random weights,
built here), real LeanWorker actors on the built-in environment, real SearchDriver actors; then the three
fault cases: a Lean worker's process killed, a LeanWorker actor killed, a SearchDriver actor killed."""

import json
import os
import signal
import threading
import time

import pytest

from raylib.config import load_config
from raylib.data.trajectory import read_trajectory
from raylib.env import Theorem
from raylib.env.builtin.corpus import builtin_theorems

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir):
    return tiny_model_dir


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def make_cfg(tmp_path, model_dir, *extra):
    return load_config(None, [f"run.root={tmp_path}", f"model.path={model_dir}", "search.num_candidates=4",
                              "search.max_tokens=24", "search.max_nodes=6", "search.timeout_per_theorem=20",
                              "workers.lean=2", "workers.drivers=2", "workers.searches_per_driver=2", *extra])


def check_outputs(out, theorems):
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    names = [r["theorem"] for r in rows]
    assert sorted(names) == sorted(t.name for t in theorems)  # every theorem once, none twice
    for r in rows:
        assert r["outcome"] in ("proved", "exhausted", "budget", "timeout"), r  # never infra_error
        if r["outcome"] != "start_failed":
            table = read_trajectory(next((out / "trajectories").glob(f"*{r['theorem'][:20]}*")))
            ids = table.column("node_id").to_pylist()
            assert len(ids) == len(set(ids)) and ids[0] == 0
            versions = set(table.column("env_versions").to_pylist())  # the env that made every row
            assert len(versions) == 1 and json.loads(versions.pop())["backend"] == "builtin"
    return rows


def test_prove_job_writes_results_and_resumes(local_ray, tmp_path, model_dir):
    from jobs.prove import prove_dir, run

    theorems = builtin_theorems("textbook")[:4] + [  # two that the probe tactics alone prove
        Theorem("imp_self", "theorem imp_self (p : Prop) : p → p"),
        Theorem("and_intro", "theorem and_intro (p q : Prop) (hp : p) (hq : q) : p ∧ q")]
    cfg = make_cfg(tmp_path, model_dir)
    summary = run(cfg, theorems)
    out = prove_dir(cfg, 0)
    rows = check_outputs(out, theorems)
    assert summary["theorems"] == 6 and summary["proved"] == sum(r["proved"] and r["verified"] for r in rows)
    assert {r["theorem"] for r in rows if r["proved"]} >= {"imp_self", "and_intro"}
    assert set(summary["time_split"]) == {"generate", "lean", "ebm", "other"}
    assert summary["outcomes"]["proved"] == summary["proved"] and summary["infra_errors"] == 0
    assert summary["reused"] == 0 and summary["proof_rate_model_only"] <= summary["proof_rate"]
    assert summary["env_versions"]
    assert summary["lean_pass_rate"] is not None and summary["mean_unique_tactics"] > 0
    before = (out / "results.jsonl").read_text()
    again = run(cfg, theorems)  # same command again: nothing redone, same summary counts
    assert (out / "results.jsonl").read_text() == before and again["proved"] == summary["proved"]
    assert again["reused"] == len(theorems)


def _kill_during(run_fn, killer, results_path, total):
    """Run the job in a thread; kill once some theorems are finished and others are still pending."""
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("summary", run_fn()))
    t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (results_path.is_file() and results_path.read_text().count("\n")):
        time.sleep(0.05)
    assert results_path.read_text().count("\n") < total, "the job finished before the fault was injected"
    killer()
    t.join(timeout=300)
    assert not t.is_alive()
    return result["summary"]


@pytest.mark.parametrize("fault", ["lean_process", "lean_actor", "driver_actor"])
def test_prove_job_survives_faults(local_ray, tmp_path, model_dir, fault):
    from actors.fleet import start_actors
    from jobs.prove import prove_dir, run

    theorems = builtin_theorems("generated", 200, 0)[:12]
    cfg = make_cfg(tmp_path, model_dir, "search.max_nodes=16")
    fleet = start_actors(cfg)
    lean_pid = ray.get(fleet.lean[0].actor_pid.remote())
    killed = []

    def killer():
        if fault == "lean_process":
            for w in fleet.lean:
                pid = ray.get(w.process_pid.remote())
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
        elif fault == "lean_actor":
            ray.kill(fleet.lean[0], no_restart=False)
        else:
            ray.kill(fleet.drivers[0], no_restart=False)

    summary = _kill_during(lambda: run(cfg, theorems, fleet=fleet), killer,
                           prove_dir(cfg, 0) / "results.jsonl", len(theorems))
    rows = check_outputs(prove_dir(cfg, 0), theorems)
    assert summary["theorems"] == len(theorems)
    if fault == "lean_process":  # each client restarted its process and rebuilt its states by replay
        assert killed and not set(killed) & {ray.get(w.process_pid.remote()) for w in fleet.lean}
    elif fault == "lean_actor":  # Ray restarted the actor (calls that hit it failed over to the other)
        assert ray.get(fleet.lean[0].actor_pid.remote()) != lean_pid
    else:  # the theorems of the killed driver were handed to a driver again
        assert any(r["attempts"] > 1 for r in rows)
    assert summary["infra_errors"] == 0
    fleet.shutdown()


def test_prove_cli_refuses_a_missing_model_before_starting_ray(tmp_path, capsys, monkeypatch):
    import jobs.prove

    monkeypatch.setattr(jobs.prove, "run", lambda *a, **k: pytest.fail("the job started despite a missing model"))
    assert jobs.prove.main(["--set", f"model.path={tmp_path / 'none'}", "--limit", "1"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "jobs.bootstrap" in err


def test_result_key_covers_what_changes_results_only():
    """Resume reuses a result only under the same result-affecting settings and fingerprints."""
    from actors.fleet import result_key
    from raylib.config import load_config

    fps = {"generator": "g1", "encoder": None}
    base = result_key(load_config(None, []), fps)
    for neutral in ("workers.lean=7", "workers.drivers=5", "value.encode_workers=3", "value.part_states=10"):
        assert result_key(load_config(None, [neutral]), fps) == base, neutral
    for changing in ("search.max_nodes=9", "model.dtype=bfloat16", "value.pooling=last", "env.timeout_s=3"):
        assert result_key(load_config(None, [changing]), fps) != base, changing
    assert result_key(load_config(None, []), {**fps, "generator": "g2"}) != base
    assert result_key(load_config(None, []), fps, seed=1) != base
