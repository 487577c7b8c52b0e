"""PNG plots for the run report, made with matplotlib's Agg canvas (no display, no pyplot global state).

Each function takes plain numbers and returns the PNG bytes, or None when there is nothing to draw.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

__all__ = ["bar_groups", "line_series", "proof_rate_plot", "stacked_bars"]

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf",
          "#bcbd22")


def _figure(width: float = 6.4, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def proof_rate_plot(iterations: Sequence[int], series: Mapping[str, Sequence[float | None]],
                    errors: Mapping[str, Sequence[float | None]] | None = None,
                    dashed: Sequence[str] = ()) -> bytes | None:
    """Held-out proof rate (percent) per iteration, one line per series; ``errors``: ± sd bars; series named
    in ``dashed`` are drawn dashed in the colour of the series their name starts with (``"X, ..."``)."""
    if not iterations or not any(v is not None for s in series.values() for v in s):
        return None
    fig, ax = _figure()
    bases = list(dict.fromkeys(label.split(",")[0] for label in series))  # "X, without probes" shares X's colour
    for label, ys in series.items():
        i = bases.index(label.split(",")[0])
        errs = (errors or {}).get(label) or [None] * len(ys)
        pts = [(x, 100 * y, 100 * (errs[j] or 0.0)) for j, (x, y) in enumerate(zip(iterations, ys)) if y is not None]
        if not pts:
            continue
        xs, vs, es = zip(*pts)
        color = COLORS[i % len(COLORS)]
        ax.plot(xs, vs, "--" if label in dashed else "-", marker="s" if label in dashed else "o", color=color,
                label=label, linewidth=1.6, markersize=5)
        if any(es):
            ax.errorbar(xs, vs, yerr=es, fmt="none", ecolor=color, capsize=3, linewidth=1.0)
    ax.set_xlabel("iteration (0 = starting model)")
    ax.set_ylabel("held-out proof rate (%)")
    ax.set_xticks(list(iterations))
    ax.set_ylim(bottom=-2)  # a line at 0% stays visible above the axis
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Proof rate per iteration")
    return _png(fig)


def line_series(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str,
                ylabel: str, markers: bool = False) -> bytes | None:
    """One line per ``label: (xs, ys)``."""
    series = {k: v for k, v in series.items() if len(v[0])}
    if not series:
        return None
    fig, ax = _figure()
    for i, (label, (xs, ys)) in enumerate(series.items()):
        ax.plot(xs, ys, "o-" if markers or len(xs) < 3 else "-", color=COLORS[i % len(COLORS)], label=label,
                linewidth=1.3, markersize=4)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def stacked_bars(categories: Sequence[str], parts: Mapping[str, Sequence[float]], title: str,
                 ylabel: str) -> bytes | None:
    """Stacked bars: one bar per category, one segment per part."""
    if not categories or not any(v for vs in parts.values() for v in vs):
        return None
    fig, ax = _figure()
    bottom = [0.0] * len(categories)
    for i, (label, vals) in enumerate(parts.items()):
        ax.bar(list(categories), list(vals), bottom=bottom, label=label, color=COLORS[i % len(COLORS)])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def bar_groups(keys: Sequence[int], groups: Mapping[str, Mapping[int, float]], title: str, xlabel: str,
               ylabel: str) -> bytes | None:
    """Grouped bars: x = ``keys``, one bar per group (e.g. a depth distribution per iteration)."""
    if not keys or not groups:
        return None
    fig, ax = _figure()
    n = len(groups)
    width = 0.8 / n
    for i, (label, counts) in enumerate(groups.items()):
        xs = [k - 0.4 + width * (i + 0.5) for k in keys]
        ax.bar(xs, [counts.get(k, 0) for k in keys], width=width, label=label, color=COLORS[i % len(COLORS)])
    ax.set_xticks(list(keys))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _png(fig)
