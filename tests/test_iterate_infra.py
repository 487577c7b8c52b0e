"""A prove stage whose theorems still fail on infrastructure after their retries is not complete: the iterate
job writes no record for it (so the same command redoes those theorems) instead of training on a stage
where most theorems were never searched.

Only ``actors.fleet.prove_theorems`` is stood in for (no Ray here); it answers as the real one does after
its retries: a results row per theorem, ``outcome: infra_error`` for the ones whose search driver died, and
``infra_errors`` counted in the summary. The real one's retries are tested in tests/test_infra_failures.py.
"""

import json

import pytest

from actors import iterate_stages as st
from raylib.config import load_config
from raylib.stages import Stage


def _fake_prove(lost: set):
    def prove_theorems(cfg, theorems, out, **kw):
        rows = [{"theorem": t.name, "outcome": "infra_error" if t.name in lost else "exhausted"} for t in theorems]
        (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return {"theorems": len(rows), "proved": 0, "proof_rate": 0.0, "infra_errors": sum(t.name in lost
                                                                                            for t in theorems)}
    return prove_theorems


def test_prove_stage_with_infra_errors_is_left_incomplete_and_redone(tmp_path, monkeypatch):
    import actors.fleet

    cfg = load_config(None, [f"run.root={tmp_path}", "iterate.train_theorems=4"])
    ctx = st.IterCtx(cfg, cfg.run_dir, 1, st.initial_pointers(cfg), "c")
    names = [t.name for t in st.train_window(cfg, 1)]
    stage = Stage(cfg.run_dir, 1, "prove")
    monkeypatch.setattr(actors.fleet, "prove_theorems", _fake_prove({names[0], names[2]}))
    with pytest.raises(st.InfraFailure, match="2 theorem"):
        stage.run(lambda d: st.stage_prove(ctx, d), config_hash="c")
    assert stage.record() is None  # not complete: the next run does not skip it
    monkeypatch.setattr(actors.fleet, "prove_theorems", _fake_prove(set()))
    out, skipped = stage.run(lambda d: st.stage_prove(ctx, d), config_hash="c")
    assert not skipped and out["theorems"] == 4 and stage.record()["status"] == "complete"


def test_from_stage_keeps_iteration_0s_noise_stage_only_when_restarting_later(tmp_path):
    """--from-stage adopts the stages before the restart point; iteration 0's noise stage is not in the
    per-iteration stage list, so it is kept exactly when the restart is in a later iteration."""
    from jobs.iterate import Runner

    r = Runner(load_config(None, [f"run.root={tmp_path}"]), 1, None)
    r.adopt_until = (0, st.STAGES.index("evaluate"))  # --from-stage iter_0/evaluate
    assert (r.adopt(0, "evaluate"), r.adopt(0, "noise")) == (False, False)
    r.adopt_until = (1, st.STAGES.index("sft"))  # --from-stage iter_1/sft
    assert (r.adopt(0, "noise"), r.adopt(1, "prove"), r.adopt(1, "sft")) == (True, True, False)
