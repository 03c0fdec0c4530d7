"""The tidy scores table: one row per model × task × metric, then macro and micro rows per task group."""

from __future__ import annotations

from typing import Optional

import numpy as np

from harness import metrics as M
from harness.models.suite import ModelMeta, ModelSpec
from harness.store import PairSummary, RunStore, ScoreRow
from harness.tasks.prepared import PreparedTask


def score_rows(store: RunStore, suite: list[ModelSpec], prepared: list[PreparedTask],
               summaries: dict[tuple[str, str], PairSummary]) -> list[ScoreRow]:
    """Rows in suite order, then task order. A group's rows appear only when all its tasks are done:
    macro is the mean of the tasks' values, micro the metric over their pooled records."""
    rows: list[ScoreRow] = []
    groups: dict[str, list[PreparedTask]] = {}
    for p in prepared:
        if p.task.group:
            groups.setdefault(p.task.group, []).append(p)
    for spec in suite:
        for p in prepared:
            s = summaries.get((spec.name, p.task.name))
            if s is None:
                continue
            for metric in (m.name for m in p.task.spec.metrics):
                sc = s["scores"][metric]
                rows.append(_row(s["model_meta"], p.task.name, p.task.group, "", metric, sc["value"], sc["stderr"],
                                 sc["n"], s["chance"].get(metric)))
        for group, members in groups.items():
            found = [summaries.get((spec.name, p.task.name)) for p in members]
            ss = [s for s in found if s is not None]
            if len(ss) < len(members):
                continue  # aggregate only complete groups
            common = [m.name for m in members[0].task.spec.metrics if all(m.name in s["scores"] for s in ss)]
            pooled = [r for p in members for r in store.records(spec.name, p.task.name)]
            for metric in common:
                vals = [s["scores"][metric] for s in ss]
                macro = float(np.mean([v["value"] for v in vals]))
                macro_se = float(np.sqrt(sum(v["stderr"] ** 2 for v in vals)) / len(vals))
                chances = [s["chance"].get(metric) for s in ss]
                chance = float(np.mean(chances)) if all(c is not None for c in chances) else None  # type: ignore[arg-type]
                micro = M.aggregate(metric, pooled)
                meta = ss[0]["model_meta"]
                rows.append(_row(meta, group, group, "macro", metric, macro, macro_se, sum(v["n"] for v in vals), chance))
                rows.append(_row(meta, group, group, "micro", metric, micro.value, micro.stderr, micro.n, chance))
    return rows


def _row(meta: ModelMeta, task: str, group: Optional[str], aggregate: str, metric: str, value: float, stderr: float,
         n: int, chance: Optional[float]) -> ScoreRow:
    m = M.METRICS[metric]
    return ScoreRow(model=meta["label"], family=meta.get("family") or "", arch=meta.get("arch", "causal"), step=meta.get("step"),
                    params=meta["params"], nonembedding_params=meta["nonembedding_params"],
                    tokens=meta["tokens"], flops=meta["flops"], task=task, group=group or "", aggregate=aggregate,
                    metric=metric, value=value, stderr=stderr, n=n, kind=m.kind, higher_is_better=m.higher_is_better,
                    chance=chance)
