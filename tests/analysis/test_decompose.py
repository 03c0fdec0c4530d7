"""Steps, slices and the forecast: ``harness decompose`` and ``harness forecast``."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from harness.analysis.decompose import decompose
from harness.analysis.forecast import forecasts
from harness.analysis.results import Results, load_results
from harness.cli import main
from harness.errors import HarnessError

TASK = """name: add_steps
dataset:
  generator: arithmetic
  args: {op: "+", digits: 2, pad: true, n: 24, seed: 3}
prompt: "{{a}}+{{b}}="
target: "{{answer}}"
target_delimiter: ""
output: generate
generation: {until: ["\\n"], max_new_tokens: 4}
slices:
  carry: "{{ 'yes' if (a|int) % 10 + (b|int) % 10 >= 10 else 'no' }}"
metrics: [exact_match, token_accuracy]
"""


@pytest.fixture(scope="module")
def stepped_run(tmp_path_factory, tiny_models):
    """Three tiny models of different sizes on a small addition task with a slice."""
    from harness.testing import write_config

    root = tmp_path_factory.mktemp("steps")
    (root / "tasks").mkdir()
    (root / "tasks" / "add_steps.yaml").write_text(TASK)
    cfg = write_config(root, list(tiny_models.values()), ["tasks/add_steps.yaml"])
    import os

    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["run", str(cfg)]) == 0
    finally:
        os.chdir(cwd)
    return root / "results" / "t"


def test_steps_are_the_teacher_forced_tokens_and_slices_reach_the_records(stepped_run):
    res = load_results(stepped_run)
    model = sorted(set(res.scores["model"]))[0]
    records = res.records(model, "add_steps")
    for r in records:
        assert r["is_greedy"] == all(r["token_greedy"]) and len(r["token_greedy"]) == r["target_tokens"]
        assert r["metrics"]["token_accuracy"] == pytest.approx(np.mean(r["token_greedy"]))
        a, b = r["prompt"].rstrip("=").split("+")
        assert r["slices"] == {"carry": "yes" if int(a) % 10 + int(b) % 10 >= 10 else "no"}


def test_decomposition_numbers_follow_from_the_records(stepped_run):
    res = load_results(stepped_run)
    d = decompose(res, "add_steps")
    assert d.metric == "exact_match" and len(d.rows) == 3 and d.rows == sorted(d.rows, key=lambda r: r.x)
    for row in d.rows:
        (model,) = row.models
        recs = [r for r in res.records(model, "add_steps") if len(r["token_greedy"]) == d.length]
        assert row.all.n == len(recs)
        assert row.all.composite == pytest.approx(np.mean([r["metrics"]["exact_match"] for r in recs]))
        assert row.all.steps == pytest.approx(np.array([r["token_greedy"] for r in recs], float).mean(0).tolist())
        assert row.all.product == pytest.approx(math.prod(row.all.steps))
        assert row.all.joint <= min(row.all.steps) + 1e-12
        assert sum(p.n for p in row.slices["carry"].values()) == row.all.n


def test_decompose_and_forecast_commands(stepped_run, capsys):
    assert main(["decompose", str(stepped_run), "--task", "add_steps"]) == 0
    text = capsys.readouterr().out
    assert "product" in text and "slice 'carry'" in text
    assert main(["decompose", str(stepped_run), "--task", "add_steps", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["steps"] >= 1 and set(data["sizes"][0]["slices"]["carry"]) <= {"yes", "no"}
    # tiny random models never cross 0.5: the forecast says the composite is not crossed
    assert main(["forecast", str(stepped_run), "--task", "add_steps", "--json", "--bootstrap", "20"]) == 0
    (pooled,) = json.loads(capsys.readouterr().out)
    assert pooled["observed"] is None and pooled["which"] == "pooled"


@pytest.mark.parametrize("argv,fragment", [
    (["decompose", "{run}", "--task", "nope"], "no task 'nope'"),
    (["forecast", "{run}", "--task", "add_steps", "--metric", "acc"], "no 'acc' scores"),
])
def test_decompose_errors_are_one_line(stepped_run, capsys, argv, fragment):
    assert main([a.format(run=stepped_run) for a in argv]) != 0
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


# ---------------------------------------------------------------- the forecast on constructed curves


class _Store:
    """Just enough of a run store for ``Results.records``."""

    def __init__(self, records: dict[str, list[dict]]):
        self._records = records

    def summary(self, model: str, task: str) -> bool:
        return True

    def records(self, model: str, task: str) -> list[dict]:
        return self._records[model]


def constructed(a: float, b: float, sizes: list[float], length: int = 3, n: int = 4000, seed: int = 0) -> Results:
    """Models whose per-step accuracy is logistic in log10 size (logit p = a + b·log10 x), steps independent;
    exact match is then all steps right."""
    rng = np.random.default_rng(seed)
    rows, records = [], {}
    for i, x in enumerate(sizes):
        p = 1 / (1 + math.exp(-(a + b * math.log10(x))))
        steps = rng.random((n, length)) < p
        name = f"m{i}"
        records[name] = [{"doc_id": d, "token_greedy": s.tolist(), "metrics": {"exact_match": float(s.all())}}
                         for d, s in enumerate(steps)]
        rows.append({"task": "t", "aggregate": "", "metric": "exact_match", "model": name, "params": x,
                     "value": float(steps.all(axis=1).mean()), "chance": 0.0})
    return Results(source=__import__("pathlib").Path("constructed"), format="harness", scores=pd.DataFrame(rows),
                   store=_Store(records))  # type: ignore[arg-type]


def test_forecast_recovers_a_known_crossing():
    a, b = -9.0, 2.0  # p = 0.5^(1/3) at log10 x = (logit(0.794) + 9) / 2
    truth = 10 ** ((math.log(0.5 ** (1 / 3) / (1 - 0.5 ** (1 / 3))) - a) / b)
    sizes = [10 ** e for e in (3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0)]
    (f,) = forecasts(constructed(a, b, sizes), "t", bootstrap=100)
    assert f.fit_sizes == [s for s in sizes if s < truth][: len(f.fit_sizes)] and len(f.fit_sizes) >= 2
    assert abs(math.log10(f.predicted) - math.log10(truth)) < 0.05
    assert f.interval[0] <= f.predicted <= f.interval[1]
    assert f.within_bracket is True and abs(f.error_log10) < 0.15


def test_forecast_says_when_the_partner_does_not_rise():
    sizes = [10 ** e for e in (3.0, 3.5, 4.0, 4.5, 5.0)]
    (f,) = forecasts(constructed(-1.0, 0.0, sizes), "t", bootstrap=50)
    assert f.observed is None and f.predicted is None


def test_forecast_needs_two_sizes_below_the_crossing():
    sizes = [10 ** e for e in (5.0, 5.5, 6.0)]
    with pytest.raises(HarnessError, match="fewer than 2 model sizes"):
        forecasts(constructed(-9.0, 2.0, sizes), "t", bootstrap=10)
