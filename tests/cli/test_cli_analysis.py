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
