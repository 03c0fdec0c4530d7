"""Two model families compared at matched x: each curve interpolated on log x, B − A tested against the pooled
standard errors, q-values over the table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis import load_classified
from harness.analysis.comparison import compare_families
from harness.errors import HarnessError


def _write(path, families):
    """``families``: name → (sizes, value of log10 size, stderr); no item counts, so the stderr is the noise."""
    rows = ["family,model,params,task,metric,value,stderr"]
    for name, (sizes, value, se) in families.items():
        rows += [f"{name},{name}-{s:g},{s},arc_easy,acc,{value(math.log10(s)):.6f},{se}" for s in sizes]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_curves_are_matched_on_log_x_and_tested_against_their_noise(tmp_path):
    line = lambda t: 0.1 * t - 0.5  # noqa: E731  (linear in log x: interpolation is exact)
    path = _write(tmp_path / "f.csv", {
        "a": ([1e8, 1e9, 1e10, 1e11], line, 0.005),
        "b": ([3e8, 3e9, 3e10, 3e11], lambda t: line(t) + (0.08 if t > 9.4 else 0.0), 0.005),
        "c": ([1e12, 1e13, 1e14], line, 0.005)})
    classified = load_classified(path, bootstrap=50)
    cmp = compare_families(classified, "a", "b")
    (c,) = cmp.contrasts
    assert [p.x for p in c.points] == [3e8, 1e9, 3e9, 1e10, 3e10, 1e11]  # either family's sizes in the common range
    a_at = [p.a for p in c.points]
    assert np.allclose(a_at, [line(math.log10(p.x)) for p in c.points], atol=1e-6)
    # b at 1e9 lies between its 3e8 and 3e9 sizes (0.52 of the way on log x), where b jumps by 0.08
    w = (9 - math.log10(3e8)) / (math.log10(3e9) - math.log10(3e8))
    assert c.points[1].delta == pytest.approx(w * 0.08, abs=1e-6)
    assert c.points[1].se == pytest.approx(math.sqrt(((1 - w) * 0.005) ** 2 + (w * 0.005) ** 2 + 0.005 ** 2))
    assert [p.q < 0.05 for p in c.points] == [False, True, True, True, True, True]
    assert c.verdict == "B better at 5 of 6 matched x (1e+09–1e+11)"
    far = compare_families(classified, "a", "c").contrasts[0]
    assert far.points == [] and far.verdict == "no x range in common"
    same = compare_families(load_classified(_write(tmp_path / "g.csv", {
        "a": ([1e8, 1e9, 1e10, 1e11], line, 0.02), "b": ([2e8, 2e9, 2e10], lambda t: line(t) + 0.01, 0.02)}),
        bootstrap=50), "a", "b").contrasts[0]
    assert same.verdict == "no difference beyond noise" and len(same.points) == 5


def test_a_family_not_in_the_results_is_named(tmp_path):
    path = _write(tmp_path / "f.csv", {"a": ([1e8, 1e9, 1e10], lambda t: t / 10, 0.01),
                                       "b": ([1e8, 1e9, 1e10], lambda t: t / 10, 0.01)})
    classified = load_classified(path, bootstrap=50)
    with pytest.raises(HarnessError, match=r"no family 'z' in the results \(have: a, b\)"):
        compare_families(classified, "a", "z")
    with pytest.raises(HarnessError, match="two different families"):
        compare_families(classified, "a", "a")
