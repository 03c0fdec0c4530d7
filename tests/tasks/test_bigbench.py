"""BIG-bench JSON tasks: formatting equal to BIG-bench's own functions (``bigbench_reference.py``, copied verbatim
from the sdist) on synthetic task.json files that exercise every formatting field; fetching from an archive laid
out like the sdist; names, groups and bad input. The canary here is a placeholder: BIG-bench's is never committed."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import tarfile
from pathlib import Path

import bigbench_reference as ref  # tests/tasks: on sys.path under pytest
import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.tasks import bigbench as bb
from harness.tasks import resolve_tasks
from harness.tasks.prepared import prepare

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


def reference(data: dict, shots: int) -> list[tuple]:
    """BIG-bench's own pipeline: distinct examples, default_format_fn, make_nshot_dataset, task prefix."""
    seen, distinct = set(), []
    for ex in data["examples"]:
        if json.dumps(ex) not in seen:
            seen.add(json.dumps(ex))
            distinct.append(ex)
    ds = [ref.default_format_fn(copy.deepcopy(s), input_prefix=data.get("example_input_prefix", "\nQ: "),
                                output_prefix=data.get("example_output_prefix", "\nA: "),
                                choice_prefix=data.get("choice_prefix", "\n  choice: "), random_seed=42,
                                append_choices_to_input=data.get("append_choices_to_input", True)) for s in distinct]
    samples = ref.make_nshot_dataset(ds, shots, random_seed=42, separator=data.get("few_shot_example_separator", "\n"),
                                     max_examples=len(ds))
    return [(data.get("task_prefix", "") + s["input"], s.get("choice"), [str(t) for t in s["target"]]) for s in samples]


@pytest.mark.parametrize("shots", [0, 1, 2, 3])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_formatting_equals_bigbench(variant, shots):
    data = VARIANTS[variant]
    mine = [(d["input"], d.get("choices"), d["targets"]) for d in bb.format_examples(copy.deepcopy(data), shots)]
    assert mine == reference(copy.deepcopy(data), shots)


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
    assert main(["bigbench", "list"]) == 0
    listing = capsys.readouterr().out
    assert "composite" in listing and "programmatic" not in listing and "logical reasoning" in listing


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


def test_fetch_keeps_only_task_json_and_checks_the_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BIGBENCH_ROOT", raising=False)
    url, sha = _sdist(tmp_path)
    seen: list[int] = []
    root = bb.fetch(progress=lambda done, total: seen.append(done), url=url, sha256=sha)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == ["gen_task/task.json",
                                                                                         "mc_task/task.json"]
    assert seen and seen[-1] == (tmp_path / "bigbench-1.0.0.tar.gz").stat().st_size
    assert [e["name"] for e in bb.index()] == ["gen_task", "mc_task"]
    with pytest.raises(HarnessError, match="sha256 mismatch"):
        bb.fetch(url=url, sha256="0" * 64)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes((tmp_path / "bigbench-1.0.0.tar.gz").read_bytes()[:200])  # cut short: the hash says so
    with pytest.raises(HarnessError, match="sha256 mismatch"):
        bb.fetch(url=broken.as_uri(), sha256=sha)
    broken.write_bytes(b"not a gzip stream " * 50)
    with pytest.raises(HarnessError, match="could not download BIG-bench"):
        bb.fetch(url=broken.as_uri(), sha256=sha)
    assert (root / "mc_task" / "task.json").is_file()  # a failed fetch keeps what was there


@pytest.mark.parametrize("logprobs", [[-1.0, -2.0, -3.0], [-3.0, -1.0, -1.0], [-2.0, -2.0, -0.5], [0.0, 0.0, 0.0]])
def test_multiple_choice_grade_equals_bigbench(logprobs):
    from harness.metrics import compute

    choices, scores = ["yes", "no", "maybe"], {"yes": 0.5, "no": 0.0, "maybe": 1.0}
    record = {"logprobs": logprobs, "gold": 2, "choice_scores": [scores[c] for c in choices]}
    expected = ref.measure_multiple_choice_grade([{"choice": choices, "log_prob": logprobs, "target_scores": scores}])
    assert compute("multiple_choice_grade", record) == expected


@pytest.mark.parametrize("generation", ["681", " 681.", "\n681\n", "681 and more", "6 81", "", "Answer: 681; done",
                                        "1131? 681", "-681", "+681"])
@pytest.mark.parametrize("stop,regex", [(None, None), (None, r"[-+]?\d+"), (".", None), ("\n", r"\d+")])
def test_exact_str_match_equals_bigbench(generation, stop, regex):
    from harness.metrics import compute

    refs = ["681", "681.0"]
    options = {"stop_string": stop, "output_regex": regex}
    mine = compute("exact_str_match", {"generation": generation, "target": refs[0], "references": refs}, options)
    bb_regex = regex if (regex or stop) else r"[^\.\?\!\;\n]+"  # json_task: the default when neither is set
    answer = ref.postprocess_output(generation, 0, stop, bb_regex)
    assert mine == ref.exact_str_match_fn([refs], [answer])["exact_str_match"]


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
    spec = bb._spec("conlang_translation", "atikampé_to", GEN)
    assert spec["name"] == "bigbench.conlang_translation.atikamp__to"
    assert spec["dataset"]["bigbench"]["subtask"] == "atikampé_to"
