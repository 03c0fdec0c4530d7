"""The classifier's rules: its labels, its thresholds and the decision on one curve's per-size means (flat, a
turning point, a break from chance, else the trend). ``classifier.classify`` documents the rules in full."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from scipy.stats import chi2

from harness.analysis.scaling import fits

LABELS = ("smooth", "inverse", "flat", "emergent", "u_shaped", "inverted_u", "not_correlated")
SHAPED = ("emergent", "u_shaped", "inverted_u")


@dataclass(frozen=True)
class Rules:
    """Thresholds of the rules above; the defaults are what the tests hold the classifier to."""

    min_effect: float = 0.02   # smallest change that counts, as a share of the metric's scale
    z: float = 2.0             # a difference between two sizes counts beyond z standard errors
    min_points: int = 5        # fewer sizes: flagged, and emergent / U shapes are not assigned
    min_rho: float = 0.6       # |Spearman rho| for smooth / inverse
    fit_ratio: float = 0.5     # a shape fit must cut the straight line's residual to this share
    turn_share: float = 0.2    # each arm of a U: at least this share of the curve's range
    near: float = 0.1          # emergent: "near chance" is within this share of the scale (or δ, if larger)
    jump: float = 0.2          # emergent: the larger models end this share of the scale above chance
    flat_level: float = 0.99   # flat unless a chi-square test rejects a constant curve at this level ...
    trend_z: float = 2.576     # ... or the weighted slope is this many standard errors from 0 (0.99, two-sided)
    min_r2: float = 0.5        # smooth / inverse: the trend explains this share of the movement (or the
                               # residuals are within the noise); else a zigzag is not correlated
    bootstrap: int = 400
    seed: int = 0


@functools.cache
def _critical(level: float, df: int) -> float:
    return float(chi2.ppf(level, df))


def decide_label(t: np.ndarray, y: np.ndarray, se: np.ndarray, delta: float, chance: Optional[float], scale: float,
            rules: Rules, few: bool, detail: bool = False) -> tuple[str, dict]:
    """The label of one (oriented, pooled) curve by the module's rules, in their order (flat; with enough sizes
    U shapes, then emergent; then the trend); ``detail`` adds the fit numbers."""
    info: dict = {}
    if _is_flat(t, y, se, scale, rules, info if detail else None):
        return "flat", info
    lin = fits.linear(t, y)
    if detail:
        info["sse_linear"] = lin.sse
    if not few:
        label = _turning(t, y, delta, lin, rules, info if detail else None)
        if label is not None:
            return label, info
        best = _break(t, y, delta, chance, scale, lin, rules)
        if best is not None:
            if detail:
                info.update(break_index=best[0], sse_break=best[1])
            return "emergent", info
    return _trend(t, y, se, delta, lin, rules, info if detail else None), info


def _is_flat(t: np.ndarray, y: np.ndarray, se: np.ndarray, scale: float, rules: Rules, info: Optional[dict]) -> bool:
    """No size a minimum effect away from the curve's level, or consistent with a constant (chi-square) with no
    steady trend (weighted slope)."""
    if float(np.abs(y - y.mean()).max()) < rules.min_effect * scale:
        return True
    if (se > 0).all():
        stat = float((((y - y.mean()) / se) ** 2).sum())
        trend = fits.trend_z(t, y, se)
        if info is not None:
            info.update(chi2_constant=stat, trend_z=trend)
        return stat <= _critical(rules.flat_level, len(y) - 1) and abs(trend) < rules.trend_z
    return False


def _turning(t: np.ndarray, y: np.ndarray, delta: float, lin: Any, rules: Rules, info: Optional[dict]
             ) -> Optional[str]:
    """``u_shaped`` or ``inverted_u``: an interior extreme with both arms large and monotone, and a quadratic in
    log x halving the line's residual; else None."""
    k, span = len(y), float(np.ptp(y))
    quad = fits.quadratic(t, y)
    if info is not None:
        info["sse_quadratic"] = quad.sse
    quad_better = quad.sse <= rules.fit_ratio * lin.sse and lin.sse - quad.sse >= delta ** 2
    for label, z in (("u_shaped", y), ("inverted_u", -y)):
        m = int(np.argmin(z))
        if 0 < m < k - 1 and quad_better:
            arm = max(delta, rules.turn_share * span)
            if (z[0] - z[m] >= arm and z[-1] - z[m] >= arm
                    and np.diff(z[:m + 1]).max() <= delta and np.diff(z[m:]).min() >= -delta):
                return label
    return None


def _break(t: np.ndarray, y: np.ndarray, delta: float, chance: Optional[float], scale: float, lin: Any,
           rules: Rules) -> Optional[tuple[int, float]]:
    """The best plateau-then-rise split (its last plateau index and fit residual) that passes the emergence
    rules, or None."""
    k, span = len(y), float(np.ptp(y))
    best = None
    near = max(delta, rules.near * scale)
    for j in range(1, k - 1):  # plateau = sizes 0..j (at least two), then at least one size above
        plateau, after = y[:j + 1], y[j + 1:]
        base = chance if chance is not None else float(plateau.min())
        # near chance: within a tenth of the scale, or a fifth of the curve's own rise (a low plateau
        # before a jump to the ceiling, e.g. exact match 0.01 … 0.17 then 0.99)
        if plateau.max() > base + max(near, 0.2 * (after.max() - base)):
            continue
        rising = fits.linear(t[:j + 1], plateau).fitted
        if rising[-1] - rising[0] > max(delta, 0.25 * (y[j + 1] - plateau.max())):
            continue  # not a plateau: it rises before the break by more than the noise and a quarter of the jump
        # the jump: a fifth of the scale above chance, or (a low ceiling) a rise that stays above the plateau
        # by twice the smallest change that counts and half the curve's own range
        if not (after.max() >= base + rules.jump * scale
                or after.min() - plateau.max() >= max(2 * delta, 0.5 * span)):
            continue
        if after.max() < plateau.max() + 2 * delta or y[-1] < plateau.max() + 2 * delta:
            continue
        h = min(fits.hinge(t, y, j), fits.step(t, y, j), key=lambda f: f.sse)
        if h.sse <= rules.fit_ratio * lin.sse and lin.sse - h.sse >= delta ** 2 and (best is None or h.sse < best[1]):
            best = (j, h.sse)
    return best


def _trend(t: np.ndarray, y: np.ndarray, se: np.ndarray, delta: float, lin: Any, rules: Rules,
           info: Optional[dict]) -> str:
    """``smooth``, ``inverse``, ``flat`` (a monotone drift below the smallest change that counts) or
    ``not_correlated``, from the rank correlation, the fitted gain and how much of the curve the line explains."""
    rho = fits.rank_correlation(t, y)
    gain = float(lin.fitted[-1] - lin.fitted[0])
    r2 = fits.r_squared(y, lin)
    explained = r2 >= rules.min_r2 or math.sqrt(lin.sse / len(y)) <= rules.z * float(np.median(se))
    if info is not None:
        info["r2_linear"] = r2
    if abs(rho) >= rules.min_rho and abs(gain) < delta:
        return "flat"
    if rho >= rules.min_rho and gain >= delta and explained:
        return "smooth"
    if rho <= -rules.min_rho and gain <= -delta and explained:
        return "inverse"
    return "not_correlated"


