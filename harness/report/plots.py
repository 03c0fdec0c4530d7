"""Figures for the report: one scaling curve per (task, metric), the same task across model families, and the
distribution of labels."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on evaluation machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from harness.analysis.scaling import LABELS, Classification, Curve, display_name  # noqa: E402

COLORS = {"smooth": "#2e7d32", "inverse": "#c62828", "flat": "#757575", "emergent": "#6a1b9a",
          "u_shaped": "#ef6c00", "inverted_u": "#ad1457", "not_correlated": "#1565c0"}
X_LABELS = {"params": "parameters", "nonembedding_params": "non-embedding parameters",
            "active_params": "active parameters (per token)", "tokens": "training tokens",
            "flops": "training FLOPs"}


def _save(fig: plt.Figure, path: Path) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    path.write_bytes(data)
    return data


def curve_png(curve: Curve, result: Classification, path: Path) -> bytes:
    """Score against log-scale size: replicates as dots, the per-size mean with ±1 stderr bars, chance dashed."""
    d = result.diagnostics
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    ax.scatter(curve.x, curve.values, s=18, color="#9e9e9e", alpha=0.8, zorder=2, label="each model")
    ax.errorbar(d.sizes, d.values, yerr=d.stderr, color=COLORS[result.label], marker="o", ms=5, lw=2,
                capsize=3, zorder=3, label="mean per size ± 1 s.e.")
    if d.chance is not None:
        ax.axhline(d.chance, color="#424242", ls="--", lw=1, label="chance")
    if d.break_between is not None:
        ax.axvspan(*d.break_between, color=COLORS["emergent"], alpha=0.1, lw=0, label="break")
    ax.set_xscale("log")
    ax.set_xlabel(_text(X_LABELS.get(d.x, d.x)), fontsize=10)
    ax.set_ylabel(_text(curve.metric + ("" if curve.higher_is_better else " (lower is better)")), fontsize=10)
    ax.set_title(_text(f"{curve.name} · {curve.metric}: {result.label} ({result.confidence:.2f})"), fontsize=11,
                 color=COLORS[result.label])
    ax.tick_params(labelsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)
    return _save(fig, path)


def family_png(lines: list[tuple[Curve, Classification]], path: Path) -> bytes:
    """One task and metric across model families: a line per family (its per-size means), each family's break
    band in its colour, chance dashed; the legend names each family with its label."""
    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    palette = plt.get_cmap("tab20" if len(lines) > 10 else "tab10")
    markers = "os^Dv<>ph*"
    chance = next((r.diagnostics.chance for _, r in lines if r.diagnostics.chance is not None), None)
    for i, (curve, result) in enumerate(lines):
        d = result.diagnostics
        color = palette(i % palette.N)
        ax.plot(d.sizes, d.values, color=color, marker=markers[i % len(markers)], ms=4, lw=1.6,
                label=_text(f"{curve.family}: {result.label} ({result.confidence:.2f})"))
        if d.break_between is not None:
            ax.axvspan(*d.break_between, color=color, alpha=0.08, lw=0)
    if chance is not None:
        ax.axhline(chance, color="#424242", ls="--", lw=1, label="chance")
    curve, result = lines[0]
    x = result.diagnostics.x
    ax.set_xscale("log")
    ax.set_xlabel(_text(X_LABELS.get(x, x)), fontsize=10)
    ax.set_ylabel(_text(curve.metric + ("" if curve.higher_is_better else " (lower is better)")), fontsize=10)
    ax.set_title(_text(f"{display_name(curve.base_task, curve.aggregate)} · {curve.metric}: {len(lines)} families"),
                 fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.85)
    return _save(fig, path)


def _text(s: str) -> str:
    """Names are data: ``$`` would start matplotlib's math mode."""
    return s.replace("$", r"\$")


def labels_png(results: list[Classification], path: Path) -> bytes:
    """How many curves fall in each category, split by discontinuous and continuous metrics."""
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    bottom = np.zeros(len(LABELS))
    for kind, hatch in (("discontinuous", ""), ("continuous", "//"), (None, "..")):
        counts = np.array([sum(r.label == lab and r.kind == kind for r in results) for lab in LABELS])
        if counts.any():
            ax.bar(LABELS, counts, bottom=bottom, color=[COLORS[lab] for lab in LABELS], hatch=hatch,
                   edgecolor="white", label=kind or "kind unknown")
            bottom += counts
    ax.set_ylabel("curves")
    ax.set_title("scaling categories (solid: discontinuous metrics, hatched: continuous)", fontsize=10)
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def decomposition_png(d: Any, path: Path) -> bytes:
    """A task's composite metric per size beside its steps (teacher-forced token accuracy) and their product."""
    xs = [r.x for r in d.rows]
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for i in range(d.length):
        ax.plot(xs, [r.all.steps[i] for r in d.rows], color="#90a4ae", lw=1, marker=".", label="each step" if i == 0 else None)
    ax.plot(xs, [r.all.product for r in d.rows], color="#ef6c00", lw=1.5, ls="--", marker="s", ms=4,
            label="product of steps (p^L)")
    ax.plot(xs, [r.all.composite for r in d.rows], color=COLORS["emergent"], lw=2, marker="o", ms=5, label=_text(d.metric))
    ax.set_xscale("log")
    ax.set_xlabel(_text(X_LABELS.get(d.x_name, d.x_name)), fontsize=10)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(_text(f"{d.task}: {d.metric} and its {d.length} steps"), fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)
    return _save(fig, path)
