"""Label a scaling curve (one task, one metric, K model sizes) with a confidence and its diagnostics.

The rules, in the order they are tried, on the curve pooled per size and oriented so higher is better
(``δ`` is the smallest change that counts: the larger of the minimum effect size, 2% of the metric's scale,
and z = 2 standard errors of a difference between two sizes; the scale is ceiling − chance when both are
known, else the metric's range, else the curve's largest magnitude):

1. **flat**: no size is a minimum effect away from the curve's level (too small to matter), or the curve is
   consistent with a constant (a chi-square test against each size's standard error does not reject it at
   0.99) and shows no steady trend (its weighted slope is within 2.576 standard errors of 0). Curves at the
   ceiling, or at chance throughout, land here. A proportion's standard error is Jeffreys-smoothed (half an
   item each way), so a score of exactly 0 or 1 is not taken as known without error.
2. **u_shaped / inverted_u** (K ≥ 5): an interior extreme with both arms at least δ and a fair share of
   the range, monotone on each side within δ, and a quadratic in log x that halves the linear fit's
   residual. Inverse scaling that recovers is U-shaped (Wei et al. 2022, "Inverse scaling can become
   U-shaped"; McKenzie et al. 2023).
3. **emergent** (K ≥ 5): the smaller models (at least two) are near chance (within δ, 10% of the scale or
   a fifth of the curve's rise above chance, whichever is largest; below it is allowed) on a plateau (rising by no more than δ and a quarter of the jump),
   the larger ones clearly above: a fifth of the scale over chance, or (a low ceiling, e.g. exact match
   going from 0.01 to 0.15) staying above the plateau by 2δ and half the curve's own range; and a
   plateau-then-rise ("hinge") fit halves the residual of a straight line on log x; the rise is either a
   line from the break on log x or a jump to a new level, whichever fits better (Wei et al. 2022,
   "Emergent abilities": performance near random until a threshold scale, then well above). Without a
   known chance the plateau is measured from its lowest point, and the notes say chance is unknown.
4. **smooth / inverse**: a monotone trend (|Spearman ρ| ≥ 0.6) with a fitted change of at least δ that
   explains the curve: the line on log x explains half its variance, or its residuals are within the noise
   (a zigzag around a weak trend is not smooth). A monotone drift smaller than δ is flat.
5. **not_correlated**: it moves by more than the noise, but in none of these shapes.

Confidence is the share of resampled curves that get the same label: items are resampled jointly across
models when per-example values exist (every model answered the same items), otherwise each score is
redrawn from its standard error; models of one size (seeds, replicate checkpoints) are resampled too,
so their spread counts as noise. With fewer than 5 sizes the curve is flagged and only the coarse
labels (flat, smooth, inverse, not_correlated) are given. BIG-bench-style linearity and
breakthroughness (Srivastava et al. 2022, §3.4) are reported as diagnostics, and ``metric_artifacts``
contrasts a task's discontinuous and continuous metrics (Schaeffer et al. 2023, "mirage").
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from harness.analysis.scaling import fits
from harness.analysis.scaling.rules import LABELS, Rules, decide_label
from harness.errors import HarnessError
from harness.store import display_name


class _Keyed:
    """A curve's identity: ``key`` (task, aggregate), and ``name`` for display (``task`` or ``group (macro)``)."""

    task: str
    aggregate: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.task, self.aggregate)

    @property
    def name(self) -> str:
        return display_name(self.task, self.aggregate)


@dataclass
class Curve(_Keyed):
    """Scores of one task and metric at several model sizes. ``items`` (models × items) holds
    per-example values on the same items in the same order, when they are known."""

    task: str
    metric: str
    models: list[str]
    x: Sequence[float]
    values: Sequence[float]
    stderr: Optional[Sequence[Optional[float]]] = None
    n: Optional[Sequence[Optional[int]]] = None
    chance: Optional[float] = None
    ceiling: Optional[float] = None
    floor: Optional[float] = None      # the worst possible value (0 for accuracy, 2 for Brier)
    higher_is_better: bool = True
    kind: Optional[str] = None
    items: Optional[np.ndarray] = None
    x_name: str = "params"
    aggregate: str = ""                # "" for a task; "macro" or "micro" for a task group's aggregate
    family: str = ""                   # the model family, where the results hold several (``task`` then ends @FAMILY)
    base_task: str = ""                # the task's own name (``task`` with any @FAMILY / @arch removed)


@dataclass(frozen=True)
class Diagnostics:
    """What a label rests on: the pooled curve per size, its noise, the thresholds, and the fits the rules compared
    (a fit the rules did not reach is None)."""

    x: str                            # the scale variable (params, flops, ...)
    sizes: list[float]                # distinct sizes, ascending
    n_models: int
    replicates: int                   # the most models at one size (seeds)
    values: list[float]               # per-size means
    stderr: list[float]               # per-size standard errors (item noise and the spread of replicates)
    chance: Optional[float]
    ceiling: Optional[float]
    delta: float                      # the smallest change that counts (minimum effect or the noise, if larger)
    scale: float                      # the metric's scale (chance to ceiling, else floor to ceiling)
    noise: str                        # where the noise came from
    few_points: bool                  # fewer sizes than the rules need for emergent / U shapes
    slope_per_decade: float
    gain: float                       # largest size's mean minus the smallest's
    rho: float                        # Spearman's rank correlation with log size
    linearity: float
    breakthroughness: float
    break_between: Optional[tuple[float, float]] = None  # emergent: the two sizes the jump falls between
    sse_linear: Optional[float] = None
    sse_break: Optional[float] = None
    sse_quadratic: Optional[float] = None
    r2_linear: Optional[float] = None
    chi2_constant: Optional[float] = None
    trend_z: Optional[float] = None

    def as_dict(self) -> dict[str, Any]:
        """The diagnostics the rules reached (JSON output)."""
        return {k: v for k, v in asdict(self).items() if v is not None or k in ("chance", "ceiling")}


@dataclass
class Classification(_Keyed):
    """One curve's label, with the confidence, the shares of other labels, and the diagnostics behind it."""

    task: str
    metric: str
    label: str
    confidence: float
    kind: Optional[str]
    alternatives: dict[str, float]
    diagnostics: Diagnostics
    notes: list[str] = field(default_factory=list)
    aggregate: str = ""
    family: str = ""  # as its curve's
    base_task: str = ""

    def to_dict(self) -> dict:
        return {**asdict(self), "diagnostics": self.diagnostics.as_dict()}


def _floats(seq: Optional[Sequence], k: int) -> np.ndarray:
    if seq is None:
        return np.full(k, np.nan)
    return np.array([np.nan if v is None else float(v) for v in seq], dtype=np.float64)


def _model_noise(curve: Curve, values: np.ndarray) -> tuple[np.ndarray, str]:
    """Each model's standard error and where it came from."""
    k = len(values)
    if curve.items is not None:
        items = np.asarray(curve.items, dtype=np.float64)
        se = items.std(axis=1, ddof=1) / math.sqrt(items.shape[1])
        if curve.floor == 0.0 and curve.ceiling in (0.0, 1.0) and curve.kind == "discontinuous":
            se = np.fmax(se, _proportion_se(values, np.full(k, float(items.shape[1]))))
        return se, "items (paired bootstrap)"
    se = _floats(curve.stderr, k)
    n = _floats(curve.n, k)
    binary = curve.floor == 0.0 and curve.ceiling in (0.0, 1.0) and curve.kind == "discontinuous"
    if binary:  # a proportion with n items: at least the boundary-safe binomial standard error
        have = n > 1
        se[have] = np.fmax(se[have], _proportion_se(values[have], n[have]))
    if np.all(np.isnan(se)):
        return np.zeros(k), "none"
    return np.where(np.isnan(se), np.nanmedian(se), se), "stderr (parametric bootstrap)"


def size_means(curve: Curve) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Per model size, ascending: the mean over its models and its standard error, pooled as ``classify`` pools
    them (item noise and the spread of replicates), and where the noise came from ("none": not known)."""
    k = len(curve.models)
    x, values = _floats(curve.x, k), _floats(curve.values, k)
    model_se, noise = _model_noise(curve, values)
    sizes = np.unique(x)
    means, se = _pool(values, model_se, [np.flatnonzero(x == s) for s in sizes])
    return sizes, means, se, noise


def _proportion_se(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """A proportion's standard error that stays positive at 0 and 1 (Jeffreys' prior: half an item each way),
    so a score of exactly 0 is not taken as known without error."""
    smoothed = (np.clip(p, 0, 1) * n + 0.5) / (n + 1)
    return np.sqrt(smoothed * (1 - smoothed) / n)


def _pool(model_values: np.ndarray, model_se: np.ndarray, groups: list[np.ndarray]):
    """Per size: the mean of its replicates and a standard error counting item noise and their spread."""
    means = np.array([model_values[g].mean() for g in groups])
    se = np.array([math.sqrt((model_se[g] ** 2).mean() + (model_values[g].var(ddof=1) / len(g) if len(g) > 1 else 0.0))
                   for g in groups])
    return means, se


def _seed(curve: Curve, rules: Rules) -> int:
    return int.from_bytes(hashlib.sha256(f"{rules.seed}:{curve.name}:{curve.metric}".encode()).digest()[:8], "little")


def classify(curve: Curve, rules: Rules = Rules()) -> Classification:
    """Label one curve; the result does not depend on the order its models are given in."""
    k_models = len(curve.models)
    x = _floats(curve.x, k_models)
    values = _floats(curve.values, k_models)
    if len(values) != k_models or np.isnan(x).any() or np.isnan(values).any() or (x <= 0).any():
        raise HarnessError("every model needs a positive size and a score", source=f"{curve.name}/{curve.metric}",
                           where=curve.x_name)
    model_se, noise = _model_noise(curve, values)
    order = sorted(range(k_models), key=lambda i: (x[i], curve.models[i]))  # canonical order
    x, values, model_se = x[order], values[order], model_se[order]
    items = None if curve.items is None else np.asarray(curve.items, dtype=np.float64)[order]
    sizes = np.unique(x)
    groups = [np.flatnonzero(x == s) for s in sizes]
    if len(sizes) < 3:
        raise HarnessError(f"needs at least 3 model sizes, got {len(sizes)}", source=f"{curve.name}/{curve.metric}",
                           where=curve.x_name)
    means, size_se = _pool(values, model_se, groups)

    sign = 1.0 if curve.higher_is_better else -1.0
    chance = None if curve.chance is None else sign * curve.chance
    ceiling = None if curve.ceiling is None else sign * curve.ceiling
    scale = _scale(curve, means)
    noise_floor = rules.z * math.sqrt(2) * float(np.median(size_se))
    delta = max(rules.min_effect * scale, noise_floor)
    t = np.log10(sizes)
    y = sign * means
    few = len(sizes) < rules.min_points
    label, info = decide_label(t, y, size_se, delta, chance, scale, rules, few, detail=True)
    brk = info.pop("break_index", None)

    def decide(t: np.ndarray, y: np.ndarray, se: np.ndarray) -> str:
        return decide_label(t, y, se, delta, chance, scale, rules, len(y) < rules.min_points)[0]

    if noise == "none":  # no noise known: leave out one size at a time
        labels = [decide(np.delete(t, i), np.delete(y, i), np.delete(size_se, i)) for i in range(len(y))] if len(y) > 3 else []
        noise = "none (confidence from leaving out one size at a time)" if labels else "none"
    else:
        pooled = _resampled(curve, rules, values, model_se, items, groups)
        labels = [decide(t, sign * pooled[:, b], size_se) for b in range(rules.bootstrap)]
    shares = {lab: labels.count(lab) / len(labels) for lab in LABELS if labels and labels.count(lab)}
    confidence = shares.get(label, 0.0) if labels else 0.0

    diag = Diagnostics(
        x=curve.x_name, sizes=sizes.tolist(), n_models=k_models, replicates=int(max(len(g) for g in groups)),
        values=means.tolist(), stderr=size_se.tolist(), chance=curve.chance, ceiling=curve.ceiling,
        delta=delta, scale=scale, noise=noise, few_points=few,
        slope_per_decade=sign * fits.slope(t, y), gain=float(means[-1] - means[0]),
        rho=fits.rank_correlation(t, y), linearity=fits.linearity(y / scale),
        breakthroughness=fits.breakthroughness(y / scale),
        break_between=None if brk is None else (float(sizes[brk]), float(sizes[brk + 1])), **info)
    notes = []
    if few:
        notes.append(f"only {len(sizes)} sizes: emergent and U shapes are not assessed below {rules.min_points}")
    if curve.chance is None and curve.kind != "continuous":
        notes.append("chance level unknown (pass --chance TASK=VALUE)")
    notes += _end_notes(y, chance, ceiling, scale, model_se, groups, rules)
    if noise.startswith("none"):
        notes.append("no standard errors or per-example values: noise unknown")
    return Classification(curve.task, curve.metric, label, round(confidence, 4), curve.kind, shares, diag, notes,
                          curve.aggregate, curve.family, curve.base_task or curve.task)


def _scale(curve: Curve, means: np.ndarray) -> float:
    """The metric's scale: chance to ceiling, else floor to ceiling, else the largest mean."""
    if curve.chance is not None and curve.ceiling is not None and curve.ceiling != curve.chance:
        return abs(curve.ceiling - curve.chance)
    if curve.floor is not None and curve.ceiling is not None and curve.ceiling != curve.floor:
        return abs(curve.ceiling - curve.floor)
    return float(np.abs(means).max()) or 1.0


def _resampled(curve: Curve, rules: Rules, values: np.ndarray, model_se: np.ndarray, items: Optional[np.ndarray],
               groups: list[np.ndarray]) -> np.ndarray:
    """``rules.bootstrap`` resampled curves (sizes × draws): items resampled jointly across models where per-item
    values exist, else each model's score redrawn from its standard error; a size's models resampled too."""
    rng = np.random.default_rng(_seed(curve, rules))
    B = rules.bootstrap
    if items is not None:
        n_items = items.shape[1]
        counts = rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=B)
        model_draws = items @ counts.T / n_items  # models × B
    else:
        model_draws = values[:, None] + model_se[:, None] * rng.standard_normal((len(values), B))
    pooled = np.empty((len(groups), B))
    for s, g in enumerate(groups):
        pick = g[rng.integers(0, len(g), (B, len(g)))] if len(g) > 1 else np.full((B, 1), g[0])
        pooled[s] = model_draws[pick, np.arange(B)[:, None]].mean(axis=1)
    return pooled


def _end_notes(y: np.ndarray, chance: Optional[float], ceiling: Optional[float], scale: float,
               model_se: np.ndarray, groups: list[np.ndarray], rules: Rules) -> list[str]:
    """Below chance at the smallest size, saturated at the largest: judged on the pooled curve (a size's mean over
    its models), within that mean's item noise."""
    def near(end: int) -> float:
        return max(rules.min_effect * scale, rules.z * math.sqrt(float((model_se[groups[end]] ** 2).mean())))

    def who(end: int, which: str) -> str:
        return f"the {which} size's mean" if len(groups[end]) > 1 else f"the {which} model"

    notes = []
    if chance is not None and y[0] < chance - near(0):
        notes.append(f"{who(0, 'smallest')} scores below chance")
    if ceiling is not None and y[-1] >= ceiling - near(-1):
        notes.append(f"saturated: {who(-1, 'largest')} is at the ceiling")
    return notes


@dataclass(frozen=True)
class Artifact:
    """A task whose discontinuous and continuous metrics scale differently."""

    task: tuple[str, str]            # the curves' key: (task, aggregate)
    discontinuous: tuple[str, str]   # (metric, label)
    continuous: tuple[str, str]
    message: str


def metric_artifacts(classifications: Sequence[Classification]) -> list[Artifact]:
    """Per task, every disagreement between a discontinuous and a continuous metric's label. An
    emergent or flat accuracy beside a smooth continuous metric is the signature Schaeffer et al.
    (2023) attribute to the metric rather than the model."""
    out = []
    by_task: dict[tuple[str, str], list[Classification]] = {}
    for c in classifications:
        by_task.setdefault(c.key, []).append(c)
    for task, cs in by_task.items():
        for d in (c for c in cs if c.kind == "discontinuous"):
            for c in (c for c in cs if c.kind == "continuous" and c.label != d.label):
                pair = f"{d.label} under {d.metric}, {c.label} under {c.metric}"
                if d.label in ("emergent", "flat") and c.label == "smooth":
                    why = (f"{d.label} under {d.metric} but smooth under {c.metric}: the jump is likely an artifact "
                           "of the discontinuous metric")
                elif d.label == "smooth":
                    why = (f"{pair}: not a metric artifact (the discontinuous metric already improves steadily); the "
                           f"{c.metric} curve is not linear in log size, e.g. probability mass gathers on the answer "
                           "late")
                elif d.label == "emergent" and c.label in ("flat", "not_correlated"):
                    why = (f"{pair}: the continuous metric does not show the gradual change a metric artifact "
                           "needs, so the jump looks real (or the continuous metric is too noisy to tell)")
                else:
                    why = (f"{pair}: the two metrics disagree, but not as a metric artifact does (a jump under the "
                           "discontinuous metric beside a smooth continuous one): no verdict")
                out.append(Artifact(task, (d.metric, d.label), (c.metric, c.label), why))
    return out
