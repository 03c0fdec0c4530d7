"""The tidy scores table: one row per model × task × metric, then macro and micro rows per task group."""

from __future__ import annotations

from typing import Optional

import numpy as np

from harness import metrics as M
from harness.models.suite import ModelMeta, ModelSpec
from harness.outputs import output_type
from harness.scoring_lm_eval import group_scores
from harness.store import PairSummary, RunStore, ScoreDict, ScoreRow
from harness.tasks.prepared import LmEvalPrepared, PreparedTask


def score_rows(store: RunStore, suite: list[ModelSpec], prepared: list[PreparedTask | LmEvalPrepared],
               summaries: dict[tuple[str, str], PairSummary]) -> list[ScoreRow]:
    """Rows in suite order, then task order. A group's rows appear only when all its tasks are done:
    macro is the mean of the tasks' values, micro the metric over their pooled records."""
    rows: list[ScoreRow] = []
    groups: dict[str, list[PreparedTask | LmEvalPrepared]] = {}
    for p in prepared:
        if p.task.group:
            groups.setdefault(p.task.group, []).append(p)
    for spec in suite:
        for p in prepared:
            s = summaries.get((spec.name, p.task.name))
            if s is None:
                continue
            for metric in _metric_order(p, s["scores"]):
                sc = s["scores"][metric]
                rows.append(_row(s["model_meta"], p.task.name, p.task.group, "", metric, sc["value"], sc["stderr"],
                                 sc["n"], s["chance"].get(metric), sc))
        for group, members in groups.items():
            found = [summaries.get((spec.name, p.task.name)) for p in members]
            ss = [s for s in found if s is not None]
            if len(ss) < len(members):
                continue  # aggregate only complete groups
            meta = ss[0]["model_meta"]
            if isinstance(members[0], LmEvalPrepared):  # scored as lm-eval scores the group
                for g in group_scores(members[0].task, [s["scores"] for s in ss]):
                    rows.append(_row(meta, group, group, g["aggregate"], g["metric"], g["value"], g["stderr"], g["n"],
                                     None, g))  # type: ignore[arg-type]
                continue
            common = [m for m in _metric_order(members[0], ss[0]["scores"]) if all(m in s["scores"] for s in ss)]
            pooled = [r for p in members for r in store.records(spec.name, p.task.name)]
            for metric in common:
                vals = [s["scores"][metric] for s in ss]
                macro = float(np.mean([v["value"] for v in vals]))
                macro_se = float(np.sqrt(sum(v["stderr"] ** 2 for v in vals)) / len(vals))
                chances = [s["chance"].get(metric) for s in ss]
                chance = float(np.mean(chances)) if all(c is not None for c in chances) else None  # type: ignore[arg-type]
                micro = M.aggregate(metric, pooled)
                rows.append(_row(meta, group, group, "macro", metric, macro, macro_se, sum(v["n"] for v in vals), chance))
                rows.append(_row(meta, group, group, "micro", metric, micro.value, micro.stderr, micro.n, chance))
    return rows


def _metric_order(p: PreparedTask | LmEvalPrepared, scores: dict) -> list[str]:
    """A task's metrics in a fixed order (stored summaries are read back with sorted keys): a native task's as it
    lists them; an lm-eval task's as lm-eval names them, sorted, then the continuous partners."""
    if isinstance(p, PreparedTask):
        return [m.name for m in p.task.spec.metrics]
    partners = output_type(p.task.spec.output).partners
    return sorted(m for m in scores if m not in partners) + [m for m in partners if m in scores]


def _row(meta: ModelMeta, task: str, group: Optional[str], aggregate: str, metric: str, value: float,
         stderr: Optional[float], n: int, chance: Optional[float], score: Optional[ScoreDict] = None) -> ScoreRow:
    known = M.METRICS.get(metric)
    kind = score.get("kind") if score else None
    higher = score.get("higher_is_better") if score else None
    kind = kind or (known.kind if known else "continuous")
    higher = higher if higher is not None else (known.higher_is_better if known else True)
    return ScoreRow(model=meta["label"], family=meta.get("family") or "", arch=meta.get("arch", "causal"), step=meta.get("step"),
                    params=meta["params"], nonembedding_params=meta["nonembedding_params"],
                    active_params=meta.get("active_params", meta["params"]),
                    tokens=meta["tokens"], flops=meta["flops"], task=task, group=group or "", aggregate=aggregate,
                    metric=metric, value=value, stderr=float("nan") if stderr is None else stderr, n=n, kind=kind,
                    higher_is_better=bool(higher),
                    chance=chance)
