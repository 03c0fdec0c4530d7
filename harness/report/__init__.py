"""A self-contained HTML report of a results source: curves with labels, the label distribution,
discontinuous against continuous metrics per task, and (for runs of this harness) example prompts."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from jinja2 import Environment, PackageLoader, select_autoescape

from harness.importers import Results
from harness.report.plots import COLORS, curve_png, labels_png
from harness.scaling import Classification, Curve, metric_artifacts
from harness.store import safe_name


@dataclass
class Panel:
    curve: Curve
    result: Classification
    image: str  # data URI
    file: str


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _examples(res: Results, curves: list[Curve], task: str) -> list[dict]:
    """A few records of the smallest and the largest model, for the drill-down."""
    curve = next((c for c in curves if c.task == task), None)
    if curve is None or res.store is None:  # prompts are kept by runs of this harness only
        return []
    order = sorted(zip(curve.x, curve.models))
    out = []
    for _, model in dict.fromkeys([order[0], order[-1]]):
        for r in res.records(model, task)[:3]:
            shown = r.get("generation")
            if shown is None and "logprobs" in r:
                best = max(range(len(r["logprobs"])), key=r["logprobs"].__getitem__)
                shown = f"{r['choices'][best]!r} (gold {r['choices'][r['gold']]!r})"
            out.append({"model": model, "doc_id": r["doc_id"], "prompt": r.get("prompt", ""),
                        "output": shown if shown is not None else "", "target": r.get("target"),
                        "metrics": {k: round(v, 4) for k, v in r.get("metrics", {}).items()}})
    return out


def build_report(res: Results, classified: list[tuple[Curve, Classification]], out_dir: Path,
                 title: Optional[str] = None) -> Path:
    """Write ``index.html`` (figures embedded, opens offline) and every figure as PNG under ``figures/``."""
    figs = out_dir / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    results = [c for _, c in classified]
    panels: dict[str, dict[str, list[Panel]]] = {}
    for curve, result in classified:
        name = f"{safe_name(curve.task)}__{safe_name(curve.metric)}.png"
        png = curve_png(curve, result, figs / name)
        side = "continuous" if result.kind == "continuous" else "discontinuous"
        panels.setdefault(curve.task, {"discontinuous": [], "continuous": []})[side].append(
            Panel(curve, result, _uri(png), f"figures/{name}"))
    labels_uri = _uri(labels_png(results, figs / "labels.png"))
    artifacts = {}
    for a in metric_artifacts(results):
        artifacts.setdefault(a.task, []).append(a.message)
    curves = [c for c, _ in classified]
    env = Environment(loader=PackageLoader("harness.report", "."), autoescape=select_autoescape(["html"]))
    page = env.get_template("template.html").render(
        title=title or f"Scaling report: {res.source}", source=str(res.source), format=res.format,
        results=results, panels=panels, labels_uri=labels_uri, artifacts=artifacts, colors=COLORS,
        examples={task: _examples(res, curves, task) for task in panels}, x=results[0].diagnostics["x"])
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
