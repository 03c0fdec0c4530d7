"""``harness classify`` on a long CSV: labels, the share per category, and the metric-artifact line."""

from __future__ import annotations

from harness.cli import main


def test_classify_flags_an_emergent_accuracy_beside_a_smooth_log_prob(tmp_path, capsys):
    rows = ["model,params,task,metric,value,stderr,n,kind,higher_is_better,chance"]
    for i, x in enumerate([1e3, 1e4, 1e5, 1e6, 1e7, 1e8]):
        rows.append(f"m{i},{x},add[red],exact_match,{[0.0, 0.01, 0.0, 0.02, 0.8, 0.95][i]},0.01,300,discontinuous,True,0")
        rows.append(f"m{i},{x},add[red],target_logprob,{-3.0 + 0.5 * i},0.02,300,continuous,True,")
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    assert main(["classify", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "metric artifact? add[red]: emergent under exact_match but smooth under target_logprob" in out
    assert "exact_match: 1 task(s): emergent 1 (100%)" in out


def test_tables_fold_names_instead_of_cutting_them_to_the_same_text():
    from rich.table import Table

    from harness.cli.console import _Console

    console = _Console(record=True, width=40, highlight=False)
    table = Table()
    for col in ("task", "metric", "label", "confidence"):
        table.add_column(col)
    for task in ("toy_add_carry_over_the_tens", "toy_add_choice_among_near_misses"):
        table.add_row(task, "exact_match", "emergent", "0.95")
    console.print(table)
    shown = console.export_text()
    first_column = "".join(line.split("│")[1].strip() for line in shown.splitlines() if line.startswith("│"))
    assert "…" not in shown and first_column == "toy_add_carry_over_the_tenstoy_add_choice_among_near_misses"


def test_every_metric_disagreement_gets_a_verdict():
    from harness.analysis import metric_artifacts
    from harness.analysis.scaling import Classification

    def c(metric, kind, label):
        return Classification("t", metric, label, 0.9, kind, {}, {}, [], "")

    pairs = [("smooth", "emergent"), ("emergent", "smooth"), ("emergent", "flat"), ("inverse", "smooth")]
    messages = [metric_artifacts([c("acc", "discontinuous", d), c("brier", "continuous", k)])[0].message for d, k in pairs]
    assert "not a metric artifact" in messages[0] and "likely an artifact" in messages[1]
    assert "looks real" in messages[2] and "no verdict" in messages[3]


def _lm_eval_folder(root, name, sizes, values):
    import json

    for size, value in zip(sizes, values):
        folder = root / name / size
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps({
            "results": {"arc_easy": {"acc,none": value, "acc_stderr,none": 0.01}},
            "config": {"model_args": f"pretrained=/m/{name}-{size}"}}))
    return root / name


def test_two_lm_eval_folders_given_together_are_two_families(tmp_path, capsys):
    import json

    pythia = _lm_eval_folder(tmp_path, "pythia", ["70m", "160m", "410m", "1b"], [0.40, 0.45, 0.52, 0.58])
    opt = _lm_eval_folder(tmp_path, "opt", ["125m", "350m", "1.3b", "2.7b"], [0.25, 0.25, 0.26, 0.25])
    assert main(["classify", str(pythia), str(opt), "--family", f"OPT={opt}", "--json"]) == 0
    found = {(r["task"], r["family"]): r["label"] for r in json.loads(capsys.readouterr().out)}
    assert found[("arc_easy@pythia", "pythia")] == "smooth" and found[("arc_easy@OPT", "OPT")] == "flat"
    assert main(["classify", str(pythia), str(opt), "--by", "family"]) == 0
    printed = capsys.readouterr().out
    assert "acc: label (confidence) per family" in printed and "scaling categories by family" in printed
    assert "arc_easy / acc: " in printed and "of 2 families" in " ".join(printed.split())
    assert main(["classify", str(pythia), "--family", f"x={tmp_path / 'elsewhere'}"]) == 2
    assert "--family: x=" in capsys.readouterr().err


def test_compare_two_families_at_matched_x(tmp_path, capsys):
    """Two lm-eval folders without a model in common are two families: compared at matched x, not paired."""
    pythia = _lm_eval_folder(tmp_path, "pythia", ["70m", "160m", "410m", "1b"], [0.40, 0.45, 0.52, 0.58])
    opt = _lm_eval_folder(tmp_path, "opt", ["125m", "350m", "1.3b", "2.7b"], [0.25, 0.25, 0.26, 0.25])
    assert main(["compare", str(pythia), str(opt), "--bootstrap", "50"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "A = pythia, B = opt" in printed and "A better at 5 of 5 matched x (1.25e+08–1e+09)" in printed
    assert "1 task×metric curves in both families; 1 with different labels; 1 differ beyond noise" in printed
    assert main(["compare", str(pythia), str(opt), "--families", "opt", "pythia", "--bootstrap", "50"]) == 0
    assert "B better at 5 of 5 matched x" in " ".join(capsys.readouterr().out.split())
    assert main(["compare", str(pythia), str(opt), str(pythia), "--bootstrap", "50"]) == 2
    assert "3 results given: compare takes two" in capsys.readouterr().err
    assert main(["compare", str(pythia), str(opt), "--families", "opt", "gpt", "--bootstrap", "50"]) == 2
    assert "--families: no family 'gpt' in the results (have: opt, pythia)" in capsys.readouterr().err
