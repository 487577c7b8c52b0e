"""The value model in search: the EncoderActor (tiny model + EBM head) answers energies, the search records
them (terminal states never scored), and the EBM's sibling accuracy against chance is exact on a
hand-built tree and agrees with the search's own count on a real search."""

import asyncio

import pytest

from raylib.eval.value_stats import sibling_accuracy, sibling_accuracy_dir


def _row(theorem, nid, parent, energy, on_path=False, outcome="state"):
    return {"run": "r", "iteration": 0, "theorem": theorem, "node_id": nid, "parent_id": parent,
            "energy": energy, "on_proof_path": on_path, "outcome": outcome}


def hand_tree():
    """Theorem a: root 0 → {1 (path, E=0.1), 2 (E=0.5), 3 (E=0.9)}; 1 → {4 (path, E=0.7), 5 (E=0.2)};
    4 → {6 (path, finished, unscored), 7 (E=0.3)}. Theorem b: 0 → {1 (path, E=0.4), 2 (E=0.4)} (a tie),
    1 → {3 (path, E=1.0)} (a lone scored child: not counted), 2 → {4 (unscored), 5 (E=2)}."""
    a = [_row("a", 0, None, 0.0, True), _row("a", 1, 0, 0.1, True), _row("a", 2, 0, 0.5), _row("a", 3, 0, 0.9),
         _row("a", 4, 1, 0.7, True), _row("a", 5, 1, 0.2), _row("a", 6, 4, None, True, "finished"),
         _row("a", 7, 4, 0.3)]
    b = [_row("b", 0, None, 0.0, True), _row("b", 1, 0, 0.4, True), _row("b", 2, 0, 0.4), _row("b", 3, 1, 1.0, True),
         _row("b", 4, 2, None, False, "error"), _row("b", 5, 2, 2.0)]
    return a + b


def test_sibling_accuracy_exact_on_a_hand_built_tree():
    s = sibling_accuracy(hand_tree())
    # a: node 1 lowest of 3 (hit 1, chance 1/3); node 4 not lowest of 2 (hit 0, chance 1/2); node 6 unscored.
    # b: node 1 tied lowest of 2 (hit 1/2, chance 1/2); node 3 has no scored sibling.
    assert s["per_theorem"]["a"] == {"nodes": 2, "accuracy": 0.5, "chance": round((1 / 3 + 1 / 2) / 2, 4),
                                     "lift": round(0.5 - (1 / 3 + 1 / 2) / 2, 4)}
    assert s["per_theorem"]["b"] == {"nodes": 1, "accuracy": 0.5, "chance": 0.5, "lift": 0.0}
    assert (s["nodes"], s["accuracy"], s["chance"], s["theorems"]) == (3, 0.5, round((1 / 3 + 1 / 2 + 1 / 2) / 3, 4), 2)
    empty = sibling_accuracy([_row("c", 0, None, None, True), _row("c", 1, 0, None, True, "finished")])
    assert (empty["nodes"], empty["accuracy"], empty["chance"], empty["per_theorem"]) == (0, None, None, {})


def test_sibling_accuracy_of_trajectory_files(tmp_path):
    from tests.test_encode_job import tree_rows

    from raylib.data.trajectory import write_trajectory

    base = tree_rows("t", ["⊢ p"])[0]  # root 0 → {1 (path, E=0.5), 2 (E=0.1)}; 1 → 3 (path, alone)
    rows = [{**base, "node_id": i, "parent_id": parent, "depth": depth, "state": f"⊢ p{i}", "energy": e,
             "on_proof_path": i in (0, 1, 3)}
            for i, parent, depth, e in [(0, None, 0, None), (1, 0, 1, 0.5), (2, 0, 1, 0.1), (3, 1, 2, 0.2)]]
    write_trajectory(rows, tmp_path)
    got = sibling_accuracy_dir(tmp_path)
    assert got == sibling_accuracy(rows) and got["nodes"] == 1 and got["accuracy"] == 0.0 and got["chance"] == 0.5
    assert sibling_accuracy_dir(tmp_path, theorems=["other"]) is None
    write_trajectory([{**r, "energy": None} for r in rows], tmp_path)  # no EBM: nothing to report
    assert sibling_accuracy_dir(tmp_path) is None


def test_encoder_actor_energies_drive_the_search(tiny_model_dir, tmp_path):
    """BestFirstSearch on the built-in environment with the EncoderActor class (in-process, no Ray) holding
    the tiny model and an EBM head: every expanded state's energy is the EBM's energy of its embedding,
    terminal states carry none, and sibling_accuracy on the rows agrees with the search's own count."""
    import torch

    from actors.encoder import EncoderActor
    from raylib.config import load_config
    from raylib.env import make_env
    from raylib.models.ebm import EBM, build_head
    from raylib.models.encoder import state_encoder_from_config
    from raylib.search.best_first import BestFirstSearch
    from raylib.search.env import ThreadedEnv
    from tests.test_search import THEOREMS, VALID_DISTRACTORS, OracleGenerator, cfg, oracle_steps

    conf = load_config(None, [f"model.path={tiny_model_dir}", "model.device=cpu", "search.beta=1.0"])
    enc = state_encoder_from_config(conf)
    torch.manual_seed(0)
    path = EBM(build_head(enc.dim, hidden=16), enc.fingerprint()).save(tmp_path / "ebm")
    conf = load_config(None, [f"model.path={tiny_model_dir}", "model.device=cpu", f"value.ebm_path={path}"])
    env = ThreadedEnv.from_factory(lambda: make_env(load_config(None).env), max_workers=1)
    thm = THEOREMS["and_comm"]
    try:
        async def go():
            actor = EncoderActor(conf)
            steps = await oracle_steps(env, thm)
            gen = OracleGenerator(steps, good_lp=-1.0, bad_lp=-0.5, distractors=VALID_DISTRACTORS)
            search = BestFirstSearch(cfg(beta=1.0, max_nodes=200, probe_tactics=[]), env, gen, actor)
            return await search.prove(thm)

        result = asyncio.run(go())
    finally:
        env.close()
    rows = result.rows("r", 0, config_hash="c", generator_fingerprint="g")
    scored = [r for r in rows if r["energy"] is not None]
    assert scored and all(r["outcome"] == "state" for r in scored)
    assert all(r["energy"] is None for r in rows if r["outcome"] != "state")  # terminal never scored
    ebm = EBM.load(path)
    want = ebm.energies(enc.encode([r["state"] for r in scored]), enc.fingerprint())
    assert [r["energy"] for r in scored] == pytest.approx(want, abs=1e-4)
    acc = sibling_accuracy(rows)
    assert acc["nodes"] == result.ebm_top1_total > 0
    if len({r["energy"] for r in scored}) == len(scored):  # no ties: the same count as the search's strict one
        assert round(acc["accuracy"] * acc["nodes"]) == result.ebm_top1_hits
