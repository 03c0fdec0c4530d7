"""Decompose a task's curve into its steps and slices: per model size, the composite metric (e.g. exact match)
beside each step of the answer scored alone (each target token under teacher forcing: is it the argmax given
the true prefix?), the product of the steps (what independent steps predict for the composite: Schaeffer et
al.'s p^L) and the gap; and the same per slice of the documents (``slices:`` in the task file)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from harness.analysis.results import Results
from harness.analysis.scaling import metric_info
from harness.errors import HarnessError


@dataclass
class Part:
    """The composite and its steps on one set of documents (all of them, or one slice value)."""

    n: int
    composite: float
    steps: list[float]     # per answer position: the share of documents whose token there is the argmax
    joint: float           # every step right (teacher forcing): exact match when decoding stops where it should

    @property
    def product(self) -> float:
        return float(np.prod(self.steps)) if self.steps else float("nan")

    @property
    def gap(self) -> float:
        """The composite minus what independent steps predict: negative when errors pile up (a wrong step makes
        the next one likelier wrong), positive when steps succeed together."""
        return self.composite - self.product


@dataclass
class SizeRow:
    x: float
    models: list[str]
    all: Part
    slices: dict[str, dict[str, Part]] = field(default_factory=dict)  # slice → value → its part


@dataclass
class Decomposition:
    task: str
    metric: str
    x_name: str
    length: int            # the answer's steps (target tokens) the decomposition uses
    rows: list[SizeRow]
    excluded: int          # documents whose answer has another token count (left out of every number)


def default_metric(res: Results, task: str) -> str:
    """The task's first discontinuous metric in the scores (e.g. exact_match)."""
    names = [m for m in dict.fromkeys(res.scores.loc[res.scores["task"] == task, "metric"])
             if metric_info(str(m)).kind == "discontinuous"]
    if not names:
        raise HarnessError(f"task {task} has no discontinuous metric to decompose", source=res.source, where="--metric")
    return str(names[0])


def decompose(res: Results, task: str, metric: Optional[str] = None, x: str = "params") -> Decomposition:
    """The decomposition of ``task`` in a run of this harness (it needs per-example records with per-token
    steps: generation and log-likelihood tasks scored since scoring version 3)."""
    if res.store is None:
        raise HarnessError("decompose needs a run of this harness (per-example records)", source=res.source)
    scores = res.scores[(res.scores["task"] == task) & (res.scores["aggregate"] == "")]
    if scores.empty:
        known = ", ".join(sorted(set(res.scores["task"])))
        raise HarnessError(f"no task '{task}' in these results (tasks: {known})", source=res.source, where="--task")
    metric = metric or default_metric(res, task)
    models = scores.drop_duplicates("model")[["model", x]]
    by_model = {str(m): res.records(str(m), task) for m in models["model"]}
    for model, recs in by_model.items():
        if not recs or "token_greedy" not in recs[0] or metric not in recs[0].get("metrics", {}):
            raise HarnessError(f"{model} on {task}: records have no per-token steps or no '{metric}' (a generation "
                               "or log-likelihood task, scored by this version: rerun it)", source=res.source)
    lengths = Counter(len(r["token_greedy"]) for recs in by_model.values() for r in recs)
    length = lengths.most_common(1)[0][0]
    rows = []
    for size, g in models.groupby(x, sort=True):
        names = sorted(str(m) for m in g["model"])
        recs = [r for m in names for r in by_model[m] if len(r["token_greedy"]) == length]
        row = SizeRow(float(size), names, _part(recs, metric))
        for r in recs:
            for name, value in (r.get("slices") or {}).items():
                row.slices.setdefault(name, {}).setdefault(value, Part(0, 0.0, [], 0.0))
        for name, values in row.slices.items():
            for value in sorted(values):
                values[value] = _part([r for r in recs if (r.get("slices") or {}).get(name) == value], metric)
            row.slices[name] = dict(sorted(values.items()))
        rows.append(row)
    excluded = sum(n for k, n in lengths.items() if k != length) // max(len(by_model), 1)
    return Decomposition(task, metric, x, length, rows, excluded)


def _part(recs: Sequence[Mapping[str, Any]], metric: str) -> Part:
    if not recs:
        return Part(0, float("nan"), [], float("nan"))
    steps = np.array([r["token_greedy"] for r in recs], dtype=np.float64)
    return Part(len(recs), float(np.mean([r["metrics"][metric] for r in recs])), steps.mean(axis=0).tolist(),
                float(steps.all(axis=1).mean()))
