"""classify / report / compare on a real run of three tiny models, and the report rendered in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from harness.analysis.comparison import SUITE, _paired
from harness.analysis.results import load_results
from harness.cli import main
from harness.testing import build_tiny_model, write_config


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ladder")
    return [build_tiny_model(root / f"w{h}", "llama", hidden=h, seed=h) for h in (16, 32, 48)]


def test_run_classify_report_compare(workdir, ladder, capsys):
    cfg = write_config(workdir, ladder, ["toy_mc", "toy_add"])
    assert main(["run", str(cfg)]) == 0
    printed = capsys.readouterr().out
    assert "scaling labels" in printed  # the run itself prints each curve's label
    run = workdir / "results" / "t"

    assert main(["classify", str(run), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["task"], r["metric"]) for r in rows} >= {("toy_mc", "acc"), ("toy_add", "exact_match")}
    acc = next(r for r in rows if (r["task"], r["metric"]) == ("toy_mc", "acc"))
    assert acc["diagnostics"]["noise"].startswith("items") and acc["diagnostics"]["few_points"]
    assert acc["label"] in ("flat", "smooth", "inverse", "not_correlated") and 0 <= acc["confidence"] <= 1
    assert main(["classify", str(run), "--x", "nonembedding_params", "--metric", "brier"]) == 0
    assert "toy_mc" in capsys.readouterr().out

    out = workdir / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert not re.search(r"(src|href)=\"(https?:|//)", page)  # self-contained: opens offline
    uris = re.findall(r'src="(data:image/png;base64,[^"]+)"', page)
    assert len(set(uris)) == len(list((out / "figures").glob("*.png")))  # every figure embedded (pairs repeat some)
    assert "examples: the first documents" in page and "Question: What is" in page
    assert "discontinuous" in page and "continuous" in page

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed for the rendering check (.ci/run installs it)"
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", (out / "index.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    total, decoded = (int(re.search(rf'{a}="(\d+)"', body).group(1)) for a in ("data-images", "data-images-decoded"))
    assert total == decoded == page.count("data:image/png;base64,")

    # a variant of the same suite (fewer documents): paired per model and over the suite, labels compared
    assert main(["run", str(cfg), "--limit", "6", "--output", str(workdir / "results" / "v")]) == 0
    capsys.readouterr()
    assert main(["compare", str(run), str(workdir / "results" / "v"), "--per-model"]) == 0
    text = capsys.readouterr().out
    assert "McNemar" in text and "paired bootstrap" in text and SUITE.split()[0] in text
    changed = int(re.search(r"summary: \d+ task×metric curves in both; (\d+) label\(s\) changed", text).group(1))
    assert ("labels that changed" in text) == (changed > 0)
    res = load_results(run)
    assert res.items("w16", "toy_mc", "acc") is not None


def test_mcnemar_and_paired_bootstrap():
    import numpy as np

    rng = np.random.default_rng(0)
    a = {i: float(i % 2) for i in range(200)}
    b = {i: 1.0 if i < 150 else a[i] for i in range(200)}  # B fixes 75 of A's misses, breaks none
    mean_a, mean_b, delta, ci, p, test, n = _paired(a, b, rng)
    assert test == "McNemar (exact)" and n == 200 and delta == pytest.approx(75 / 200) and p < 1e-10
    assert (mean_a, mean_b) == (0.5, 0.875) and ci[0] < delta < ci[1]
    same = _paired(a, dict(a), rng)
    assert same[2] == 0 and same[4] == 1.0
    cont_a = {i: float(rng.normal()) for i in range(300)}
    cont_b = {i: v + 0.01 * rng.normal() for i, v in cont_a.items()}
    assert _paired(cont_a, cont_b, rng)[5] == "paired bootstrap" and _paired(cont_a, cont_b, rng)[4] > 0.01


def test_compare_two_suites_without_records(tmp_path, capsys):
    """Two families on the same tasks (no shared models, no per-example values): compared at matched x."""
    rows = "model,params,task,metric,value,stderr\n"
    a = tmp_path / "a.csv"
    a.write_text(rows + "".join(f"a{i},{10 ** (6 + i)},t,acc,{v},0.01\n" for i, v in enumerate([0.3, 0.4, 0.5, 0.6, 0.7])))
    b = tmp_path / "b.csv"
    b.write_text(rows + "".join(f"b{i},{10 ** (6 + i)},t,acc,{v},0.01\n" for i, v in enumerate([0.7, 0.6, 0.5, 0.4, 0.3])))
    assert main(["compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    text = " ".join(text.split())
    assert "A = a, B = b" in text and "smooth (" in text and "inverse (" in text and "1 with different labels" in text
    assert "crossing at 4 of 5 matched x (1e+06–1e+10)" in text
    assert main(["classify", str(a)]) == 0
    assert "acc: 1 task(s): smooth 1 (100%)" in capsys.readouterr().out


def test_report_shows_metric_artifact_pairs_side_by_side(tmp_path):
    from harness.analysis import load_classified
    from harness.report import build_report

    sizes = [1e3, 1e4, 1e5, 1e6, 1e7, 1e8]
    em = [0.0, 0.01, 0.0, 0.02, 0.8, 0.95]
    lp = [-3.0, -2.5, -2.0, -1.5, -1.0, -0.5]
    rows = ["model,params,task,metric,value,stderr,n,kind,higher_is_better,chance"]
    for i, x in enumerate(sizes):
        rows.append(f"m{i},{x},add,exact_match,{em[i]},0.01,300,discontinuous,True,0.0")
        rows.append(f"m{i},{x},add,target_logprob,{lp[i]},0.02,300,continuous,True,")
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    page = build_report(load_classified(tmp_path / "s.csv"), tmp_path / "r").read_text()
    section = page.split("Metric artifacts")[1].split("Curves per task")[0]
    assert "exact_match is emergent" in section and "target_logprob smooth" in section
    assert section.count("<figure>") == 2  # the discontinuous curve beside the continuous one


def test_report_draws_families_side_by_side_in_a_real_browser(tmp_path):
    """13 families of published curves: a figure per task × metric with a line per family (legend naming each
    with its label), the labels with a column per family, every image decoded by headless Chromium."""
    from pathlib import Path

    import pandas as pd

    data = Path(__file__).parents[1] / "analysis" / "scaling" / "data" / "published_curves_dev.csv"
    families = sorted(pd.read_csv(data)["family"].unique())
    assert len(families) >= 5
    out = tmp_path / "rep"
    assert main(["report", str(data), "--out", str(out), "--task", "mmlu", "--task", "arc_challenge"]) == 0
    page = (out / "index.html").read_text()
    assert "Families side by side" in page and f"{len(families)} families; a curve per family" in page
    header = re.search(r'<table class="families">\s*<tr>(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r"<th>(.*?)</th>", header)[2:] == families
    assert sorted(p.name for p in (out / "figures").glob("*__families.png")) == [
        "arc_challenge__score__families.png", "mmlu__score__families.png"]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed for the rendering check (.ci/run installs it)"
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                    "--window-size=1400,2400", f"--screenshot={shot}", (out / "index.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", (out / "index.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    total, decoded = (int(re.search(rf'{a}="(\d+)"', body).group(1)) for a in ("data-images", "data-images-decoded"))
    assert total == decoded == page.count("data:image/png;base64,")
    assert len(re.findall(r'<figure class="family"><img src="data:image/png', dom)) == 2


def test_report_on_a_flops_axis_notes_the_families_without_tokens(tmp_path):
    from pathlib import Path

    data = Path(__file__).parents[1] / "analysis" / "scaling" / "data" / "published_curves_dev.csv"
    out = tmp_path / "rep"
    assert main(["report", str(data), "--out", str(out), "--task", "mmlu", "--x", "flops", "--bootstrap", "50"]) == 0
    page = (out / "index.html").read_text()
    assert "10 families; a curve per family" in page  # 13 less GPT-2, Qwen2 and RWKV (no tokens)
    for family in ("GPT-2", "Qwen2", "RWKV"):
        assert f'<p class="note">Note: {family}: no FLOPs or training tokens' in page
    assert "Note: Qwen1.5: no FLOPs or training tokens for 1 of 8 model(s)" in page
    assert (out / "figures" / "mmlu__score__families.png").is_file()
