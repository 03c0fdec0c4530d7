"""Importers: lm-eval v0.3 / v0.4 result folders and long CSV (hand-written fixtures), sizes from names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.results import curves, load_results
from harness.cli import main
from harness.errors import HarnessError
from harness.models.suite import parse_size


@pytest.mark.parametrize("name,size", [
    ("EleutherAI/pythia-1.4b", 1.4e9), ("facebook/opt-2.7b", 2.7e9), ("bigscience/bloom-1b1", 1.1e9),
    ("Qwen/Qwen1.5-0.5B", 0.5e9), ("70m", 7e7), ("pythia-160m-deduped", 1.6e8), ("meta-llama/Llama-2-7b-hf", 7e9),
    ("bloom-560m", 5.6e8), ("/ckpt/run3/toy-12k/", 1.2e4), ("gpt2", None), ("my-model", None)])
def test_size_from_model_name(name, size):
    assert parse_size(name) == (pytest.approx(size) if size else None)


V03 = {"results": {"arc_easy": {"acc": 0.43, "acc_stderr": 0.010, "acc_norm": 0.40, "acc_norm_stderr": 0.010},
                   "lambada_openai": {"ppl": 40.1, "ppl_stderr": 1.5, "acc": 0.33, "acc_stderr": 0.0066}},
       "versions": {"arc_easy": 0, "lambada_openai": 0},
       "config": {"model": "hf-causal", "model_args": "pretrained=EleutherAI/pythia-{size}", "batch_size": 16}}
V04 = {"results": {"arc_easy": {"alias": "arc_easy", "acc,none": 0.43, "acc_stderr,none": 0.010, "acc_norm,none": 0.40,
                                "acc_norm_stderr,none": "N/A"},
                   "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.02, "exact_match_stderr,strict-match": 0.004}},
       "n-samples": {"arc_easy": {"original": 2376, "effective": 2376}, "gsm8k": {"original": 1319, "effective": 1319}},
       "config": {"model": "hf", "model_args": "pretrained=/models/m{size},dtype=bfloat16",
                  "model_num_parameters": 0}, "model_name": "/models/m{size}"}


def write_lm_eval(root: Path, layout: dict, sizes: dict[str, float], accs: list[float]) -> Path:
    for (name, params), acc in zip(sizes.items(), accs):
        data = json.loads(json.dumps(layout).replace("{size}", name))
        key = "acc" if "acc" in data["results"]["arc_easy"] else "acc,none"
        data["results"]["arc_easy"][key] = acc
        if params:
            data["config"]["model_num_parameters"] = params
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "results_2024-05-01T10-00-00.json").write_text(json.dumps(data))
    return root


def test_lm_eval_v03(tmp_path):
    root = write_lm_eval(tmp_path / "v03", V03, {"70m": 0, "160m": 0, "410m": 0, "1b": 0}, [0.38, 0.43, 0.52, 0.57])
    res = load_results(root)
    assert res.format == "lm-eval"
    arc = res.scores[(res.scores.task == "arc_easy") & (res.scores.metric == "acc")].sort_values("params")
    assert arc["params"].tolist() == [7e7, 1.6e8, 4.1e8, 1e9]
    assert arc["value"].tolist() == [0.38, 0.43, 0.52, 0.57] and arc["stderr"].tolist() == [0.01] * 4
    assert arc["chance"].tolist() == [0.25] * 4 and arc["kind"].iloc[0] == "discontinuous"
    ppl = res.scores[res.scores.metric == "ppl"]
    assert not ppl["higher_is_better"].any() and ppl["chance"].isna().all()
    assert {c.metric for c in curves(res)} == {"acc", "acc_norm", "ppl"}


def test_lm_eval_v04_with_samples(tmp_path):
    sizes = {"a": 1.2e7, "b": 4.4e7, "c": 1.5e8, "d": 5.0e8, "e": 2.0e9}
    root = write_lm_eval(tmp_path / "v04", V04, sizes, [0.3, 0.35, 0.4, 0.5, 0.6])
    for name in sizes:  # --log_samples output beside the results file
        rows = [{"doc_id": i, "filter": "none", "acc": float(i % 3 == 0), "acc_norm": 0.0} for i in range(30)]
        (root / name / "samples_arc_easy_2024-05-01T10-00-00.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = load_results(root)
    df = res.scores
    arc = df[(df.task == "arc_easy") & (df.metric == "acc")].sort_values("params")
    assert arc["params"].tolist() == list(sizes.values()) and arc["n"].tolist() == [2376] * 5
    assert df[(df.metric == "acc_norm")]["stderr"].isna().all()  # "N/A"
    gsm = df[df.task == "gsm8k"]
    assert gsm["metric"].tolist()[0] == "exact_match,strict-match" and gsm["chance"].tolist()[0] == 0.0
    (arc_curve,) = [c for c in curves(res, metrics=["acc"]) if c.task == "arc_easy"]
    assert arc_curve.items.shape == (5, 30)
    assert res.items("/models/ma", "arc_easy", "acc")[(3, None)] == 1.0  # (doc_id, doc_hash)


def test_csv_and_size_mapping(tmp_path, capsys):
    path = tmp_path / "scores.csv"
    lines = ["model,params,task,metric,value,stderr,n,chance"]
    for name, params, v in [("s1", 1e6, 0.5), ("s2", 1e7, 0.5), ("s3", 1e8, 0.51), ("custom", "", 0.5)]:
        lines.append(f"{name},{params},boolq,acc,{v},0.01,3270,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HarnessError, match="no params for model\\(s\\) \\['custom'\\].*--size"):
        load_results(path)
    res = load_results(path, sizes={"custom": 1e9})
    assert sorted(res.scores["params"]) == [1e6, 1e7, 1e8, 1e9]
    assert main(["classify", str(path), "--size", "custom=1e9", "--chance", "boolq=0.622", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["label"] == "flat" and row["diagnostics"]["chance"] == 0.622 and row["diagnostics"]["few_points"]
    assert set(row) >= {"task", "metric", "label", "confidence"}
    assert main(["classify", str(path), "--size", "custom=1e9", "--json"]) == 0  # BoolQ's majority class, shipped
    assert json.loads(capsys.readouterr().out)[0]["diagnostics"]["chance"] == 0.622


@pytest.mark.parametrize("content,message", [
    ("model,task,value\na,t,0.5\n", "missing column(s) ['metric']"),
    ("model,params,task,metric,value\na,1e6,t,acc,high\n", "row 2: column 'value' is not a number: 'high'"),
    ("model,params,task,metric,value\na,1e6,t,acc,0.5\nb,lots,t,acc,0.6\n", "row 3: column 'params' is not a number"),
])
def test_bad_csv_is_one_line_error(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["classify", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and message in err


def test_bad_inputs_to_classify(tmp_path, capsys):
    assert main(["classify", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    assert main(["classify", str(tmp_path / "broken")]) == 2
    assert "results.json: not valid JSON" in capsys.readouterr().err
    path = tmp_path / "s.csv"
    path.write_text("model,params,task,metric,value\na,1e6,t,acc,0.5\n")
    assert main(["classify", str(path), "--chance", "t"]) == 2
    assert "--chance: expected NAME=NUMBER" in capsys.readouterr().err
    assert main(["classify", str(path)]) == 2
    assert "no curve with at least 3 model sizes" in capsys.readouterr().err


def test_families_in_one_csv_are_classified_as_each_family_alone(tmp_path):
    """The published curves of 13 families in one CSV (a ``family`` column): a curve per family and task, never
    pooled, each with the label and confidence it gets from that family's rows given alone."""
    import pandas as pd

    from harness.analysis import classify_results

    published = Path(__file__).parent / "scaling" / "data" / "published_curves_dev.csv"
    together = {(c.task, c.metric): (c.label, c.confidence)
                for c in classify_results(load_results(published)).classifications}
    table = pd.read_csv(published)
    assert len(together) == table.groupby(["family", "task"]).ngroups  # nothing pooled, nothing lost
    for family, rows in table.groupby("family"):
        alone = tmp_path / "alone.csv"
        rows.drop(columns="family").to_csv(alone, index=False)
        for c in classify_results(load_results(alone)).classifications:
            assert together[(f"{c.task}@{family}", c.metric)] == (c.label, c.confidence), (family, c.task)


def test_two_families_are_not_pooled_into_one_curve(tmp_path):
    rows = ["family,model,params,task,metric,value,stderr,n"]
    for family, values in (("pythia", [0.30, 0.40, 0.50, 0.60]), ("opt", [0.25, 0.25, 0.26, 0.25])):
        rows += [f"{family},{family}-{i},{10 ** (7 + i)},arc_easy,acc,{v},0.01,1000" for i, v in enumerate(values)]
    path = tmp_path / "two.csv"
    path.write_text("\n".join(rows) + "\n")
    found = {c.task: c for c in curves(load_results(path))}
    assert set(found) == {"arc_easy@pythia", "arc_easy@opt"} and all(len(c.values) == 4 for c in found.values())


def test_flops_are_6nd_and_a_family_without_tokens_is_left_out_with_a_note(tmp_path):
    """FLOPs computed as 6·N·D where the rows give parameters and tokens but no FLOPs; a family that lacks tokens
    (GPT-2, Qwen2, RWKV in the published table) is left out of the FLOPs axis with a note, the others stay."""
    import pandas as pd

    published = pd.read_csv(Path(__file__).parent / "scaling" / "data" / "published_curves_dev.csv")
    path = tmp_path / "no_flops.csv"
    published.drop(columns="flops").to_csv(path, index=False)
    res = load_results(path, x="flops")
    stated = published.dropna(subset=["flops"]).set_index(["model", "task"])["flops"]
    got = res.scores.set_index(["model", "task"])["flops"]
    assert sorted(got.index) == sorted(stated.index)
    assert np.allclose(got.loc[stated.index], stated, rtol=1e-6)
    assert sorted(res.left_out) == ["GPT-2", "Qwen1.5", "Qwen2", "RWKV"]
    assert res.left_out["Qwen1.5"] == ("Qwen1.5: no FLOPs or training tokens for 1 of 8 model(s) (Qwen/Qwen1.5-110B); "
                                       "left out of the flops axis")
    one = tmp_path / "one.csv"
    published[published["family"] == "GPT-2"].drop(columns="family").to_csv(one, index=False)
    with pytest.raises(HarnessError, match="no flops for model"):  # one family: every model needs a value
        load_results(one, x="flops")
