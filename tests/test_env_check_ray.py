"""`make run`'s job end to end on a real local Ray cluster: LeanWorker actors on the built-in environment."""

import json

import pytest

from raylib.config import load_config
from raylib.env.theorems import TheoremFileError

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def test_env_check_proves_the_textbook_set_through_workers(local_ray, tmp_path):
    from jobs.env_check import run

    cfg = load_config(None, [f"run.root={tmp_path}", "workers.lean=2"])
    summary = run(cfg)
    assert summary["theorems"] >= 25 and summary["verified"] == summary["theorems"] and not summary["failed"]
    rows = [json.loads(line) for line in (tmp_path / "local" / "env_check" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == summary["theorems"]
    assert all(r["kinds"][-1] == "finished" and r["steps"] == len(r["script"]) for r in rows)
    assert json.loads((tmp_path / "local" / "env_check" / "summary.json").read_text())["config_hash"] == cfg.hash()


def test_lean_worker_rebuilds_a_state_after_its_process_is_killed(local_ray):
    import os
    import signal

    from actors.lean_worker import lean_worker_pool
    from raylib.env import Finished, State, Theorem

    cfg = load_config(None)
    a, b = lean_worker_pool(cfg, 2)
    thm = Theorem("and_swap", "theorem and_swap (p q : Prop) (h : p ∧ q) : q ∧ p")
    s1 = ray.get(a.run_tac.remote(ray.get(a.start.remote(thm)), "constructor"))
    assert isinstance(s1, State)
    os.kill(ray.get(a.process_pid.remote()), signal.SIGKILL)
    s2 = ray.get(a.run_tac.remote(s1, "exact h.2"))   # same worker, fresh process, state replayed
    done = ray.get(b.run_tac.remote(s2, "exact h.1"))  # another worker rebuilds the state too
    assert isinstance(done, Finished)
    assert ray.get(b.verify.remote(thm, done.path)).ok
    for w in (a, b):
        ray.kill(w)


def test_env_check_refuses_non_builtin_sources(local_ray, tmp_path):
    from jobs.env_check import run

    f = tmp_path / "t.jsonl"
    f.write_text('{"name": "t", "statement": "theorem t (p : Prop) : p → p"}\n')
    with pytest.raises(TheoremFileError, match="built-in oracle"):
        run(load_config(None, [f"theorems.source={f}"]))
