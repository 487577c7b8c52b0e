"""The evaluate stage on Ray: a theorem set under a stated budget, LLM-only and LLM+EBM side by side.

``evaluate(cfg, theorems, out_dir, attempts=K, ebm_path=None, trained_on=None, fleet=None)`` runs
each variant K times through ``actors.fleet.prove_theorems`` (attempt ``a`` with seed ``run.seed + a``),
each attempt in its own folder ``out_dir/<variant>/attempt_<a>/`` (resumable: a finished attempt is
reused by the prove stage's result key), and writes ``eval.json`` and ``eval.md``:

* the budget: attempts x search.max_nodes expansions x search.timeout_per_theorem seconds per theorem;
* per variant: proof rate mean ± sd over the attempts, with and without the probe tactics (model-only),
  pass@k for k = 1..K, theorems whose statement did not start and infrastructure failures apart,
  proof-depth distribution, time split, unique tactics / children per expansion, Lean pass rate;
* LLM+EBM against LLM-only, and (``against``) against another evaluation: theorems gained and lost by name
  (a theorem counts as proved when any attempt proved it);
* ``grid``: a sweep of search settings on the same theorems (one attempt each, the variant with the value
  model when there is one), tabulating proof rate, unique tactics and children per expansion, Lean pass
  rate and generate time.

Before anything runs, the theorems are checked disjoint from the training theorems (``trained_on``:
trajectory / SFT parquet files, folders or globs); an overlap raises ``OverlapError`` naming them.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from actors.serving import drop_drivers, search_fleet
from raylib.config import Config, apply_override
from raylib.env import Theorem
from raylib.eval import metrics as M
from raylib.eval.disjoint import OverlapError, check_disjoint, read_trained_theorems
from raylib.eval.tables import eval_markdown

log = logging.getLogger(__name__)

__all__ = ["OverlapError", "check_disjoint", "drop_drivers", "evaluate", "load_against", "parse_grid", "search_fleet",
           "with_overrides"]

LABELS = {"llm": "LLM-only", "ebm": "LLM+EBM"}


def with_overrides(cfg: Config, assignments: Sequence[str]) -> Config:
    """A copy of ``cfg`` with ``key=value`` overrides applied (values read as YAML) and validated."""
    raw = cfg.model_dump(mode="json")
    for a in assignments:
        apply_override(raw, a)
    return Config.model_validate(raw)


def parse_grid(specs: Sequence[str]) -> list[dict[str, str]]:
    """``["search.num_candidates=8,16", "search.temperature=0.8,1.3"]`` -> the 4 settings of their product."""
    axes: list[tuple[str, list[str]]] = []
    if not specs:  # no grid (itertools.product() of nothing is one empty setting)
        return []
    for spec in specs:
        key, sep, values = spec.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            raise ValueError(f"--grid {spec!r}: expected KEY=V1,V2,..., e.g. search.num_candidates=8,16")
        if not key.strip().startswith("search."):
            raise ValueError(f"--grid {spec!r}: the grid sweeps search settings (search.*); evaluate another model "
                             "or backend with its own run instead")
        axes.append((key.strip(), vals))
    return [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def _run_variant(cfg: Config, theorems: Sequence[Theorem], out: Path, attempts: int, fleet,
                 iteration: int) -> dict[str, Any]:
    """``attempts`` seeded prove runs of ``theorems`` on ``fleet`` (its drivers are dropped afterwards)."""
    from actors.fleet import prove_theorems, read_results

    names = [t.name for t in theorems]
    per_attempt, all_rows, dirs = [], [], []
    try:
        for a in range(attempts):
            d = out / f"attempt_{a}"
            prove_theorems(cfg, theorems, d, fleet=fleet, seed=cfg.run.seed + a,
                           run_name=f"{cfg.run.name}-eval", iteration=iteration)
            done = read_results(d / "results.jsonl")
            rows = [done[n] for n in names if n in done]
            per_attempt.append(rows)
            all_rows += rows
            dirs.append(str(d))
    finally:
        drop_drivers(fleet)
    rates = [M.proof_rates(r) for r in per_attempt]
    pk = M.pass_at_k_table([M.proved_map(r) for r in per_attempt], names)
    pr_m, pr_sd = M.mean_sd([r["proof_rate"] for r in rates])
    mo = [r["proof_rate_model_only"] for r in rates]
    mo_m, mo_sd = M.mean_sd(mo) if all(x is not None for x in mo) else (None, None)
    return {"proof_rate": round(pr_m, 4), "proof_rate_sd": round(pr_sd, 4),
            "proof_rate_model_only": round(mo_m, 4) if mo_m is not None else None,
            "proof_rate_model_only_sd": round(mo_sd, 4) if mo_sd is not None else None,
            "pass_at_k": pk["pass_at_k"], "attempt_rates": pk["attempt_rates"], "proved_any": pk["proved_any"],
            "per_theorem": pk["per_theorem"], "attempts": rates,
            "start_failed": rates[0]["start_failed"] if rates else 0,
            "infra_errors": sum(r["infra_errors"] for r in rates),
            "depth_distribution": M.depth_distribution(all_rows), "time_split": M.time_split(all_rows),
            "search": M.search_figures(all_rows), "dirs": dirs}


def load_against(spec: str | Path) -> tuple[str, dict[str, dict[str, bool]]]:
    """Per-variant theorem -> proved maps of another evaluation: an eval.json, a results.jsonl, a folder
    holding either, or a run folder (its latest ``iter_*/evaluate/eval.json``)."""
    p = Path(spec)
    if p.is_dir():
        for cand in (p / "eval.json", p / "results.jsonl"):
            if cand.is_file():
                return load_against(cand)
        evals = sorted(p.glob("iter_*/evaluate/eval.json"), key=lambda f: int(f.parent.parent.name[5:]))
        if evals:
            return load_against(evals[-1])
        raise FileNotFoundError(f"{p}: no eval.json, results.jsonl or iter_*/evaluate/eval.json to compare against")
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such evaluation to compare against (give an eval.json, a results.jsonl "
                                "or a run folder)")
    if p.suffix == ".jsonl":
        from actors.fleet import read_results

        return str(p), {"llm": M.proved_map(read_results(p).values())}
    data = json.loads(p.read_text(encoding="utf-8"))
    return str(p), {v: {t: c > 0 for t, c in d["per_theorem"].items()} for v, d in data.get("variants", {}).items()}


def evaluate(cfg: Config, theorems: Sequence[Theorem], out_dir: Path, attempts: int = 1,
             ebm_path: Optional[str] = None, trained_on: Optional[Sequence[str | Path]] = None, fleet=None,
             against: Optional[str | Path] = None, grid: Optional[Sequence[str]] = None,
             iteration: int = 0) -> dict[str, Any]:
    """Evaluate ``theorems`` (see the module docstring); returns what ``eval.json`` holds.

    ``fleet`` (``actors.fleet.Fleet``, built for this model) lends its generator, Lean workers and encoder
    to every variant and grid setting (each gets its own search drivers) and is left running; without one,
    or when it has no encoder and the LLM+EBM variant needs one, a fleet is started and shut down here."""
    from actors.fleet import start_actors
    from raylib.rayutil import init_ray

    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    if not theorems:
        raise ValueError("no theorems to evaluate")
    out_dir = Path(out_dir)
    disjoint = {"checked": False}
    if trained_on:
        disjoint = check_disjoint(theorems, read_trained_theorems(trained_on))
        disjoint["sources"] = [str(s) for s in trained_on]
    else:
        log.warning("evaluate: no training theorems given (trained_on): disjointness NOT checked")
    settings = parse_grid(grid or [])
    other = load_against(against) if against else None
    t0 = time.perf_counter()
    s = cfg.search
    budget = {"theorems": len(theorems), "attempts": attempts, "max_nodes": s.max_nodes,
              "timeout_per_theorem_s": s.timeout_per_theorem, "num_candidates": s.num_candidates,
              "max_expansions": attempts * s.max_nodes * len(theorems),
              "max_search_s": attempts * s.timeout_per_theorem * len(theorems),
              "seeds": [cfg.run.seed + a for a in range(attempts)]}
    log.info("evaluate budget: %d theorems x %d attempts x %d nodes x %.0f s", len(theorems), attempts,
             s.max_nodes, s.timeout_per_theorem)
    ebm = ebm_path or cfg.value.ebm_path
    variants = {"llm": with_overrides(cfg, ["value.ebm_path=null"])}
    if ebm:
        variants["ebm"] = with_overrides(cfg, [f"value.ebm_path={json.dumps(str(ebm))}"])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "budget.json").write_text(json.dumps(budget, indent=2) + "\n", encoding="utf-8")
    init_ray(cfg)
    result: dict[str, Any] = {"theorems": len(theorems), "budget": budget, "disjoint": disjoint,
                              "config_hash": cfg.hash(), "ebm_path": str(ebm) if ebm else None, "variants": {}}
    use_value = "ebm" in variants and variants["ebm"].search.beta > 0
    if "ebm" in variants and not use_value:
        log.warning("evaluate: search.beta is 0, so the LLM+EBM column searches without the value model")
    base_cfg = variants["ebm"] if use_value else variants["llm"]
    own = fleet is None or (use_value and fleet.encoder is None)
    base = start_actors(base_cfg) if own else fleet
    try:
        for v, vcfg in variants.items():
            f = search_fleet(base, vcfg, value=(v == "ebm" and use_value))
            result["variants"][v] = dict(_run_variant(vcfg, theorems, out_dir / v, attempts, f, iteration),
                                         label=LABELS[v])
        if settings:
            result["grid"] = _grid(base_cfg, base, theorems, out_dir / "grid", settings,
                                   "ebm" if use_value else "llm", iteration)
    finally:
        if own:
            base.shutdown()
    res_v = result["variants"]
    for v in res_v:
        result[f"proof_rate_{v}"] = res_v[v]["proof_rate"]
        result[f"proof_rate_{v}_model_only"] = res_v[v]["proof_rate_model_only"]
    if "ebm" not in res_v:
        result["proof_rate_ebm"] = None
    any_of = {v: {t: c > 0 for t, c in d["per_theorem"].items()} for v, d in res_v.items()}
    if "ebm" in any_of:
        result["ebm_vs_llm"] = M.gained_lost(any_of["ebm"], any_of["llm"])
    if other is not None:
        src, maps = other
        result["against"] = {"source": src, **{v: M.gained_lost(any_of[v], maps.get(v) or maps["llm"])
                                               for v in any_of if maps.get(v) or maps.get("llm")}}
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (out_dir / "eval.md").write_text(eval_markdown(result), encoding="utf-8")
    return result


def _grid(base_cfg: Config, base, theorems, out: Path, settings: list[dict[str, str]], variant: str,
          iteration: int) -> dict[str, Any]:
    """One attempt per setting on ``base``'s models; only the drivers (where search settings live) are new."""
    rows = []
    for i, setting in enumerate(settings):
        cfg = with_overrides(base_cfg, [f"{k}={v}" for k, v in setting.items()])
        slug = "_".join(f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in setting.items())
        log.info("grid %d/%d: %s", i + 1, len(settings), setting)
        res = _run_variant(cfg, theorems, out / f"{i:02d}_{slug}", 1, search_fleet(base, cfg, value=variant == "ebm"),
                           iteration)
        rows.append({"setting": setting, "proof_rate": res["proof_rate"],
                     "proof_rate_model_only": res["proof_rate_model_only"], **res["search"],
                     "time_split": res["time_split"]["share"], "dir": res["dirs"][0]})
    return {"variant": variant, "keys": sorted({k for s in settings for k in s}), "rows": rows}
