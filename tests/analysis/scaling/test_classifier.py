"""The classifier on synthetic curves of known shape with binomial item noise (100-5000 items, 4-10 sizes)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from synthetic import curve

from harness.analysis.scaling import Curve, Rules, classify, metric_artifacts
from harness.errors import HarnessError

RULES = Rules(bootstrap=200)
CATEGORIES = ("smooth", "inverse", "flat", "emergent", "u_shaped", "inverted_u", "not_correlated")


@pytest.mark.parametrize("label", CATEGORIES)
def test_clear_cases_recover_their_category(label):
    rng = np.random.default_rng(CATEGORIES.index(label))
    got = []
    for _ in range(24):
        k = int(rng.integers(5, 11))
        n = int(rng.choice([100, 300, 1000, 5000]))
        got.append(classify(curve(label, k, n, rng), RULES))
    hits = [g.label == label for g in got]
    assert sum(hits) / len(hits) >= 0.95, [(g.label, g.confidence) for g in got]
    assert np.mean([g.confidence for g, h in zip(got, hits) if h]) >= 0.8


@pytest.mark.parametrize("label", ["smooth", "inverse", "flat"])
def test_four_sizes_get_coarse_labels_and_a_flag(label):
    rng = np.random.default_rng(7)
    got = [classify(curve(label, 4, int(rng.choice([300, 1000, 5000])), rng), RULES) for _ in range(12)]
    assert sum(g.label == label for g in got) / len(got) >= 0.9
    assert all(g.diagnostics.few_points and "only 4 sizes" in g.notes[0] for g in got)


def test_few_points_are_not_guessed_emergent():
    rng = np.random.default_rng(3)
    res = classify(curve("emergent", 4, 5000, rng, probs=np.array([0.25, 0.25, 0.26, 0.9])), RULES)
    assert res.label != "emergent" and res.diagnostics.few_points
    with pytest.raises(HarnessError, match="at least 3 model sizes"):
        classify(Curve("t", "acc", ["a", "b"], [1e6, 1e7], [0.2, 0.8]))


def test_ambiguous_cases_get_low_confidence():
    rng = np.random.default_rng(11)
    # a trend of about two standard errors in total, and a curve bent halfway between a line and a break
    weak = [classify(curve("smooth", 6, 1000, rng, probs=np.linspace(0.5, 0.545, 6)), RULES) for _ in range(12)]
    bent = [classify(curve("smooth", 7, 300, rng, probs=0.25 + 0.5 * np.linspace(0, 1, 7) ** 2.2), RULES)
            for _ in range(12)]
    for group in (weak, bent):
        assert np.mean([g.confidence for g in group]) < 0.8
    clear = [classify(curve("smooth", 6, 1000, rng), RULES) for _ in range(6)]
    assert min(g.confidence for g in clear) > max(np.mean([g.confidence for g in weak]),
                                                   np.mean([g.confidence for g in bent]))


def test_label_does_not_depend_on_model_order():
    rng = np.random.default_rng(2)
    for label in ("emergent", "u_shaped", "smooth"):
        c = curve(label, 6, 500, rng, replicates=2)
        first = classify(c, RULES)
        order = list(range(len(c.models)))
        random.Random(label).shuffle(order)
        shuffled = Curve(**{**vars(c), "models": [c.models[i] for i in order], "x": [c.x[i] for i in order],
                            "values": [c.values[i] for i in order], "items": c.items[order]})
        second = classify(shuffled, RULES)
        assert (second.label, second.confidence, second.diagnostics) == (first.label, first.confidence, first.diagnostics)


def test_one_unlucky_seed_does_not_make_a_curve_inverse_or_emergent():
    rng = np.random.default_rng(4)
    p = np.repeat(np.linspace(0.3, 0.8, 6), 3)
    p[-1] = 0.3  # the largest size's third seed did not learn
    c = curve("smooth", 6, 1000, rng, replicates=3, probs=np.linspace(0.3, 0.8, 6))
    c.items = (rng.random((18, 1000)) < p[:, None]).astype(float)
    c.values = c.items.mean(axis=1).tolist()
    pooled = classify(c, RULES)
    assert pooled.label == "smooth" and pooled.diagnostics.replicates == 3
    # the same unlucky model alone at its size would bend the curve down at the end
    keep = [i for i in range(18) if i % 3 == 0 or i == 17]
    alone = Curve(**{**vars(c), "models": [c.models[i] for i in keep], "x": [c.x[i] for i in keep],
                     "values": [c.values[i] for i in keep], "items": c.items[keep]})
    assert classify(alone, RULES).label in ("inverted_u", "not_correlated")


def test_significant_change_below_the_minimum_effect_is_flat():
    x = np.logspace(6, 10, 6)
    tiny = Curve("t", "acc", list("abcdef"), x, 0.5 + np.linspace(0, 0.012, 6), stderr=[0.0005] * 6,
                 chance=0.25, ceiling=1.0, floor=0.0, kind="discontinuous")
    assert classify(tiny, RULES).label == "flat"
    assert classify(Curve(**{**vars(tiny), "values": 0.5 + np.linspace(0, 0.1, 6)}), RULES).label == "smooth"


def test_chance_below_start_and_saturation_are_noted():
    x = np.logspace(6, 10, 6)
    below = classify(Curve("t", "acc", list("abcdef"), x, [0.10, 0.12, 0.11, 0.13, 0.6, 0.85], stderr=[0.01] * 6,
                           chance=0.25, ceiling=1.0, floor=0.0, kind="discontinuous"), RULES)
    assert below.label == "emergent" and "below chance" in " ".join(below.notes)
    assert below.diagnostics.break_between == (x[3], x[4])
    saturated = classify(Curve("t", "acc", list("abcdef"), x, [0.99, 0.995, 0.99, 1.0, 0.995, 1.0], stderr=[0.005] * 6,
                               chance=0.5, ceiling=1.0, floor=0.0, kind="discontinuous"), RULES)
    assert saturated.label == "flat" and "saturated" in " ".join(saturated.notes)
    unknown = classify(Curve("t", "exact_match", list("abcdef"), x, [0.0, 0.01, 0.0, 0.01, 0.4, 0.8],
                             stderr=[0.01] * 6, kind="discontinuous"), RULES)
    assert unknown.label == "emergent" and "chance level unknown" in " ".join(unknown.notes)


def test_lower_is_better_metrics_are_oriented():
    x = np.logspace(6, 10, 6)
    brier = Curve("t", "brier", list("abcdef"), x, np.linspace(0.7, 0.2, 6), stderr=[0.01] * 6, ceiling=0.0,
                  floor=2.0, higher_is_better=False, kind="continuous")
    res = classify(brier, RULES)
    assert res.label == "smooth" and res.diagnostics.slope_per_decade < 0


def test_metric_artifact_is_reported():
    x = np.logspace(6, 10, 6)
    em = classify(Curve("t", "exact_match", list("abcdef"), x, [0.0, 0.0, 0.01, 0.0, 0.3, 0.9], stderr=[0.01] * 6,
                        chance=0.0, ceiling=1.0, floor=0.0, kind="discontinuous"), RULES)
    lp = classify(Curve("t", "target_logprob", list("abcdef"), x, [-6, -5, -4, -3, -2, -1], stderr=[0.05] * 6,
                        ceiling=0.0, kind="continuous"), RULES)
    (artifact,) = metric_artifacts([em, lp])
    assert em.label == "emergent" and lp.label == "smooth"
    assert "emergent under exact_match but smooth under target_logprob" in artifact.message


def test_big_bench_linearity_and_breakthroughness():
    x = np.logspace(6, 10, 5)
    steady = classify(Curve("t", "acc", list("abcde"), x, [0.2, 0.4, 0.6, 0.8, 1.0], stderr=[0.01] * 5, ceiling=1.0,
                            floor=0.0, kind="discontinuous"), RULES).diagnostics
    jump = classify(Curve("t", "acc", list("abcde"), x, [0.2, 0.2, 0.2, 0.2, 1.0], stderr=[0.01] * 5, ceiling=1.0,
                          floor=0.0, kind="discontinuous"), RULES).diagnostics
    assert steady.linearity == pytest.approx(1.0) and jump.linearity == pytest.approx(0.5)
    assert steady.breakthroughness == pytest.approx(0.2) and jump.breakthroughness == pytest.approx(0.8)


def test_saturated_describes_the_pooled_curve_not_one_replicate():
    x = [1e3] * 3 + [1e4] * 3 + [1e5] * 3 + [1e6] * 3 + [1e7] * 3
    values = [0.0, 0.01, 0.0, 0.2, 0.25, 0.3, 0.5, 0.55, 0.5, 0.7, 0.8, 0.75, 0.99, 0.5, 0.76]  # top mean 0.75
    c = classify(Curve("t", "exact_match", [f"m{i}" for i in range(15)], x, values, n=[300] * 15, chance=0.0,
                       ceiling=1.0, floor=0.0, kind="discontinuous"))
    assert not any("saturated" in n for n in c.notes), c.notes
    top = values[:12] + [0.995, 1.0, 0.99]
    c = classify(Curve("t", "exact_match", [f"m{i}" for i in range(15)], x, top, n=[300] * 15, chance=0.0,
                       ceiling=1.0, floor=0.0, kind="discontinuous"))
    assert "saturated: the largest size's mean is at the ceiling" in c.notes
