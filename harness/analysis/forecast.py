"""Forecast where a discontinuous metric jumps, from its continuous partner on the smaller models only.

The partner is the per-step accuracy p (each answer token under teacher forcing, the steps of
``decompose``). On the fit sizes, logit(p) is fitted as a line in log10 x; an answer of L steps is then
right with probability p^L (Schaeffer et al.'s model of exact match), so the composite crosses the threshold
(default: halfway from chance to the ceiling) where p = threshold^(1/L). The interval resamples documents
jointly across models and refits. The observed crossing interpolates the composite in log10 x."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from harness.analysis.decompose import default_metric
from harness.analysis.results import Results
from harness.analysis.scaling import metric_info
from harness.errors import HarnessError


@dataclass
class Forecast:
    task: str
    metric: str
    which: str                      # "pooled", or "replicate r" (the r-th model, by name, of every size)
    length: int                     # L: steps per answer
    threshold: float
    fit_sizes: list[float]
    predicted: Optional[float]      # x where p^L reaches the threshold; None when p does not rise on the fit sizes
                                    # (or only so slowly that the crossing lies over 6 decades away)
    interval: tuple[float, float]   # 5th and 95th percentile of the resampled crossings (nan when none cross)
    observed: Optional[float]       # where the composite crosses (interpolated in log x); None when it never does
    bracket: Optional[tuple[float, float]] = None  # the sizes on either side of the observed crossing

    @property
    def within_bracket(self) -> Optional[bool]:
        """Whether the prediction falls between the sizes that bracket the observed crossing (all the data can
        say when no model sits near the jump)."""
        if self.predicted is None or self.bracket is None:
            return None
        return self.bracket[0] <= self.predicted <= self.bracket[1]

    @property
    def error_log10(self) -> Optional[float]:
        """Predicted minus observed crossing, in decades of x."""
        if self.predicted is None or self.observed is None:
            return None
        return math.log10(self.predicted) - math.log10(self.observed)


HORIZON = 6.0  # decades of x beyond the fit sizes within which a crossing is forecast at all


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _crossing(t: np.ndarray, p: np.ndarray, target: float) -> Optional[float]:
    """log10 x where the line fitted to logit(p) on t reaches ``target`` (a per-step accuracy)."""
    if len(t) < 2 or np.ptp(t) == 0:
        return None
    b, a = np.polyfit(t, _logit(p), 1)
    if b <= 0:
        return None
    at = float((_logit(np.array([target]))[0] - a) / b)
    return at if t[-1] - HORIZON <= at <= t[-1] + HORIZON else None  # farther out is no forecast


def _observed(t: np.ndarray, y: np.ndarray, thr: float) -> Optional[float]:
    above = np.flatnonzero(y >= thr)
    if not len(above) or above[0] == 0:
        return None
    i = int(above[0])
    return float(t[i - 1] + (thr - y[i - 1]) / (y[i] - y[i - 1]) * (t[i] - t[i - 1]))


def forecasts(res: Results, task: str, metric: Optional[str] = None, x: str = "params",
              threshold: Optional[float] = None, fit_below: Optional[float] = None, bootstrap: int = 400,
              seed: int = 0) -> list[Forecast]:
    """The pooled forecast and one per replicate (when every size has several models: seeds of a ladder)."""
    if res.store is None:
        raise HarnessError("forecast needs a run of this harness (per-example records)", source=res.source)
    metric = metric or default_metric(res, task)
    scores = res.scores[(res.scores["task"] == task) & (res.scores["aggregate"] == "") & (res.scores["metric"] == metric)]
    if scores.empty:
        raise HarnessError(f"no '{metric}' scores for task '{task}' in these results", source=res.source, where="--task")
    info = metric_info(metric)
    chances = scores["chance"].dropna()
    chance = float(chances.mean()) if len(chances) else 0.0
    ceiling = info.ceiling if info.ceiling is not None else 1.0
    thr = threshold if threshold is not None else chance + 0.5 * (ceiling - chance)
    sizes = sorted(float(s) for s in set(scores[x]))
    models = {s: sorted(str(m) for m in scores.loc[scores[x] == s, "model"]) for s in sizes}
    steps, composite, length = _per_document(res, task, metric, [m for s in sizes for m in models[s]])
    out = [_forecast(task, metric, "pooled", sizes, models, steps, composite, length, thr, fit_below, bootstrap, seed)]
    for r in range(min(len(ms) for ms in models.values())) if min(len(ms) for ms in models.values()) > 1 else []:
        one = {s: [models[s][r]] for s in sizes}
        out.append(_forecast(task, metric, f"replicate {r}", sizes, one, steps, composite, length, thr, fit_below,
                             bootstrap, seed))
    return out


def _per_document(res: Results, task: str, metric: str, names: list[str]
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Per model: each document's per-step accuracy and composite value, on the documents every model answered
    with an answer of the most common length."""
    recs = {m: {r["doc_id"]: r for r in res.records(m, task)} for m in names}
    for m, rs in recs.items():
        first = next(iter(rs.values()), None)
        if first is None or "token_greedy" not in first or metric not in first.get("metrics", {}):
            raise HarnessError(f"{m} on {task}: records have no per-token steps or no '{metric}' (rerun the task)",
                               source=res.source)
    common = sorted(set.intersection(*(set(rs) for rs in recs.values())))
    lengths = [len(recs[names[0]][d]["token_greedy"]) for d in common]
    length = max(set(lengths), key=lengths.count)
    docs = [d for d, n in zip(common, lengths) if n == length]
    steps = {m: np.array([np.mean(recs[m][d]["token_greedy"]) for d in docs]) for m in names}
    composite = {m: np.array([recs[m][d]["metrics"][metric] for d in docs], dtype=np.float64) for m in names}
    return steps, composite, length


def _forecast(task: str, metric: str, which: str, sizes: list[float], models: dict[float, list[str]],
              steps: dict[str, np.ndarray], composite: dict[str, np.ndarray], length: int, thr: float,
              fit_below: Optional[float], bootstrap: int, seed: int) -> Forecast:
    t = np.log10(sizes)
    y = np.array([np.mean([composite[m].mean() for m in models[s]]) for s in sizes])
    observed = _observed(t, y, thr)
    above = np.flatnonzero(y >= thr)
    bracket = (sizes[above[0] - 1], sizes[above[0]]) if len(above) and above[0] > 0 else None
    if fit_below is not None:
        fit = [i for i, s in enumerate(sizes) if s < fit_below]
    else:  # the sizes before the composite crosses (all of them when it never does)
        fit = [i for i in range(len(sizes)) if y[: i + 1].max() < thr]
    if len(fit) < 2:
        raise HarnessError(f"{which}: fewer than 2 model sizes to fit below the crossing (give --fit-below)",
                           where="--fit-below")
    target = thr ** (1.0 / length)
    p = np.array([np.mean([steps[m].mean() for m in models[sizes[i]]]) for i in fit])
    predicted = _crossing(t[fit], p, target)
    n_docs = len(next(iter(steps.values())))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(bootstrap):
        pick = rng.integers(0, n_docs, n_docs)
        pb = np.array([np.mean([steps[m][pick].mean() for m in models[sizes[i]]]) for i in fit])
        c = _crossing(t[fit], pb, target)
        if c is not None:
            draws.append(c)
    lo, hi = (10 ** np.percentile(draws, 5), 10 ** np.percentile(draws, 95)) if draws else (math.nan, math.nan)
    return Forecast(task, metric, which, length, thr, [sizes[i] for i in fit],
                    None if predicted is None else float(10 ** predicted), (float(lo), float(hi)),
                    None if observed is None else float(10 ** observed), bracket)
