"""Synthetic scaling curves of known shape with binomial item noise, for the classifier tests."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from harness.analysis.scaling import Curve


def shape(label: str, u: np.ndarray, chance: float, rng: np.random.Generator) -> np.ndarray:
    """Accuracy at positions u in [0, 1] along log-size for a curve of the given category (clear cases)."""
    lo, hi = chance + rng.uniform(0.0, 0.03), rng.uniform(0.75, 0.95)
    if label == "smooth":
        return lo + (hi - lo) * u
    if label == "inverse":
        return hi - (hi - lo) * u
    if label == "flat":
        return np.full_like(u, rng.uniform(chance, 0.9))
    if label == "emergent":
        brk = rng.uniform(0.45, 0.75)
        return np.where(u <= brk, lo, lo + (hi - lo) * np.clip((u - brk) / (1 - brk), 0, 1) ** rng.uniform(0.5, 1.0))
    if label == "u_shaped":
        mid = rng.uniform(0.35, 0.65)
        return hi - (hi - lo) * (1 - np.abs(u - mid) / np.maximum(mid, 1 - mid))
    if label == "inverted_u":
        mid = rng.uniform(0.35, 0.65)
        return lo + (hi - lo) * (1 - np.abs(u - mid) / np.maximum(mid, 1 - mid))
    if label == "not_correlated":
        return np.where(np.arange(len(u)) % 2 == 0, lo, hi)
    raise ValueError(label)


def sample(p: np.ndarray, n_items: int, rng: np.random.Generator, item_corr: float = 0.5) -> np.ndarray:
    """Models × items 0/1 outcomes with marginal accuracy p per model; items share a difficulty (paired)."""
    difficulty = rng.standard_normal(n_items)
    z = item_corr * difficulty[None, :] + np.sqrt(1 - item_corr ** 2) * rng.standard_normal((len(p), n_items))
    return (norm.cdf(z) < p[:, None]).astype(float)


def curve(label: str, k: int, n_items: int, rng: np.random.Generator, chance: float = 0.25, replicates: int = 1,
          probs: np.ndarray | None = None) -> Curve:
    """A curve of ``k`` sizes (×replicates models) drawn from ``label``'s shape, with per-item outcomes."""
    u = np.linspace(0, 1, k)
    p = np.clip(shape(label, u, chance, rng) if probs is None else probs, 0.001, 0.999)
    x = np.logspace(7, 10, k)
    xs, ps, models = np.repeat(x, replicates), np.repeat(p, replicates), []
    for i in range(k * replicates):
        models.append(f"m{i}")
    items = sample(ps, n_items, rng)
    return Curve(task=f"synthetic_{label}", metric="acc", models=models, x=xs.tolist(), values=items.mean(axis=1).tolist(),
                 chance=chance, ceiling=1.0, floor=0.0, kind="discontinuous", items=items)
