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
