"""Compare two results (two suites on the same tasks, or two variants of one suite): per task and
metric the difference with a paired test where both answered the same items, and the labels that changed.
Two model families (different models) are compared at matched x instead: each family's curve interpolated on
log x at the sizes both span, with a z-test from the pooled standard errors at each.

Paired tests: McNemar's exact test for 0/1 metrics (accuracy, exact match) of one model in both runs;
a paired bootstrap over shared items otherwise, and for the mean over a suite (items resampled jointly
across every model of both runs). Without per-example values the test falls back to an unpaired z-test
from the standard errors, and says so. p-values come with Benjamini-Hochberg q-values over the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy as np
from scipy.stats import binomtest, false_discovery_control, norm

from harness.analysis.classified import Classified
from harness.analysis.results import Results
from harness.analysis.scaling import Classification, Curve, display_name, size_means
from harness.errors import HarnessError

SUITE = "mean over models"


@dataclass
class Difference:
    task: str
    aggregate: str
    metric: str
    scope: str  # a model present in both, or SUITE
    a: float
    b: float
    delta: float  # b - a, in the metric's units
    ci: tuple[float, float]
    p: float
    test: str
    n: Optional[int]
    higher_is_better: bool
    q: float = float("nan")

    @property
    def name(self) -> str:
        return display_name(self.task, self.aggregate)

    @property
    def verdict(self) -> str:
        if not self.q < 0.05:
            return "no significant change"
        return "better" if (self.delta > 0) == self.higher_is_better else "worse"


class LabelPair(NamedTuple):
    """A curve's label in A and in B."""

    task: str
    aggregate: str
    metric: str
    a: str
    b: str

    @property
    def name(self) -> str:
        return display_name(self.task, self.aggregate)


@dataclass
class Comparison:
    differences: list[Difference]
    labels: list[LabelPair]
    only_a: list[tuple[str, str, str]] = field(default_factory=list)  # (task, aggregate, metric) in A only
    only_b: list[tuple[str, str, str]] = field(default_factory=list)
    mismatched: dict[tuple[str, str], int] = field(default_factory=dict)  # (task, model): ids naming other rows

    @property
    def changed_labels(self) -> list[LabelPair]:
        return [row for row in self.labels if row.a != row.b]


def _bootstrap(d: np.ndarray, rng: np.random.Generator, B: int = 2000) -> tuple[tuple[float, float], float]:
    """Percentile CI of the mean of paired differences ``d`` and a two-sided bootstrap p-value."""
    if not d.any():
        return (0.0, 0.0), 1.0
    n = len(d)
    means = d[rng.integers(0, n, (B, n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    p = 2 * min((means <= 0).mean(), (means >= 0).mean())
    return (float(lo), float(hi)), float(min(1.0, max(p, 1.0 / B)))


def _paired(a: dict, b: dict, rng: np.random.Generator) -> Optional[tuple]:
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    x = np.array([a[k] for k in common])
    y = np.array([b[k] for k in common])
    if set(np.unique(np.concatenate([x, y]))) <= {0.0, 1.0}:
        n01, n10 = int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum())
        p = binomtest(n10, n01 + n10, 0.5).pvalue if n01 + n10 else 1.0
        se = math.sqrt(max((n01 + n10) - (n10 - n01) ** 2 / len(common), 0)) / len(common)
        d = (n10 - n01) / len(common)
        return x.mean(), y.mean(), d, (d - 1.96 * se, d + 1.96 * se), float(p), "McNemar (exact)", len(common)
    ci, p = _bootstrap(y - x, rng)
    return x.mean(), y.mean(), float((y - x).mean()), ci, p, "paired bootstrap", len(common)


def _unpaired(a: float, sa: Optional[float], b: float, sb: Optional[float]) -> tuple:
    if sa is None or sb is None or math.isnan(sa) or math.isnan(sb) or sa + sb == 0:
        return (float("nan"), float("nan")), float("nan"), "none (no standard errors)"
    se = math.hypot(sa, sb)
    return (b - a - 1.96 * se, b - a + 1.96 * se), float(2 * norm.sf(abs(b - a) / se)), "unpaired z (stderr)"


def compare(a: Classified, b: Classified, seed: int = 0) -> Comparison:
    """Differences B − A for every curve (task, aggregate, metric) both have, per shared model and for the
    suite mean."""
    rng = np.random.default_rng(seed)
    res_a, res_b = a.results, b.results
    ka = {(*c.key, c.metric): (c, r) for c, r in a.curves}
    kb = {(*c.key, c.metric): (c, r) for c, r in b.curves}
    diffs, labels = [], []
    mismatched: dict[tuple[str, str], int] = {}
    for key in sorted(set(ka) & set(kb)):
        (ca, ra), (cb, rb) = ka[key], kb[key]
        task, aggregate, metric = key
        labels.append(LabelPair(task, aggregate, metric, ra.label, rb.label))
        va = dict(zip(ca.models, zip(ca.values, ca.stderr or [None] * len(ca.models))))
        vb = dict(zip(cb.models, zip(cb.values, cb.stderr or [None] * len(cb.models))))
        for model in [m for m in ca.models if m in vb]:
            ia = res_a.items(model, task, metric) if not aggregate else None
            ib = res_b.items(model, task, metric) if not aggregate else None
            if ia and ib:
                differ = _differing_ids(ia, ib)
                if differ:
                    mismatched[(task, model)] = differ
            paired = _paired(ia, ib, rng) if ia and ib else None
            if paired:  # means over the shared items
                mean_a, mean_b, delta, ci, p, test, n = paired
            else:
                (mean_a, se_a), (mean_b, se_b) = va[model], vb[model]
                delta = mean_b - mean_a
                ci, p, test = _unpaired(mean_a, se_a, mean_b, se_b)
                n = None
            diffs.append(Difference(*key, model, mean_a, mean_b, delta, ci, p, test, n, ca.higher_is_better))
        mean_a, mean_b = float(np.mean(ca.values)), float(np.mean(cb.values))
        ia = _item_means(res_a, ca) if ca.items is not None and cb.items is not None else {}
        ib = _item_means(res_b, cb) if ia else {}
        common = sorted(set(ia) & set(ib))  # (doc id, row hash): only documents both runs saw
        if len(common) >= 2:
            xa, xb = np.array([ia[k] for k in common]), np.array([ib[k] for k in common])
            ci, p = _bootstrap(xb - xa, rng)
            diffs.append(Difference(*key, SUITE, float(xa.mean()), float(xb.mean()), float((xb - xa).mean()), ci, p,
                                    "paired bootstrap", len(common), ca.higher_is_better))
        else:
            se_a = _mean_se(ca)
            se_b = _mean_se(cb)
            ci, p, test = _unpaired(mean_a, se_a, mean_b, se_b)
            diffs.append(Difference(*key, SUITE, mean_a, mean_b, mean_b - mean_a, ci, p, test, None, ca.higher_is_better))
    ps = np.array([d.p for d in diffs])
    ok = ~np.isnan(ps)
    if ok.any():
        for d, q in zip([d for d, k in zip(diffs, ok) if k], false_discovery_control(ps[ok])):
            d.q = float(q)
    if not labels:
        raise HarnessError("the two results share no task and metric", source=f"{res_a.source} vs {res_b.source}")
    return Comparison(diffs, labels, sorted(set(ka) - set(kb)), sorted(set(kb) - set(ka)), mismatched)


def _differing_ids(a: dict, b: dict) -> int:
    """Document ids present in both whose rows differ (their hashes): such items are never paired."""
    ids_a, ids_b = dict(a.keys()), dict(b.keys())  # keys are (doc_id, doc_hash)
    return sum(ids_a[i] != ids_b[i] for i in set(ids_a) & set(ids_b))


def _item_means(res: Results, curve: Curve) -> dict:
    """Per document: the mean over the curve's models (the items every model answered)."""
    per = [res.items(m, curve.task, curve.metric) or {} for m in curve.models]
    common = set.intersection(*(set(p) for p in per))
    return {k: float(np.mean([p[k] for p in per])) for k in common}


def _mean_se(curve: Curve) -> Optional[float]:
    se = [s for s in (curve.stderr or []) if s is not None and not math.isnan(s)]
    return math.sqrt(sum(s * s for s in se)) / len(se) if se and len(se) == len(curve.models) else None


@dataclass
class MatchedPoint:
    """Two families' curves at one x, each interpolated on log x between its measured sizes."""

    x: float
    a: float
    b: float
    se: float  # of b − a; nan when a family's noise is not known
    p: float
    q: float = float("nan")

    @property
    def delta(self) -> float:
        return self.b - self.a


@dataclass
class FamilyContrast:
    """One task and metric in two families: each one's label, and where their curves differ beyond noise."""

    task: str
    aggregate: str
    metric: str
    a: Classification
    b: Classification
    points: list[MatchedPoint]
    higher_is_better: bool

    @property
    def name(self) -> str:
        return display_name(self.task, self.aggregate)

    @property
    def differing(self) -> list[MatchedPoint]:
        return [p for p in self.points if p.q < 0.05]

    @property
    def verdict(self) -> str:
        if not self.points:
            return "no x range in common"
        if all(math.isnan(p.p) for p in self.points):
            return "not tested (no standard errors)"
        if not self.differing:
            return "no difference beyond noise"
        b_better = [(p.delta > 0) == self.higher_is_better for p in self.differing]
        who = "B better" if all(b_better) else "A better" if not any(b_better) else "crossing"
        xs = [p.x for p in self.differing]
        return f"{who} at {len(xs)} of {len(self.points)} matched x ({min(xs):.3g}–{max(xs):.3g})"


@dataclass
class FamilyComparison:
    family_a: str
    family_b: str
    contrasts: list[FamilyContrast]
    only_a: list[tuple[str, str, str]] = field(default_factory=list)
    only_b: list[tuple[str, str, str]] = field(default_factory=list)


def _at(curve: Curve, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A curve's per-size means and standard errors at ``xs`` (inside its range), linear in log x between sizes."""
    sizes, means, se, noise = size_means(curve)
    if noise == "none":
        se = np.full(len(sizes), np.nan)
    lx, lt = np.log10(sizes), np.log10(xs)
    i = np.clip(np.searchsorted(lx, lt, side="right") - 1, 0, max(len(lx) - 2, 0))
    j = np.minimum(i + 1, len(lx) - 1)
    w = np.where(j > i, (lt - lx[i]) / np.where(j > i, lx[j] - lx[i], 1.0), 0.0)
    return (1 - w) * means[i] + w * means[j], np.sqrt(((1 - w) * se[i]) ** 2 + (w * se[j]) ** 2)


def _family_key(curve: Curve) -> tuple[str, str, str]:
    """A curve's task (any @arch kept, its @FAMILY dropped), aggregate and metric: what two families share."""
    task = curve.base_task + curve.task[len(curve.base_task):].replace(f"@{curve.family}", "", 1)
    return task, curve.aggregate, curve.metric


def compare_families(classified: Classified, family_a: str, family_b: str) -> FamilyComparison:
    """Family B against family A on every task and metric both have: labels, and B − A at each x both span (the
    sizes of either family inside the common range), with Benjamini-Hochberg q-values over the table."""
    have = sorted({c.family for c, _ in classified.curves if c.family})
    for name in (family_a, family_b):
        if name not in have:
            raise HarnessError(f"no family {name!r} in the results (have: {', '.join(have) or 'none'})",
                               where="--families")
    if family_a == family_b:
        raise HarnessError("name two different families", where="--families")
    side = {f: {_family_key(c): (c, r) for c, r in classified.curves if c.family == f} for f in (family_a, family_b)}
    ka, kb = side[family_a], side[family_b]
    contrasts = []
    for key in sorted(set(ka) & set(kb)):
        (ca, ra), (cb, rb) = ka[key], kb[key]
        lo, hi = max(min(ca.x), min(cb.x)), min(max(ca.x), max(cb.x))
        xs = np.array(sorted({float(v) for v in [*ca.x, *cb.x] if lo <= v <= hi}))
        points = []
        if len(xs):
            (ya, sa), (yb, sb) = _at(ca, xs), _at(cb, xs)
            for x, a, b, se in zip(xs, ya, yb, np.hypot(sa, sb)):
                p = float(2 * norm.sf(abs(b - a) / se)) if se > 0 else float("nan")
                points.append(MatchedPoint(float(x), float(a), float(b), float(se), p))
        contrasts.append(FamilyContrast(*key, ra, rb, points, ca.higher_is_better))
    if not contrasts:
        raise HarnessError(f"families {family_a!r} and {family_b!r} share no task and metric", where="--families")
    tested = [p for c in contrasts for p in c.points if not math.isnan(p.p)]
    if tested:
        for point, q in zip(tested, false_discovery_control([p.p for p in tested])):
            point.q = float(q)
    return FamilyComparison(family_a, family_b, contrasts, sorted(set(ka) - set(kb)), sorted(set(kb) - set(ka)))
