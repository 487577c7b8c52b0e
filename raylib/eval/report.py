"""The run report: ``runs/<run>/report.md`` and ``report.html``, built from the run's files alone.

``write_report(run_dir)`` reads ``summary.json`` (the iterate job's machine-readable twin: ``iterations``,
``baseline``, ``in_progress``) and the stage folders ``iter_<k>/<stage>/``: ``prove/`` (summary.json,
trajectories), ``sft_data/sources.json``, ``sft/`` (history.jsonl, result.json), ``probe/probe.json``,
``ebm/`` (history.jsonl, result.json, sampler.json), ``evaluate/eval.json`` and ``gate/decision.json``;
each stage's ``stage.json`` record says whether it is complete. Anything missing shows as "not run yet",
so the report can be rebuilt after every stage of a live run (``python -m jobs.report RUN``).

The markdown links its plots (``report_files/*.png``); the HTML embeds them (base64), so it is one
self-contained file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from raylib.eval import plots
from raylib.eval.render import Doc
from raylib.eval.run_files import NOT_RUN, STAGES, collect

BASELINE = ("evaluate", "noise")  # the stages of iteration 0
from raylib.eval.tables import fmt, pct, pm

log = logging.getLogger(__name__)

__all__ = ["collect", "write_report"]

IMAGE_DIR = "report_files"


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` (+ ``report_files/*.png``) and ``report.html`` in ``run_dir``; return their paths."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder (runs/<run.name>, made by the iterate job)")
    data = collect(run_dir)
    doc = build(data)
    img_dir = run_dir / IMAGE_DIR
    img_dir.mkdir(exist_ok=True)
    for name, png in doc.images().items():
        tmp = img_dir / f".{name}.tmp"
        tmp.write_bytes(png)
        tmp.replace(img_dir / name)
    md, html = run_dir / "report.md", run_dir / "report.html"
    for path, text in ((md, doc.markdown(IMAGE_DIR)), (html, doc.html())):
        tmp = path.with_name(f".{path.name}.tmp")  # a reader of a live run never sees half a report
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return md, html


# -- sections -------------------------------------------------------------------------------------------
def build(data: dict) -> Doc:
    doc = Doc(f"rayprover run `{data['name']}`")
    s, iters = data["summary"], data["iterations"]
    done = len(s.get("iterations") or [])
    prog = s.get("in_progress")
    doc.p(f"Built {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} from the files in `{data['run_dir']}`. "
          f"{done} iteration(s) finished" + (f"; iteration {prog['iteration']} in progress (complete stages: "
                                              f"{', '.join(prog.get('stages_complete') or []) or 'none'})" if prog else "")
          + ".")
    if not iters:
        doc.muted(f"No iteration folder yet: {NOT_RUN}.")
        return doc
    _proof_rates(doc, data)
    _gate(doc, iters)
    _sft(doc, iters)
    _ebm(doc, iters)
    _separation(doc, iters)
    _time(doc, data)
    _trajectories(doc, iters)
    return doc


def _variant(ev: dict | None, v: str) -> dict:
    return ((ev or {}).get("variants") or {}).get(v) or {}


def _noise_and_rise(doc: Doc, s: dict) -> None:
    noise = (s.get("baseline") or {}).get("noise")
    if noise and None not in noise.get("proof_rate_llm", [None]):
        a, b = noise["proof_rate_llm"]
        doc.p(f"Evaluation noise: the starting model, LLM-only, proves {pct(a)} of the held-out theorems on seed "
              f"{noise['seeds'][0]} and {pct(b)} on seed {noise['seeds'][1]} (spread {pct(noise['spread'])}).")
    g = s.get("progress")
    if g and g.get("gain") is not None:
        verdict = ("" if g.get("above_noise") is None else
                   " — above the noise" if g["above_noise"] else " — not above the noise")
        llm = f", LLM-only {pct(g['last_llm'])}" if g.get("last_llm") is not None else ""
        first = (f"; after iteration 1: {pct(g['first'])} (gain since {g['gain_over_first']:+.3f})"
                 if g.get("gain_over_first") is not None else "")
        doc.p(f"Held-out proof rate: the starting model {pct(g['baseline'])}; the model in use after the last "
              f"iteration {pct(g['last'])}{llm} (gain {g['gain']:+.3f}{verdict}){first}.")


def _proof_rates(doc: Doc, data: dict) -> None:
    iters, s = data["iterations"], data["summary"]
    by_it = {e.get("iteration"): e for e in (s.get("iterations") or [])}
    doc.h("Held-out proof rate per iteration")
    doc.p("Each figure is the mean ± sd over the evaluation's seeded attempts; *without probes* counts only "
          "proofs with no step from the fixed probe tactics (the model's own share). Iteration 0 is the "
          "starting model. Theorems whose statement did not start are counted apart.")
    rows, ks, series, errs = [], [], {k: [] for k in ("LLM-only", "LLM+EBM", "LLM-only, without probes",
                                                       "LLM+EBM, without probes")}, {"LLM-only": [], "LLM+EBM": []}
    for k, it in iters.items():
        ev = it["eval"]
        llm, ebm = _variant(ev, "llm"), _variant(ev, "ebm")
        entry = by_it.get(k) or {}
        gate = it["gate"] or {}
        promoted = entry.get("promoted", gate.get("promote"))
        reason = entry.get("reason") or gate.get("reason")
        if ev is None and not entry:
            rows.append([k, it["status"]["evaluate"], "", "", "", "", "", ""])
            continue
        ks.append(k)
        series["LLM-only"].append(llm.get("proof_rate", entry.get("proof_rate_llm")))
        series["LLM+EBM"].append(ebm.get("proof_rate", entry.get("proof_rate_ebm")))
        series["LLM-only, without probes"].append(llm.get("proof_rate_model_only"))
        series["LLM+EBM, without probes"].append(ebm.get("proof_rate_model_only"))
        errs["LLM-only"].append(llm.get("proof_rate_sd"))
        errs["LLM+EBM"].append(ebm.get("proof_rate_sd"))
        rows.append([k, pm(llm.get("proof_rate", entry.get("proof_rate_llm")), llm.get("proof_rate_sd")),
                     pm(llm.get("proof_rate_model_only"), llm.get("proof_rate_model_only_sd")),
                     pm(ebm.get("proof_rate", entry.get("proof_rate_ebm")), ebm.get("proof_rate_sd")) if ebm
                     or entry.get("proof_rate_ebm") is not None else "no EBM",
                     pm(ebm.get("proof_rate_model_only"), ebm.get("proof_rate_model_only_sd")) if ebm else "–",
                     llm.get("start_failed", "–"),
                     "baseline" if k == 0 else ("–" if promoted is None else ("**promoted**" if promoted else "kept previous")),
                     reason or ""])
    doc.table(["iteration", "LLM-only", "without probes", "LLM+EBM", "without probes", "start failed", "gate",
               "reason"], rows)
    _noise_and_rise(doc, s)
    doc.img("proof_rate.png", plots.proof_rate_plot(ks, {k: v for k, v in series.items() if any(x is not None for x in v)},
                                                   errs, dashed=("LLM-only, without probes", "LLM+EBM, without probes")),
            "held-out proof rate per iteration")
    depth_rows, pass_rows = [], []
    for k, it in iters.items():
        for v in ("llm", "ebm"):
            d = _variant(it["eval"], v)
            if d.get("depth_distribution"):
                depth_rows.append([k, d.get("label") or v, ", ".join(f"{n} x depth {dep}" for dep, n in
                                                                     sorted(d["depth_distribution"].items(),
                                                                            key=lambda x: int(x[0])))])
            if d.get("pass_at_k"):
                pass_rows.append([k, d.get("label") or v, ", ".join(f"pass@{kk} {pct(x)}" for kk, x in
                                                                    sorted(d["pass_at_k"].items(), key=lambda x: int(x[0])))])
    if pass_rows:
        doc.p("pass@k over the seeded attempts (unbiased estimator) and the depth of the held-out proofs "
              "(all attempts):")
        doc.table(["iteration", "variant", "pass@k"], pass_rows)
        doc.table(["iteration", "variant", "proofs per depth"], depth_rows)
    budgets = [(k, it["eval"]["budget"]) for k, it in iters.items() if it["eval"] and it["eval"].get("budget")]
    if budgets:
        k, b = budgets[-1]
        doc.p(f"Evaluation budget (iteration {k}): {b['theorems']} theorems x {b['attempts']} attempt(s) x "
              f"{b['max_nodes']} expansions x {b['timeout_per_theorem_s']:g} s.")


def _gate(doc: Doc, iters: dict) -> None:
    doc.h("Gate decisions")
    any_ = False
    for k, it in iters.items():
        if k == 0:
            continue
        g = it["gate"]
        if not g:
            doc.muted(f"iteration {k}: gate {it['status']['gate']}.")
            continue
        any_ = True
        doc.p(f"**iteration {k}**: {'promoted' if g.get('promote') else 'kept the previous model'} — {g.get('reason', '')}")
        doc.table(["check", "passed", "before", "after", "limit", "detail"],
                  [[c.get("name"), c.get("passed"), _short(c.get("before")), _short(c.get("after")),
                    _short(c.get("limit")), c.get("detail", "")] for c in g.get("checks") or []])
    if not any_ and all(k == 0 for k in iters):
        doc.muted(f"No gate yet: {NOT_RUN}.")


def _short(x: Any) -> str:
    if isinstance(x, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in list(x.items())[:4] if k != "examples")
    return fmt(x)


def _sft(doc: Doc, iters: dict) -> None:
    doc.h("SFT (LoRA) and its guards")
    rows, curves = [], {}
    for k, it in iters.items():
        if k == 0:
            continue
        out, res, hist = it["outputs"]["sft"], it["sft_result"] or {}, it["sft_history"]
        if not hist and not out:
            rows.append([k, it["status"]["sft"]] + [""] * 8)
            continue
        plan = res.get("plan") or {}
        last_probe = next((h for h in reversed(hist) if "probe_empty_share" in h), {})
        evals = [h for h in hist if h.get("eval_loss") is not None]
        rows.append([k, out.get("steps", len(hist)), hist[-1]["loss"] if hist else out.get("loss"),
                     evals[-1]["eval_loss"] if evals else out.get("eval_loss"), plan.get("plan_coverage"),
                     plan.get("plan_dead_lr_share"), last_probe.get("probe_empty_share"),
                     last_probe.get("probe_repetitive_share"), last_probe.get("probe_identical_share"),
                     "passed" if out.get("passed", True) else f"stopped: {out.get('guard')}: {out.get('reason')}"])
        if hist:
            curves[f"iter {k} train"] = ([h["step"] for h in hist], [h["loss"] for h in hist])
        if evals:
            curves[f"iter {k} held-out"] = ([h["step"] for h in evals], [h["eval_loss"] for h in evals])
    if not rows:
        doc.muted(f"SFT: {NOT_RUN}.")
        return
    doc.table(["iteration", "steps", "final loss", "held-out loss", "planned coverage (epochs)", "dead-LR share",
               "probe empty", "probe repetitive", "probe identical", "guards"], [r[:10] for r in rows])
    doc.img("sft_loss.png", plots.line_series(curves, "SFT loss", "step", "loss (completion tokens)"), "SFT loss")
    src_rows = []
    for k, it in iters.items():
        for src, c in (it["sources"] or {}).items():
            src_rows.append([k, src, c.get("input"), c.get("positives"), c.get("empty"), c.get("sorry"),
                             c.get("denied"), c.get("probe", "–"), c.get("duplicates"), c.get("kept")])
    if src_rows:
        doc.p("SFT examples per source (trajectory rows in, proof-path steps, what was dropped, what was kept; "
              "probe: steps made by the search's probe tactics, left out unless iterate.sft_probe_steps):")
        doc.table(["iteration", "source", "input rows", "positives", "empty", "sorry", "denied", "probe",
                   "duplicates", "kept"], src_rows)


def _ebm(doc: Doc, iters: dict) -> None:
    doc.h("EBM (value model)")
    rows, loss, gap = [], {}, {}
    for k, it in iters.items():
        if k == 0:
            continue
        hist, out = it["ebm_history"], it["outputs"]["ebm"]
        if out.get("skipped"):
            rows.append([k, f"skipped: {out['skipped']}"] + [""] * 7)
            continue
        if not hist:
            rows.append([k, it["status"]["ebm"]] + [""] * 7)
            continue
        last = {}
        for h in hist:  # the latest evaluated figures of each split
            last.update({x: v for x, v in h.items() if x.startswith(("train_", "val_"))})
        rows.append([k, hist[-1]["step"], hist[-1].get("loss"), last.get("train_loss"), last.get("train_gap"),
                     last.get("train_rank"), last.get("val_loss"), last.get("val_gap"), last.get("val_rank")])
        loss[f"iter {k} step"] = ([h["step"] for h in hist], [h.get("loss") for h in hist])
        gap[f"iter {k} step"] = ([h["step"] for h in hist if "gap" in h], [h["gap"] for h in hist if "gap" in h])
        for split in ("train", "val"):
            ev = [h for h in hist if f"{split}_loss" in h]
            if ev:
                loss[f"iter {k} {split} eval"] = ([h["step"] for h in ev], [h[f"{split}_loss"] for h in ev])
                gap[f"iter {k} {split} eval"] = ([h["step"] for h in ev], [h.get(f"{split}_gap") for h in ev])
    if not rows:
        doc.muted(f"EBM: {NOT_RUN}.")
        return
    doc.p("Gap: mean energy of the negatives minus the positive's (higher is better); rank: share of groups "
          "whose positive has the lowest energy (higher is better). Train/val: evaluated on the sampled "
          "train and validation groups (validation theorems are held apart by hash).")
    doc.table(["iteration", "steps", "last step loss", "train loss", "train gap", "train rank", "val loss",
               "val gap", "val rank"], rows)
    doc.img("ebm_loss.png", plots.line_series(loss, "EBM loss", "step", "loss"), "EBM loss")
    doc.img("ebm_gap.png", plots.line_series(gap, "EBM energy gap", "step", "gap (negatives - positive)"), "EBM gap")


def _separation(doc: Doc, iters: dict) -> None:
    doc.h("Separation probe and generation probe (before / after training)")
    rows = []
    for k, it in iters.items():
        if k == 0:
            continue
        p = it["probe"]
        if not p:
            rows.append([k, it["status"]["probe"]] + [""] * 6)
            continue
        b, a, g = p.get("separation_before") or {}, p.get("separation_after") or {}, p.get("generation") or {}
        rows.append([k, "passed" if g.get("passed") else f"failed: {g.get('reason')}",
                     b.get("centroid_l2", b.get("error")), a.get("centroid_l2", a.get("error")),
                     b.get("probe_accuracy"), a.get("probe_accuracy"), b.get("norm_gap"), a.get("norm_gap")])
    if not rows:
        doc.muted(f"Probes: {NOT_RUN}.")
        return
    doc.table(["iteration", "generation probe", "centroid L2 before", "after", "probe accuracy before", "after",
               "norm gap before", "after"], rows)


def _time(doc: Doc, data: dict) -> None:
    iters = data["iterations"]
    doc.h("Where the time goes")
    cats, parts = [], {s: [] for s in STAGES}
    for k, it in iters.items():
        if any(it["wall_s"].values()):
            cats.append(f"iter {k}")
            for s in STAGES:
                parts[s].append(float(it["wall_s"].get(s) or 0.0))
    doc.img("stage_time.png", plots.stacked_bars(cats, {s: v for s, v in parts.items() if any(v)},
                                                 "Stage wall time per iteration", "seconds"), "stage wall time")
    rows = []
    for k, it in iters.items():
        for what, split in (("prove (train split)", (it["prove"] or {}).get("time_split")),
                            ("evaluate LLM-only", (_variant(it["eval"], "llm").get("time_split") or {}).get("share")),
                            ("evaluate LLM+EBM", (_variant(it["eval"], "ebm").get("time_split") or {}).get("share"))):
            if split:
                rows.append([k, what, *[pct(split.get(b)) for b in ("generate", "lean", "ebm", "other")]])
    if rows:
        doc.p("Search time split (share of search seconds):")
        doc.table(["iteration", "search", "generate", "Lean", "EBM", "other"], rows)
    stage_rows = [[f"iter {k}", *[fmt(it["wall_s"].get(s), 1) if it["wall_s"].get(s) is not None
                                 else ("–" if (k == 0) != (s in BASELINE) else it["status"][s]) for s in STAGES]]
                  for k, it in iters.items()]
    doc.table(["", *STAGES], stage_rows)


def _trajectories(doc: Doc, iters: dict) -> None:
    doc.h("Trajectories of the prove stage")
    rows, depth = [], {}
    for k, it in iters.items():
        if k == 0:
            continue
        t, p = it["trajectories"], it["prove"] or {}
        if not t:
            rows.append([k, it["status"]["prove"]] + [""] * 7)
            continue
        lb, br, npt = t["label_balance"], t["branching"], t["nodes_per_theorem"]
        oc = p.get("outcomes") or {}
        rows.append([k, f"{p.get('proved', '–')}/{p.get('theorems', '–')}", pct(p.get("proof_rate_model_only")),
                     oc.get("start_failed", "–"), t["nodes"],
                     f"{lb['positive']} / {lb['negative']} ({pct(lb['positive_share'])})", br["mean_children"],
                     f"{npt['mean']:.1f} / {npt['median']:.0f} / {npt['max']}", oc.get("infra_error", "–")])
        depth[f"iter {k}"] = t["depth_distribution"]
    if not rows:
        doc.muted(f"Prove: {NOT_RUN}.")
        return
    doc.p("Label balance: open states on a proof path (positives) against the other open states (negatives). "
          "Branching: children per expanded node. Theorems whose statement did not start are counted apart "
          "(not searched, still in the proof rate's denominator).")
    doc.table(["iteration", "proved", "without probes", "start failed", "nodes", "positives / negatives",
               "branching", "nodes per theorem (mean / median / max)", "infra errors"], rows)
    keys = sorted({d for dist in depth.values() for d in dist})
    doc.img("depth.png", plots.bar_groups(keys, depth, "Search-tree nodes per depth", "depth (tactics from the root)",
                                          "nodes"), "nodes per depth")
