"""Markdown tables and number formatting shared by the evaluation and the run report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["eval_markdown", "fmt", "md_table", "pct", "pm"]


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}%"


def pm(m: Any, sd: Any) -> str:
    """``mean ± sd`` as percentages."""
    if m is None:
        return "–"
    return f"{100 * m:.1f}% ± {100 * (sd or 0):.1f}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(x: Any) -> str:
        return (x if isinstance(x, str) else fmt(x)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _names(xs: Sequence[str], limit: int = 30) -> str:
    if not xs:
        return "none"
    return ", ".join(f"`{x}`" for x in xs[:limit]) + (f" and {len(xs) - limit} more" if len(xs) > limit else "")


def eval_markdown(ev: Mapping[str, Any]) -> str:
    """The evaluation (``eval.json``) as markdown: budget, variants side by side, gained/lost, grid."""
    b = ev["budget"]
    out = [f"# Evaluation: {ev['theorems']} theorems\n",
           f"Budget: {b['attempts']} attempt(s) (seeds {b['seeds']}) x {b['max_nodes']} expansions x "
           f"{b['timeout_per_theorem_s']:g} s per theorem; at most {b['max_expansions']} expansions and "
           f"{b['max_search_s']:g} search seconds in all. Disjointness from training theorems: "
           + (f"checked against {ev['disjoint'].get('trained_theorems')} theorems" if ev["disjoint"].get("checked")
              else "**not checked** (no training theorems given)") + ".\n"]
    vs = ev["variants"]
    ks = sorted({int(k) for v in vs.values() for k in v["pass_at_k"]})
    rows = []
    for v in vs.values():
        t = v["time_split"]["share"]
        rows.append([v["label"], pm(v["proof_rate"], v["proof_rate_sd"]),
                     pm(v["proof_rate_model_only"], v["proof_rate_model_only_sd"]),
                     *[pct(v["pass_at_k"].get(k, v["pass_at_k"].get(str(k)))) for k in ks],
                     v["start_failed"], v["infra_errors"],
                     " / ".join(f"{100 * t[k]:.0f}%" for k in ("generate", "lean", "ebm", "other"))])
    out.append(md_table(["variant", "proof rate (mean ± sd)", "without probe tactics", *[f"pass@{k}" for k in ks],
                         "start failed", "infra errors", "time gen / lean / ebm / other"], rows))
    depths = sorted({int(d) for v in vs.values() for d in v["depth_distribution"]})
    if depths:
        out.append("\nProof depth (proofs per number of tactics, all attempts):\n\n")
        out.append(md_table(["variant", *map(str, depths)],
                            [[v["label"], *[v["depth_distribution"].get(d, v["depth_distribution"].get(str(d), 0))
                                            for d in depths]] for v in vs.values()]))
    if "ebm_vs_llm" in ev:
        g = ev["ebm_vs_llm"]
        out.append(f"\nLLM+EBM against LLM-only: gained {len(g['gained'])} ({_names(g['gained'])}); "
                   f"lost {len(g['lost'])} ({_names(g['lost'])}).\n")
    if "against" in ev:
        a = ev["against"]
        for v, g in a.items():
            if v != "source":
                out.append(f"\n{vs[v]['label']} against `{a['source']}`: gained {len(g['gained'])} "
                           f"({_names(g['gained'])}); lost {len(g['lost'])} ({_names(g['lost'])}); "
                           f"{g['compared']} theorems compared.\n")
    if "grid" in ev:
        grid = ev["grid"]
        keys = grid["keys"]
        out.append(f"\n## Search settings ({vs[grid['variant']]['label']}, one attempt each)\n\n")
        out.append(md_table([*keys, "proof rate", "without probes", "unique tactics / exp.", "children / exp.",
                             "Lean pass rate", "generate s / theorem"],
                            [[r["setting"].get(k, "") for k in keys] + [pct(r["proof_rate"]),
                              pct(r["proof_rate_model_only"]), r["mean_unique_tactics"], r["mean_children"],
                              pct(r["lean_pass_rate"]), r["generate_s_per_theorem"]] for r in grid["rows"]]))
    return "".join(x if x.endswith("\n") else x + "\n" for x in out)
