"""A self-contained HTML report of a results source: curves with labels, the label distribution,
discontinuous against continuous metrics per task, and (for runs of this harness) example prompts."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from jinja2 import Environment, PackageLoader, select_autoescape

from harness.analysis.classified import Classified, manifest_tasks
from harness.analysis.results import Results
from harness.analysis.scaling import Classification, Curve, display_name, metric_artifacts
from harness.errors import HarnessError
from harness.files import atomic_write, safe_name
from harness.report.plots import COLORS, curve_png, decomposition_png, family_png, labels_png


@dataclass
class Panel:
    curve: Curve
    result: Classification
    image: str  # data URI
    file: str


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _examples(res: Results, curves: list[Curve], key: tuple[str, str], per_model: int = 2) -> list[dict]:
    """The first records of every model (all replicates) at the smallest and the largest size, for the drill-down."""
    curve = next((c for c in curves if c.key == key), None)
    if curve is None or res.store is None or curve.aggregate:  # prompts are kept by runs of this harness only
        return []
    task = curve.task
    ends = {min(curve.x), max(curve.x)}
    out = []
    for size, model in sorted((x, m) for x, m in zip(curve.x, curve.models) if x in ends):
        for r in res.records(model, task)[:per_model]:
            shown = r.get("generation")
            if shown is None and "logprobs" in r:
                best = max(range(len(r["logprobs"])), key=r["logprobs"].__getitem__)
                shown = f"{r['choices'][best]!r} (gold {r['choices'][r['gold']]!r})"
            out.append({"size": f"{size:,.0f}", "model": model, "doc_id": r["doc_id"], "prompt": r.get("prompt", ""),
                        "output": shown if shown is not None else "", "target": r.get("target"),
                        "metrics": " · ".join(f"{k} {v:.4g}" for k, v in r.get("metrics", {}).items())})
    return out


def _decompositions(res: Results, figs: Path) -> list[dict]:
    """The steps view of every task whose records keep per-token steps (``harness decompose``), with its figure."""
    from harness.analysis.decompose import decompose

    if res.store is None:
        return []
    out = []
    for task in sorted(set(res.scores.loc[res.scores["aggregate"] == "", "task"])):
        try:
            d = decompose(res, str(task))
        except HarnessError:  # no discontinuous metric, or no per-token steps (multiple choice, perplexity)
            continue
        if len(d.rows) < 2:
            continue
        name = f"{safe_name(d.task)}__decomposition.png"
        out.append({"d": d, "image": _uri(decomposition_png(d, figs / name)), "file": f"figures/{name}"})
    return out


def _families(classified: Classified, figs: Path) -> Optional[dict]:
    """Where the results hold several model families: one figure per task and metric with a line per family, and
    the labels with a column per family. None otherwise."""
    by_curve: dict[tuple[str, str, str], list] = {}
    for curve, result in classified.curves:
        if curve.family:
            by_curve.setdefault((curve.base_task, curve.aggregate, curve.metric), []).append((curve, result))
    if not by_curve:
        return None
    names = sorted({curve.family for lines in by_curve.values() for curve, _ in lines})
    rows, figures = [], []
    for (task, aggregate, metric), lines in sorted(by_curve.items()):
        lines.sort(key=lambda cr: cr[0].family)
        labels = {curve.family: result for curve, result in lines}
        rows.append({"name": display_name(task, aggregate), "metric": metric, "labels": [labels.get(f) for f in names]})
        name = f"{safe_name(display_name(task, aggregate))}__{safe_name(metric)}__families.png"
        figures.append({"name": display_name(task, aggregate), "metric": metric, "n": len(lines),
                        "image": _uri(family_png(lines, figs / name)), "file": f"figures/{name}"})
    return {"names": names, "rows": rows, "figures": figures, "notes": [*classified.results.left_out.values(), *classified.results.axis_notes]}


def build_report(classified: Classified, out_dir: Path, title: Optional[str] = None) -> Path:
    """Write ``index.html`` (figures embedded, opens offline) and every figure as PNG under ``figures/``."""
    res = classified.results
    check_report_folder(out_dir)
    figs = out_dir / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / REPORT_MARKER, b"scaling-harness report\n")
    classifications = classified.classifications
    panels: dict[tuple[str, str], dict[str, list[Panel]]] = {}
    for curve, result in classified.curves:
        name = f"{safe_name(curve.name)}__{safe_name(curve.metric)}.png"
        png = curve_png(curve, result, figs / name)
        side = "continuous" if result.kind == "continuous" else "discontinuous"
        panels.setdefault(curve.key, {"discontinuous": [], "continuous": []})[side].append(
            Panel(curve, result, _uri(png), f"figures/{name}"))
    labels_uri = _uri(labels_png(classifications, figs / "labels.png"))
    artifacts: dict[tuple[str, str], list[str]] = {}
    by_metric = {(p.curve.key, p.curve.metric): p for sides in panels.values() for ps in sides.values() for p in ps}
    pairs: dict[tuple, dict] = {}  # per (task, discontinuous metric): its figure beside every disagreeing one
    for a in metric_artifacts(classifications):
        artifacts.setdefault(a.task, []).append(a.message)
        left, right = by_metric.get((a.task, a.discontinuous[0])), by_metric.get((a.task, a.continuous[0]))
        if left and right:
            pair = pairs.setdefault((a.task, a.discontinuous[0]), {"name": display_name(*a.task), "left": left,
                                                                   "right": []})
            pair["right"].append(right)
    curves = [c for c, _ in classified.curves]
    tasks = manifest_tasks(res) or []
    preferred = {name: t.preferred_metric for t in tasks for name in (t.name, t.group)
                 if name and t.preferred_metric}  # a group's: its subtasks' (BIG-bench's aggregate)
    canaries = sorted({t.canary for t in tasks if t.canary})  # the prompts shown carry benchmark data
    decompositions = _decompositions(res, figs)
    families = _families(classified, figs)
    env = Environment(loader=PackageLoader("harness.report", "."), autoescape=select_autoescape(["html"]))
    page = env.get_template("template.html").render(
        title=title or f"Scaling report: {res.source}", source=str(res.source), format=res.format,
        classifications=classifications, panels=panels, labels_uri=labels_uri, artifacts=artifacts, colors=COLORS,
        artifact_pairs=list(pairs.values()), preferred=preferred, canaries=canaries, decompositions=decompositions,
        names={key: display_name(*key) for key in panels}, families=families,
        examples={key: _examples(res, curves, key) for key in panels}, x=classifications[0].diagnostics.x)
    path = out_dir / "index.html"
    atomic_write(path, page.encode("utf-8"))
    return path


REPORT_MARKER = ".scaling-harness-report"


def check_report_folder(out_dir: Path) -> None:
    """Refuse a non-empty folder this harness did not write a report into: its ``index.html`` and ``figures/``
    would be replaced."""
    if out_dir.exists() and not out_dir.is_dir():
        raise HarnessError("is not a directory", source=out_dir, where="--out")
    if not out_dir.is_dir() or not any(out_dir.iterdir()) or (out_dir / REPORT_MARKER).is_file():
        return
    raise HarnessError("is not empty and holds no report of this harness (its files would be overwritten): pick a "
                       "new or empty folder", source=out_dir, where="--out")
