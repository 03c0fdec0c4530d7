"""Curve fits and shape statistics on log-scale x: the numbers the classifier's rules compare.

Every function takes ``t`` (log10 of the scale variable, sorted ascending) and ``y`` (the score,
oriented so that higher is better) as 1-D float arrays of equal length K.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fit:
    """A least-squares fit: its sum of squared residuals, parameter count and fitted values."""

    sse: float
    n_params: int
    fitted: np.ndarray


def _line(u: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fitted values of y = a + b·u by least squares (closed form; a constant u fits the mean)."""
    du = u - u.mean()
    ss = float(du @ du)
    b = float(du @ (y - y.mean())) / ss if ss > 0 else 0.0
    return y.mean() + b * du


def linear(t: np.ndarray, y: np.ndarray) -> Fit:
    """y = a + b·t: steady change per decade of scale (the "smooth" shape)."""
    fitted = _line(t, y)
    return Fit(float(((y - fitted) ** 2).sum()), 2, fitted)


def trend_z(t: np.ndarray, y: np.ndarray, se: np.ndarray) -> float:
    """The weighted least-squares slope of y on t divided by its standard error (each point weighted by
    1/se²): a test for a trend, more powerful against a steady change than a test against a constant."""
    w = 1.0 / se ** 2
    tm = float((w * t).sum() / w.sum())
    sxx = float((w * (t - tm) ** 2).sum())
    if sxx <= 0:
        return 0.0
    b = float((w * (t - tm) * (y - (w * y).sum() / w.sum())).sum()) / sxx
    return b * float(np.sqrt(sxx))


def r_squared(y: np.ndarray, fit: Fit) -> float:
    """The share of the curve's variance a fit explains (1 for a constant curve)."""
    sst = float(((y - y.mean()) ** 2).sum())
    return 1.0 - fit.sse / sst if sst > 0 else 1.0


def slope(t: np.ndarray, y: np.ndarray) -> float:
    """Change in y per decade of x, from the linear fit."""
    fitted = _line(t, y)
    return float((fitted[-1] - fitted[0]) / (t[-1] - t[0])) if t[-1] > t[0] else 0.0


def hinge(t: np.ndarray, y: np.ndarray, j: int) -> Fit:
    """y = a for the first j+1 sizes, then a + b·(t - t_j): a plateau that breaks at size j (emergence)."""
    fitted = _line(np.maximum(0.0, t - t[j]), y)
    return Fit(float(((y - fitted) ** 2).sum()), 3, fitted)  # the break point counts as a parameter


def step(t: np.ndarray, y: np.ndarray, j: int) -> Fit:
    """y = a for the first j+1 sizes, b after: a plateau, then a jump to a new level (a sharp emergence)."""
    fitted = np.where(np.arange(len(y)) <= j, y[: j + 1].mean(), y[j + 1:].mean())
    return Fit(float(((y - fitted) ** 2).sum()), 3, fitted)


def quadratic(t: np.ndarray, y: np.ndarray) -> Fit:
    """y = a + b·t + c·t²: one turn (U-shaped or inverted-U)."""
    design = np.vander(t - t.mean(), 3)
    fitted = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return Fit(float(((y - fitted) ** 2).sum()), 3, fitted)


def rank_correlation(t: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho between scale and score; 0 for a constant curve."""
    if np.ptp(y) == 0 or len(y) < 3:
        return 0.0
    rt, ry = _ranks(t), _ranks(y)
    rt, ry = rt - rt.mean(), ry - ry.mean()
    return float(rt @ ry / np.sqrt((rt @ rt) * (ry @ ry)))


def _ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), fast for the few points of a curve."""
    return (v[:, None] > v[None, :]).sum(1) + 0.5 * ((v[:, None] == v[None, :]).sum(1) - 1)


def linearity(y: np.ndarray) -> float:
    """BIG-bench-style linearity (Srivastava et al. 2022, §3.4): how evenly the change is spread over
    the K-1 steps between consecutive sizes. With steps d_i: mean(d) / RMS(d), in [-1, 1]; 1 for equal
    steps up, 1/sqrt(K-1) when one step carries all of it, near 0 for noise."""
    d = np.diff(y)
    rms = float(np.sqrt((d ** 2).mean()))
    return float(d.mean() / rms) if rms > 0 else 0.0


def breakthroughness(y: np.ndarray) -> float:
    """BIG-bench-style breakthroughness (§3.4): how much of the change comes in one step. With steps
    d_i: sum(sign(d)·d²) / sum(|d|), in the units of y; about gain/(K-1) for a steady climb, the full
    gain when one step carries it, negative for sudden drops."""
    d = np.diff(y)
    total = float(np.abs(d).sum())
    return float((np.sign(d) * d ** 2).sum() / total) if total > 0 else 0.0
