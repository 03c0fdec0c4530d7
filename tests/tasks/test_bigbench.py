"""BIG-bench JSON tasks: formatting and metrics equal to what BIG-bench's own functions give (recorded in
``bigbench_reference_outputs.json``, with a note of how) on synthetic task.json files that exercise every
formatting field; fetching from an archive laid out like the sdist; names, groups and bad input. The canary here
is a placeholder: BIG-bench's is never committed."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.tasks import resolve_tasks
from harness.tasks.prepared import prepare
from harness.tasks.sources import bigbench as bb
from harness.tasks.sources import bigbench_fetch as fetcher

EXPECTED = json.loads((Path(__file__).parent / "bigbench_reference_outputs.json").read_text())
CANARY = "PLACEHOLDER CANARY (tests only; BIG-bench's own is read from the user's cache)"
MC = {"canary": CANARY, "name": "mc_task", "description": "d", "keywords": ["logical reasoning"],
      "metrics": ["multiple_choice_grade"], "preferred_score": "multiple_choice_grade",
      "examples": [{"input": f"Which is bigger, {a} or {b}?", "target_scores": {str(a): int(a > b), str(b): int(b > a),
                                                                               "equal": 0}}
                   for a, b in [(1, 2), (5, 3), (7, 9), (4, 0), (6, 8), (2, 7)]]}
MC["examples"].append(copy.deepcopy(MC["examples"][0]))  # a duplicate: dropped
MC["examples"].append({"input": "Partly right?", "target_scores": {"yes": 0.5, "no": 0.0, "maybe": 0.5}})
GEN = {"canary": CANARY, "name": "gen_task", "description": "d", "keywords": ["mathematics"],
       "metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "example_input_prefix": "",
       "example_output_prefix": " ", "few_shot_example_separator": "\n\n", "task_prefix": "Add.\n",
       "examples": [{"input": f"{a} + {b} =", "target": [str(a + b), f"{a + b}.0"] if a == 3 else str(a + b)}
                    for a, b in [(1, 2), (3, 4), (10, 7), (22, 5), (9, 9)]]}
VARIANTS = {
    "mc defaults": MC,
    "mc custom prefixes": {**MC, "example_input_prefix": "\nQuestion: ", "example_output_prefix": "\nAnswer: ",
                           "choice_prefix": "\n - ", "few_shot_example_separator": "\n\n###\n\n", "task_prefix": "T:"},
    "mc choices not appended": {**MC, "append_choices_to_input": False},
    "generative, several targets": GEN,
}


@pytest.mark.parametrize("shots", [0, 1, 2, 3])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_formatting_equals_bigbench(variant, shots):
    data = VARIANTS[variant]
    mine = [[d["input"], d.get("choices"), d["targets"]] for d in bb.format_examples(copy.deepcopy(data), shots)]
    assert mine == EXPECTED["formatting"][variant][str(shots)]


def test_golden_zero_shot_prompt():
    (first, *_) = bb.format_examples(copy.deepcopy(MC), 0)
    # choices appended in BIG-bench's seeded order of the sorted choices; scored in the file's order
    assert first["input"] == "\nQ: Which is bigger, 1 or 2?\n  choice: 1\n  choice: 2\n  choice: equal\nA: "
    assert first["choices"] == ["1", "2", "equal"] and first["target_scores"] == [0.0, 1.0, 0.0] and first["gold"] == 1
    docs = bb.format_examples(copy.deepcopy(MC), 0)
    assert len(docs) == 7 and docs[-1]["target_scores"] == [0.5, 0.0, 0.5]  # duplicate dropped, fractional kept


def write_tasks(root: Path) -> Path:
    """A benchmark_tasks folder: two plain tasks, one with subtasks, one programmatic (no task.json)."""
    for data in (MC, GEN):
        (root / data["name"]).mkdir(parents=True)
        (root / data["name"] / "task.json").write_text(json.dumps(data))
    parent = root / "composite"
    parent.mkdir()
    (parent / "task.json").write_text(json.dumps({k: MC[k] for k in ("canary", "description", "keywords")}
                                                 | {"name": "composite"}))
    for name, data in (("sub_b", GEN), ("sub_a", MC)):
        (parent / name).mkdir()
        (parent / name / "task.json").write_text(json.dumps({**data, "name": name}))
    (root / "programmatic").mkdir()
    (root / "programmatic" / "task.py").write_text("raise SystemExit('never imported')\n")
    return root


def test_names_groups_and_a_run_on_a_tiny_model(workdir, tiny_llama, monkeypatch, capsys):
    from harness.testing import write_config

    monkeypatch.setenv("BIGBENCH_ROOT", str(write_tasks(workdir / "bb")))
    tasks = resolve_tasks(["bigbench:composite", "bigbench:mc_task", "bigbench:gen_*"], workdir)
    assert [(t.name, t.group) for t in tasks] == [("bigbench.composite.sub_a", "bigbench.composite"),
                                                  ("bigbench.composite.sub_b", "bigbench.composite"),
                                                  ("bigbench.mc_task", None), ("bigbench.gen_task", None)]
    p = prepare(tasks[2])
    assert p.instances[0].context == bb.format_examples(copy.deepcopy(MC))[0]["input"] and p.instances[0].delimiter == ""
    assert [len(i.choices or ()) for i in p.instances] == [3] * 7
    cfg = write_config(workdir, [tiny_llama], ["bigbench:mc_task", "bigbench:gen_task"])
    assert main(["run", str(cfg)]) == 0
    assert {json.loads(line)["prompt"].startswith("Add.\n") for line in
            (workdir / "results" / "t" / "models" / "llama" / "bigbench.gen_task.jsonl").read_text().splitlines()} == {True}
    capsys.readouterr()
    assert main(["tasks", "list", "--source", "bigbench"]) == 0
    listing = capsys.readouterr().out
    assert "composite" in listing and "programmatic" not in listing and "logical reasoning" in listing
    read_task = bb.read_task
    monkeypatch.setattr(bb, "read_task", lambda path: pytest.fail(f"read {path}"))  # the index is cached:
    assert main(["tasks", "list", "--source", "bigbench"]) == 0  # listing and resolving read no task file
    assert capsys.readouterr().out == listing
    assert [t.name for t in resolve_tasks(["bigbench:composite"], workdir)] == [t.name for t in tasks[:2]]
    monkeypatch.setattr(bb, "read_task", read_task)
    (workdir / "bb" / "mc_task" / "task.json").write_text("{broken")  # a changed file is indexed again
    with pytest.raises(HarnessError, match="not a readable task.json"):
        resolve_tasks(["bigbench:mc_task"], workdir)


@pytest.mark.parametrize("change,fragment", [
    (lambda d: d.pop("examples"), "needs 'examples' or subtask folders"),
    (lambda d: d.update(examples=[]), "no examples"),
    (lambda d: d["examples"].append({"input": "x", "target": "y"}), "needs 'target_scores' in every example"),
    (lambda d: d["examples"].append({"input": "x"}), "needs 'input' and 'target'"),
    (lambda d: d.pop("canary"), "missing 'canary'"),
    (lambda d: d["examples"].append({"input": "x", "target_scores": {"a": 1, "b": 1}}), "no correct choice"),
    (lambda d: d.update(examples=d["examples"][:2]), "too few for 3 shots"),
    (lambda d: d.pop("preferred_score"), "missing 'preferred_score'"),
])
def test_bad_task_json_is_one_line(tmp_path, change, fragment):
    data = copy.deepcopy(MC)
    change(data)
    path = tmp_path / "t" / "task.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    with pytest.raises(HarnessError) as info:
        bb.format_examples(bb.read_task(path), 3, path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_missing_data_says_how_to_fetch(workdir, monkeypatch, capsys):
    monkeypatch.setenv("BIGBENCH_ROOT", str(workdir / "nowhere"))
    assert main(["tasks", "show", "bigbench:mc_task"]) == 2
    assert "harness bigbench fetch" in capsys.readouterr().err
    monkeypatch.setenv("BIGBENCH_ROOT", str(write_tasks(workdir / "bb")))
    assert main(["tasks", "show", "bigbench:composite:nope"]) == 2
    assert "has no subtask 'nope'" in capsys.readouterr().err


def _sdist(tmp_path: Path) -> tuple[str, str]:
    """A .tar.gz laid out like the bigbench sdist (code, READMEs, task.json files) and its sha256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in [("bigbench/api/json_task.py", "# code"), ("bigbench/benchmark_tasks/mc_task/README.md", "r"),
                           ("bigbench/benchmark_tasks/mc_task/task.json", json.dumps(MC)),
                           ("bigbench/benchmark_tasks/gen_task/task.json", json.dumps(GEN))]:
            data = text.encode()
            info = tarfile.TarInfo(f"bigbench-1.0.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "bigbench-1.0.0.tar.gz"
    path.write_bytes(buf.getvalue())
    return path.as_uri(), hashlib.sha256(buf.getvalue()).hexdigest()


def _github_archive(tmp_path: Path, name: str) -> Path:
    """The sdist ``_sdist`` wrote, laid out as GitHub's archive of the repository (BIG-bench-main/bigbench/...)."""
    github = tmp_path / name
    with tarfile.open(tmp_path / "bigbench-1.0.0.tar.gz") as src, tarfile.open(github, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            member.name = member.name.replace("bigbench-1.0.0/", "BIG-bench-main/")
            dst.addfile(member, io.BytesIO(data))
    return github


def test_fetch_keeps_only_task_json_and_checks_the_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BIGBENCH_ROOT", raising=False)
    url, sha = _sdist(tmp_path)
    seen: list[int] = []
    root, got = fetcher.fetch(progress=lambda done, total: seen.append(done), url=url, sha256=sha)
    assert got == sha
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == ["gen_task/task.json",
                                                                                         "mc_task/task.json"]
    assert seen and seen[-1] == (tmp_path / "bigbench-1.0.0.tar.gz").stat().st_size
    assert [e["name"] for e in bb.index()] == ["gen_task", "mc_task"]
    with pytest.raises(HarnessError, match="sha256 mismatch"):
        fetcher.fetch(url=url, sha256="0" * 64)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes((tmp_path / "bigbench-1.0.0.tar.gz").read_bytes()[:200])  # cut short: the hash says so
    with pytest.raises(HarnessError, match="sha256 mismatch"):
        fetcher.fetch(url=broken.as_uri(), sha256=sha)
    broken.write_bytes(b"not a gzip stream " * 50)
    with pytest.raises(HarnessError, match="could not download BIG-bench"):
        fetcher.fetch(url=broken.as_uri(), sha256=sha)
    assert (root / "mc_task" / "task.json").is_file()  # a failed fetch keeps what was there


def test_fetch_from_another_archive_through_the_cli(tmp_path, monkeypatch, capsys):
    """``--source``: a local archive laid out as GitHub's (BIG-bench-main/bigbench/benchmark_tasks/...), no hash
    expected unless given; an archive without tasks is refused and leaves the cache as it was."""
    from harness.cli import main

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BIGBENCH_ROOT", raising=False)
    url, sha = _sdist(tmp_path)
    github = _github_archive(tmp_path, "BIG-bench-main.tar.gz")
    assert main(["bigbench", "fetch", "--source", str(github)]) == 0
    assert "2 JSON tasks" in capsys.readouterr().out
    assert [e["name"] for e in bb.index()] == ["gen_task", "mc_task"]
    assert main(["bigbench", "fetch", "--source", str(github), "--sha256", sha]) == 2  # the other archive's hash
    assert "sha256 mismatch" in capsys.readouterr().err
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz") as tar:
        info = tarfile.TarInfo("x/README.md")
        tar.addfile(info, io.BytesIO(b""))
    assert main(["bigbench", "fetch", "--source", str(empty)]) == 2
    assert "no bigbench/benchmark_tasks/*/task.json" in capsys.readouterr().err
    assert [e["name"] for e in bb.index()] == ["gen_task", "mc_task"]


def test_fetch_falls_back_to_githubs_archive_and_says_how_to_give_a_copy(tmp_path, monkeypatch, capsys):
    """The default source: the sdist where the index serves it; where it does not, GitHub's archive of the
    repository (the run log says so); where neither can be had, one line naming --source."""
    from harness.cli import main

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BIGBENCH_ROOT", raising=False)
    _sdist(tmp_path)
    github = _github_archive(tmp_path, "main.tar.gz")
    monkeypatch.setattr(fetcher, "SDIST_URL", (tmp_path / "refused.tar.gz").as_uri())  # as if the index refused it
    monkeypatch.setattr(fetcher, "GITHUB_URL", github.as_uri())
    assert main(["bigbench", "fetch"]) == 0
    captured = capsys.readouterr()
    assert "trying GitHub's archive" in " ".join(captured.err.split()) and "2 JSON tasks" in captured.out
    assert [e["name"] for e in bb.index()] == ["gen_task", "mc_task"]
    monkeypatch.setattr(fetcher, "GITHUB_URL", (tmp_path / "unreachable.tar.gz").as_uri())
    assert main(["bigbench", "fetch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "nor from GitHub" in err[-1] and "--source FILE" in err[-1]
    assert main(["bigbench", "fetch", "--sha256", "0" * 64]) == 2
    assert "--sha256 checks an archive given with --source" in capsys.readouterr().err


@pytest.mark.parametrize("logprobs,expected", EXPECTED["multiple_choice_grade"])
def test_multiple_choice_grade_equals_bigbench(logprobs, expected):
    """Ties included: BIG-bench breaks them by a hash of the log-probs it normalizes over the choices (choices
    yes/no/maybe with credits 0.5/0/1)."""
    from harness.metrics import compute

    record = {"logprobs": logprobs, "gold": 2, "choice_scores": [0.5, 0.0, 1.0]}
    assert compute("multiple_choice_grade", record) == expected


def test_ties_do_not_always_pick_the_first_choice():
    from harness.metrics import bigbench_argmax

    picks = {bigbench_argmax([-float(k), -float(k), -50.0]) for k in range(1, 40)}
    assert picks == {0, 1}


@pytest.mark.parametrize("case", EXPECTED["exact_str_match"], ids=lambda c: repr((c["generation"], c["stop"], c["regex"])))
def test_exact_str_match_equals_bigbench(case):
    from harness.extraction import extract_answer
    from harness.metrics import compute

    refs = ["681", "681.0"]
    generation, stop, regex = case["generation"], case["stop"], case["regex"]
    bb_regex = regex if (regex or stop) else r"[^\.\?\!\;\n]+"  # json_task: the default when neither is set
    answer = extract_answer(generation, stop, bb_regex)
    assert answer == case["answer"]
    mine = compute("exact_str_match", {"generation": generation, "answer": answer, "target": refs[0], "references": refs})
    assert mine == case["exact_str_match"]


def test_scores_recorded_with_bigbench_credit_and_chance(workdir, tiny_llama, monkeypatch):
    import csv

    from harness.testing import write_config

    monkeypatch.setenv("BIGBENCH_ROOT", str(write_tasks(workdir / "bb")))
    cfg = write_config(workdir, [tiny_llama], ["bigbench:mc_task", "bigbench:gen_task"])
    assert main(["run", str(cfg)]) == 0
    out = workdir / "results" / "t"
    mc = [json.loads(line) for line in (out / "models" / "llama" / "bigbench.mc_task.jsonl").read_text().splitlines()]
    assert mc[-1]["choice_scores"] == [0.5, 0.0, 0.5]
    assert all(r["metrics"]["multiple_choice_grade"] == r["choice_scores"][r["logprobs"].index(max(r["logprobs"]))]
               for r in mc)
    gen = [json.loads(line) for line in (out / "models" / "llama" / "bigbench.gen_task.jsonl").read_text().splitlines()]
    assert [r["references"] for r in gen if len(r["references"]) > 1] == [["7", "7.0"]]
    rows = {(r["task"], r["metric"]): r for r in csv.DictReader(open(out / "scores.csv"))}
    expected_chance = (6 * (1 / 3) + 1 / 3) / 7  # each example's mean credit: BIG-bench's low score
    assert float(rows[("bigbench.mc_task", "multiple_choice_grade")]["chance"]) == pytest.approx(expected_chance)
    assert ("bigbench.gen_task", "exact_str_match") in rows


@pytest.mark.parametrize("change,fragment", [
    ({"choice_scores": "{{ [1, 0] }}"}, "choice_scores: row 0: choice_scores must render to 3 finite numbers"),
    ({"choice_scores": "{{ ['a', 'b', 'c'] }}"}, "choice_scores: row 0"),
    ({"output": "generate", "target": "{{q}}", "references": "{{ [] }}", "metrics": ["exact_str_match"]},
     "references: row 0: references must render to a non-empty list"),
])
def test_choice_scores_and_references_are_checked(tmp_path, change, fragment):
    import yaml

    from harness.tasks import load_task_file

    spec = {"name": "t", "dataset": {"path": "d.jsonl"}, "prompt": "{{q}}", "choices": "{{opts}}", "answer": 0,
            "output": "multiple_choice", "metrics": ["multiple_choice_grade"], **change}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "d.jsonl").write_text(json.dumps({"q": "x", "opts": ["a", "b", "c"]}) + "\n")
    with pytest.raises(HarnessError) as info:
        prepare(load_task_file(tmp_path / "t.yaml")[0])
    assert fragment in str(info.value)


def test_classify_by_keyword_counts_a_group_once(workdir, tiny_models, monkeypatch, capsys):
    from harness.analysis import by_keyword, load_classified
    from harness.testing import write_config

    monkeypatch.setenv("BIGBENCH_ROOT", str(write_tasks(workdir / "bb")))
    cfg = write_config(workdir, list(tiny_models.values()), ["bigbench:composite", "bigbench:mc_task"])
    assert main(["run", str(cfg)]) == 0
    manifest = json.loads((workdir / "results" / "t" / "manifest.json").read_text())
    assert {t["name"]: t["keywords"] for t in manifest["tasks"]}["bigbench.composite.sub_b"] == ["mathematics"]
    table = by_keyword(load_classified(workdir / "results" / "t"))
    # target_logprob: mc_task and the composite group once (its macro curve, under both subtasks' keywords);
    # multiple_choice_grade: the group has no macro curve (sub_b lacks the metric), so sub_a counts alone
    assert sum(table[("logical reasoning", "target_logprob")].values()) == 2
    assert sum(table[("mathematics", "target_logprob")].values()) == 1
    assert sum(table[("logical reasoning", "multiple_choice_grade")].values()) == 2
    assert sum(table[("mathematics", "exact_str_match")].values()) == 1
    capsys.readouterr()
    assert main(["classify", "results/t", "--by", "keyword"]) == 0
    assert "scaling categories by task keyword" in capsys.readouterr().out


def test_subtask_names_outside_the_name_pattern_are_kept_for_lookup():
    (spec,) = bb.specs("conlang_translation", "atikampé_to", GEN)
    assert spec["name"] == "bigbench.conlang_translation.atikamp__to"
    assert spec["dataset"]["bigbench"]["subtask"] == "atikampé_to"


# ---------------------------------------------------------------- BIG-bench's generative metrics

ANSWERS = ["the cat sat on the mat", "a dog", "", "Le chat est sur le tapis .", "the cat . the mat . sat",
           "42", "41.5", "B-PER O O B-LOC", "completely unrelated words here"]
REFERENCES = [["the cat sat on a mat", "a cat is on the mat"], ["the dog"], ["nothing"],
              ["Le chat est sur le tapis .", "Un chat est assis sur le tapis ."], ["the cat sat on the mat . yes"],
              ["42"], ["40"], ["B-PER O B-ORG B-LOC O"], ["the quick brown fox", "jumps", "over the lazy dog"]]


def _gen_records() -> list[dict]:
    return [{"generation": a + " and more", "answer": a, "target": refs[0], "references": refs}
            for a, refs in zip(ANSWERS, REFERENCES)]


def test_bleu_equals_bigbench_on_a_corpus_and_per_example():
    from harness.metrics import METRICS, compute

    records = _gen_records()
    assert METRICS["bleu"].corpus(records) == pytest.approx(EXPECTED["bleu"]["corpus"], abs=1e-9)
    for rec, expected in zip(records, EXPECTED["bleu"]["per_example"]):
        assert compute("bleu", rec) == pytest.approx(expected, abs=1e-9)


def test_rouge_equals_bigbench_per_example_and_its_mean_on_a_corpus():
    """BIG-bench reports the median of 1,000 unseeded bootstrap means; this harness reports the mean itself."""
    from harness.metrics import compute

    records = _gen_records()
    for rec, expected in zip(records, EXPECTED["rouge"]["per_example"]):
        for kind in ("rouge1", "rouge2", "rougeLsum"):
            assert compute(kind, rec) == pytest.approx(expected[kind], abs=1e-9)
    mean = np.mean([compute("rougeLsum", r) for r in records])
    assert abs(EXPECTED["rouge"]["corpus_seed0"]["rougeLsum"] - mean) < 8  # a bootstrap median of 9 examples


@pytest.mark.parametrize("name", sorted(EXPECTED["other"]))
def test_other_generative_metrics_equal_bigbench(name):
    from harness.metrics import compute

    answers = ANSWERS + [" THE DOG ", "4e1", "x"]
    refs = REFERENCES + [["the dog"], ["40"], ["0"]]
    for a, r, expected in zip(answers, refs, EXPECTED["other"][name], strict=True):
        targets = r[:1] if name == "numeric_match_with_0_1_relative_error" else list(r)
        assert compute(name, {"generation": a, "answer": a, "target": r[0], "references": targets}) == pytest.approx(expected)


def test_a_task_scored_both_ways_is_two_tasks_with_the_preferred_score_marked():
    both = {**MC, "name": "both", "metrics": ["multiple_choice_grade", "exact_str_match", "rouge"],
            "preferred_score": "exact_str_match"}
    gen, mc = bb.specs("both", None, both, canary=CANARY)
    assert (gen["name"], gen["output"], gen["preferred_metric"]) == ("bigbench.both", "generate", "exact_str_match")
    assert [m if isinstance(m, str) else m["name"] for m in gen["metrics"]] == [
        "exact_str_match", "rouge1", "rouge2", "rougeLsum", "target_logprob", "char_edit_distance", "token_edit_distance"]
    assert (mc["name"], mc["output"], mc["preferred_metric"]) == ("bigbench.both.mc", "multiple_choice", None)
    assert gen["generation"]["output_regex"] == r"[^\.\?\!\;\n]+" and gen["canary"] == CANARY
    (ll,) = bb.specs("ll", None, {**GEN, "metrics": ["log_likelihood"], "preferred_score": "log_likelihood"})
    assert (ll["output"], ll["preferred_metric"]) == ("loglikelihood", "target_logprob")
    (nlg,) = bb.specs("nlg", None, {**GEN, "metrics": ["bleu", "bleurt"], "preferred_score": "bleurt"})
    assert nlg["preferred_metric"] is None and "Not computed here: bleurt" in nlg["description"]


def test_canary_and_preferred_metric_reach_records_manifest_and_report(workdir, tiny_models, monkeypatch, capsys):
    from harness.testing import write_config

    root = write_tasks(workdir / "bb")
    data = {**GEN, "name": "rouge_task", "metrics": ["exact_str_match", "rouge", "bleu"], "preferred_score": "rougeLsum",
            "stop_string": "."}
    (root / "rouge_task").mkdir()
    (root / "rouge_task" / "task.json").write_text(json.dumps(data))
    monkeypatch.setenv("BIGBENCH_ROOT", str(root))
    cfg = write_config(workdir, list(tiny_models.values()), ["bigbench:mc_task", "bigbench:rouge_task"])
    assert main(["run", str(cfg)]) == 0
    out = workdir / "results" / "t"
    for name in ("bigbench.mc_task", "bigbench.rouge_task"):
        lines = (out / "models" / "llama" / f"{name}.jsonl").read_text().splitlines()
        assert all(json.loads(line)["canary"] == CANARY for line in lines)
    gen = [json.loads(line) for line in (out / "models" / "llama" / "bigbench.rouge_task.jsonl").read_text().splitlines()]
    from harness.extraction import extract_answer

    assert all(r["answer"] == extract_answer(r["generation"], ".", None) for r in gen)
    several = [r for r in gen if len(r["references"]) > 1]
    assert several and all(len(r["reference_logprobs"]) == 2 and len(r["reference_ids"]) == 2 for r in several)
    assert all(r["metrics"]["target_logprob"] == max(r["reference_logprobs"]) for r in several)
    manifest = {t["name"]: t for t in json.loads((out / "manifest.json").read_text())["tasks"]}
    assert manifest["bigbench.rouge_task"]["preferred_metric"] == "rougeLsum"
    assert manifest["bigbench.mc_task"]["canary"] == CANARY
    capsys.readouterr()
    assert main(["report", "results/t", "--out", "rep"]) == 0
    import html

    page = html.unescape((workdir / "rep" / "index.html").read_text())
    assert CANARY in page and re.search(r"<td>bigbench.rouge_task</td><td>rougeLsum <span[^>]*>★ preferred", page)


def test_unknown_metric_in_a_task_json_is_one_line(workdir, monkeypatch):
    root = write_tasks(workdir / "bb")
    (root / "odd").mkdir()
    (root / "odd" / "task.json").write_text(json.dumps({**GEN, "name": "odd", "metrics": ["exact_str_match", "bleurtt"]}))
    monkeypatch.setenv("BIGBENCH_ROOT", str(root))
    with pytest.raises(HarnessError, match=r"task odd: unknown metric 'bleurtt'") as info:
        resolve_tasks(["bigbench:odd"], workdir)
    assert "odd/task.json" in str(info.value) and "\n" not in str(info.value)
