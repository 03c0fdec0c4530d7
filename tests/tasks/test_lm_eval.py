"""lm-eval task YAMLs: the requests this harness builds equal the ones lm-eval builds itself from the same rows;
scores on a tiny model equal lm-eval's; no Python from a task folder ever runs; bad input is one clear line."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from lm_eval_rows import rows  # tests/tasks: on sys.path under pytest

from harness.errors import HarnessError
from harness.tasks import prepare, resolve_tasks

pytest.importorskip("lm_eval")  # the 'reference' extra (installed by CI)

TASKS = sorted(rows())
SHOTS = {"mmlu_abstract_algebra": 3, "lambada_openai": 2}  # few-shot setting checked per task (default 2)


@pytest.fixture(scope="module")
def index_cache(tmp_path_factory):
    """One index build (~10 s) shared by this module's tests."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def lm_env(index_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(index_cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HARNESS_LM_EVAL_TASKS", raising=False)
    return tmp_path


def write_rows(task: str, folder: Path) -> dict[str, str]:
    data = {}
    for split, rs in rows()[task].items():
        path = folder / f"{task}-{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rs))
        data[split] = str(path)
    return data


@functools.lru_cache(maxsize=1)
def _lm_eval_paths() -> dict[str, Path]:
    from lm_eval.tasks import TaskManager

    return {name: e.yaml_path for name, e in TaskManager()._index.items()}  # lm-eval's own index


def lm_eval_task(task: str, data: dict[str, str], shots: int):
    """lm-eval's own task object for ``task``, its splits read from the local files (``dataset_path: json``)."""
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(_lm_eval_paths()[task], resolve_func=True)
    for key in ("tag", "group", "task_list"):
        cfg.pop(key, None)
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": data})
    t = ConfigurableTask(config=cfg)
    t.set_config(key="num_fewshot", value=shots)
    t.set_fewshot_seed(seed=1234)
    t.build_all_requests()
    return t


def theirs_requests(t) -> list[list[tuple]]:
    by_doc: dict[int, list] = {}
    for inst in sorted(t.instances, key=lambda i: (i.doc_id, i.idx)):
        by_doc.setdefault(inst.doc_id, []).append(inst.arguments)
    return [by_doc[d] for d in sorted(by_doc)]


def ours_requests(task: str, data: dict[str, str], shots: int) -> list[list[tuple]]:
    (t,) = resolve_tasks([f"lm_eval:{task}"], Path.cwd(), {task: data})
    t.spec.dataset.lm_eval.num_fewshot = shots
    out = []
    for i in prepare(t).instances:
        if t.spec.output == "multiple_choice":
            out.append(i.requests)
        elif t.spec.output == "loglikelihood":
            out.append([(i.context, i.delimiter + i.target)])
        else:
            out.append([(i.context,)])
    return out


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("zero_shot", [True, False], ids=["0-shot", "k-shot"])
def test_requests_equal_lm_eval(task, zero_shot, lm_env):
    data = write_rows(task, lm_env)
    shots = 0 if zero_shot else SHOTS.get(task, 2)
    theirs = theirs_requests(lm_eval_task(task, data, shots))
    ours = ours_requests(task, data, shots)
    assert len(ours) == len(theirs) == len(rows()[task].get("test") or rows()[task]["validation"])
    assert ours == theirs
    if shots:  # the shots are there: the contexts differ from the 0-shot ones
        assert all(a[0][0] != b[0][0] for a, b in zip(ours, ours_requests(task, data, 0)))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["arc_easy", "winogrande", "lambada_openai", "hellaswag", "copa"])
def test_scores_equal_lm_eval(task, lm_env, tiny_llama):
    """Per-request log-likelihoods within 1e-4 of lm-eval's HF backend; acc/acc_norm/perplexity equal."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from harness.models.hf import HFBackend
    from harness.models.suite import ModelSpec
    from harness.scoring import evaluate

    data = write_rows(task, lm_env)
    (t,) = resolve_tasks([f"lm_eval:{task}"], Path.cwd(), {task: data})
    backend = HFBackend(ModelSpec(model=str(tiny_llama)), device="cpu", batch_size=8)
    records = evaluate(backend, prepare(t))
    backend.close()

    theirs_task = lm_eval_task(task, data, 0)
    lm = HFLM(pretrained=str(tiny_llama), device="cpu", batch_size=8, dtype="float32")
    out = lm_eval.simple_evaluate(model=lm, tasks=[theirs_task], log_samples=True, num_fewshot=0)
    res = out["results"][task]
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    theirs_ll = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
    if t.spec.output == "multiple_choice":
        ours_ll = [r["logprobs"] for r in records]
        for m in ("acc", "acc_norm"):
            if f"{m},none" in res:
                assert np.mean([r["metrics"][m] for r in records]) == pytest.approx(res[f"{m},none"], abs=1e-12)
    else:
        ours_ll = [[r["target_logprob"]] for r in records]
        assert np.mean([r["metrics"]["is_greedy"] for r in records]) == pytest.approx(res["acc,none"], abs=1e-12)
        ppl = float(np.exp(-np.mean([r["target_logprob"] for r in records])))
        assert ppl == pytest.approx(res["perplexity,none"], rel=1e-6)
    assert np.abs(np.array(ours_ll) - np.array(theirs_ll)).max() <= 1e-4


def test_group_resolves_to_its_tasks(lm_env):
    tasks = resolve_tasks(["lm_eval:mmlu"], Path.cwd())
    assert len(tasks) == 57 and {t.group for t in tasks} == {"mmlu"}
    assert all(t.spec.metrics[0].name == "acc" for t in tasks)
    fs = tasks[0].spec.dataset.lm_eval.config
    assert fs["fewshot_config"] == {"sampler": "first_n"} and fs["fewshot_split"] == "dev"


def test_function_module_is_never_imported(lm_env, tmp_path, monkeypatch):
    """A task whose !function names a module that writes a file when imported: the file is never written."""
    folder = tmp_path / "evil"
    folder.mkdir()
    marker = tmp_path / "pwned"
    (folder / "utils.py").write_text(f"open({str(marker)!r}, 'w').write('x')\ndef process_docs(d):\n    return d\n")
    (folder / "evil.yaml").write_text("task: evil_task\ndataset_path: json\ntest_split: test\n"
                                      "output_type: multiple_choice\nprocess_docs: !function utils.process_docs\n"
                                      "doc_to_text: q\ndoc_to_choice: [a, b]\ndoc_to_target: 0\n")
    monkeypatch.setenv("HARNESS_LM_EVAL_TASKS", str(folder))
    with pytest.raises(HarnessError) as err:
        resolve_tasks(["lm_eval:evil_task"], Path.cwd())
    assert "evil.yaml" in str(err.value) and "process_docs" in str(err.value) and "utils.process_docs" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("yaml_text, expected", [
    ("task: t1\ninclude: t1.yaml\n", "include cycle"),
    ("task: t1\ndataset_path: x\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: q\n"
     "doc_to_choice: [a, b]\ndoc_to_target: 0\nmetric_list: [{metric: acc_mutual_info}]\n", "metric 'acc_mutual_info' is not supported"),
    ("task: t1\ndataset_path: x\ntest_split: test\noutput_type: multiple_generate\n", "output_type"),
    ("task: t1\ndataset_path: x\ntest_split: test\nclass: !function task.MyTask\n", "Python-defined task"),
    ("task: t1\ndataset_path: x\ntest_split: test\noutput_type: generate_until\ndoc_to_text: q\ndoc_to_target: a\n"
     "generation_kwargs: {do_sample: true}\n", "sampled generation"),
    ("task: t1\ndataset_path: x\ntest_split: test\noutput_type: generate_until\ndoc_to_text: q\ndoc_to_target: a\n"
     "generation_kwargs: {temperature: hot}\n", "must be numbers"),
    ("task: t1\ndataset_path: x\ntest_split: test\noutput_type: generate_until\ndoc_to_text: q\ndoc_to_target: a\n"
     "filter_list: [{name: f, filter: [{function: majority_vote}]}]\n", "filter 'majority_vote' is not supported"),
    ("task: t1\ndataset_path: x\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: q\n"
     "doc_to_choice: [a, b]\ndoc_to_target: 0\nfewshot_config: {sampler: balanced}\n", "sampler 'balanced'"),
])
def test_bad_task_files_are_one_clear_line(yaml_text, expected, lm_env, tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "t1.yaml").write_text(yaml_text)
    monkeypatch.setenv("HARNESS_LM_EVAL_TASKS", str(folder))
    from harness.tasks import lm_eval

    entries = lm_eval.index()
    if "t1" not in entries:  # a file lm-eval could not read either is not a task: it is named in `tasks list`
        assert expected == "include cycle"
        with pytest.raises(HarnessError, match=expected):
            lm_eval.read_config(folder / "t1.yaml")
        return
    with pytest.raises(HarnessError, match=expected) as err:
        resolve_tasks(["lm_eval:t1"], Path.cwd())
    assert "t1.yaml" in str(err.value) and "\n" not in str(err.value)


def test_a_missing_include_and_a_template_that_is_not_a_list_are_one_line(lm_env, tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "t2.yaml").write_text("task: t2\ninclude: _nowhere_yaml\n")
    with pytest.raises(HarnessError, match="includes '_nowhere_yaml', which does not exist"):
        from harness.tasks import lm_eval

        lm_eval.read_config(folder / "t2.yaml")
    (folder / "t3.yaml").write_text("task: t3\ndataset_path: json\ntest_split: test\noutput_type: multiple_choice\n"
                                    "doc_to_text: '{{q}}'\ndoc_to_choice: '{{q}}'\ndoc_to_target: 0\n")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"q": "plain words"}) + "\n")
    monkeypatch.setenv("HARNESS_LM_EVAL_TASKS", str(folder))
    (t,) = resolve_tasks(["lm_eval:t3"], Path.cwd(), {"*": {"test": str(rows)}})
    with pytest.raises(HarnessError, match="t3.yaml: doc_to_choice: row 0: cannot render"):
        prepare(t)


def test_missing_split_says_how_to_give_it(lm_env):
    (t,) = resolve_tasks(["lm_eval:arc_easy"], Path.cwd(), {"arc_easy": write_rows("piqa", lm_env)})
    with pytest.raises(HarnessError, match="split 'test'.*--data test=FILE"):
        prepare(t)


def test_filters_match_lm_eval():
    """The regex / remove_whitespace / lowercase filters give what lm-eval's own filter classes give."""
    from lm_eval.filters.extraction import RegexFilter, WhitespaceFilter
    from lm_eval.filters.transformation import LowercaseFilter

    from harness.extraction import apply_filters
    from harness.tasks.schema import FilterStep

    texts = ["The answer is 42.\n#### 42", "#### -3,000 and #### 7", "no number", "  padded  ", "A (b) C"]
    for pattern, group in ((r"#### (\-?[0-9\.\,]+)", 0), (r"#### (\-?[0-9\.\,]+)", -1), (r"(\d+)|([a-z])", 0)):
        ours = [apply_filters(t, [FilterStep(function="regex", regex_pattern=pattern, group_select=group)])
                for t in texts]
        theirs = RegexFilter(regex_pattern=pattern, group_select=group).apply([[t] for t in texts], [])
        assert ours == [x[0] for x in theirs]
    assert [apply_filters(t, [FilterStep(function="remove_whitespace")]) for t in texts] == [
        x[0] for x in WhitespaceFilter().apply([[t] for t in texts], [])]
    assert [apply_filters(t, [FilterStep(function="lowercase")]) for t in texts] == [
        x[0] for x in LowercaseFilter().apply([[t] for t in texts], [])]


CUSTOM = {  # lm-eval features the twelve tasks do not use, each checked against lm-eval's own requests
    "gen_prefix_mc": "output_type: multiple_choice\ndoc_to_text: 'Q: {{q}}'\ngen_prefix: 'Answer:'\n"
                     "doc_to_choice: {a: 'yes', b: 'no'}\ndoc_to_target: \"{{ 'yes' if label == 'a' else 'no' }}\"\n"
                     "description: 'About {{topic}}.\\n'\n",
    "generate": "output_type: generate_until\ndoc_to_text: '{{q}} ='\ndoc_to_target: '{{answer}}'\n"
                "target_delimiter: ''\nfewshot_delimiter: '\\n'\ngeneration_kwargs: {until: ['\\n'], max_gen_toks: 8}\n"
                "filter_list: [{name: strict, filter: [{function: regex, regex_pattern: '(\\d+)'}, "
                "{function: take_first}]}]\n",
    "multi_target": "output_type: generate_until\ndoc_to_text: 'Say {{q}}:'\ndoc_to_target: '{{[answer, q]}}'\n",
    "rolling": "output_type: loglikelihood_rolling\ndoc_to_text: ''\ndoc_to_target: '{{q}} is {{answer}}'\n",
    "first_n_split": "output_type: multiple_choice\ndoc_to_text: '{{q}}?'\ndoc_to_choice: '{{[answer, q]}}'\n"
                     "doc_to_target: 0\nfewshot_config: {sampler: first_n, split: train}\n"
                     "description: topic\ntarget_delimiter: ' -> '\n",
}


@pytest.mark.parametrize("name", sorted(CUSTOM))
@pytest.mark.parametrize("shots", [0, 2])
def test_other_features_equal_lm_eval(name, shots, lm_env, tmp_path, monkeypatch):
    from lm_eval.api.task import ConfigurableTask

    folder = tmp_path / "mine"
    folder.mkdir()
    rs = {split: [{"q": f"{split} q{i}", "answer": str(7 * i + n), "label": "ab"[i % 2], "topic": f"topic {i}"}
                  for i in range(n)] for split, n in (("train", 4), ("test", 5))}
    data = {}
    for split, r in rs.items():
        data[split] = str(tmp_path / f"{split}.jsonl")
        Path(data[split]).write_text("".join(json.dumps(x) + "\n" for x in r))
    head = f"task: {name}\ndataset_path: json\ntraining_split: train\ntest_split: test\n"
    (folder / f"{name}.yaml").write_text(head + CUSTOM[name])
    monkeypatch.setenv("HARNESS_LM_EVAL_TASKS", str(folder))
    import yaml

    cfg = yaml.safe_load(head + CUSTOM[name])
    cfg.update(dataset_kwargs={"data_files": data})
    theirs = ConfigurableTask(config=cfg)
    theirs.set_config(key="num_fewshot", value=shots)
    theirs.set_fewshot_seed(seed=1234)
    theirs.build_all_requests()
    expected = theirs_requests(theirs)
    (t,) = resolve_tasks([f"lm_eval:{name}"], Path.cwd(), {"*": data}, shots)
    instances = prepare(t).instances
    if t.spec.output == "multiple_choice":
        assert [i.requests for i in instances] == expected
    elif t.spec.output == "perplexity":
        assert [[(i.context,)] for i in instances] == expected
    else:
        assert [[(i.context, {"until": t.spec.generation.until, "max_gen_toks": t.spec.generation.max_new_tokens})]
                for i in instances] == [[(a[0], {k: a[1][k] for k in ("until", "max_gen_toks") if k in a[1]} |
                                          {"max_gen_toks": a[1].get("max_gen_toks", 256)})] for (a,) in expected]
        golds = [theirs.doc_to_target(d) for d in theirs.eval_docs]
        assert [list(i.references or ()) for i in instances] == [g if isinstance(g, list) else [g] for g in golds]


def test_cli_show_prints_the_scored_requests(lm_env, capsys):
    from harness.cli import main

    data = write_rows("winogrande", lm_env)
    assert main(["tasks", "show", "lm_eval:winogrande", "--data", f"validation={data['validation']}",
                 "--data", f"train={data['train']}", "--num-fewshot", "1", "--json", "--n", "2"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    expected = theirs_requests(lm_eval_task("winogrande", data, 1))[:2]
    assert [list(zip(x["contexts"], x["continuations"])) for x in lines] == [[tuple(a) for a in e] for e in expected]


def test_cli_list_counts_what_loads_and_why_not(lm_env, capsys):
    from harness.cli import main

    assert main(["tasks", "list", "--source", "lm_eval", "--match", "arc_e*"]) == 0
    text = capsys.readouterr().out
    assert "load here" in text and "needs the Python function" in text and "process_results" not in text.split(
        "why the others")[0]
    assert "arc_easy" in text and "│ ok" in text


@pytest.mark.slow
def test_run_with_local_data_and_resume(lm_env, tiny_llama, capsys):
    """``harness run`` on an lm-eval task with ``--data``: scored, stored, reused by a second run; a config's
    ``data:`` gives the same results."""
    import yaml

    from harness.cli import main

    data = write_rows("piqa", lm_env)
    cfg = lm_env / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "lme", "suite": [{"model": str(tiny_llama), "label": "t"}],
                                   "tasks": ["lm_eval:piqa"], "output": str(lm_env / "out")}))
    assert main(["run", str(cfg), "--data", f"validation={data['validation']}"]) == 0
    recs = [json.loads(x) for x in (lm_env / "out" / "models" / "t" / "piqa.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and {"acc", "acc_norm", "p_correct", "brier", "target_logprob"} <= set(recs[0]["metrics"])
    assert main(["run", str(cfg), "--data", f"validation={data['validation']}"]) == 0
    assert "(0 computed, 1 reused" in capsys.readouterr().out
    cfg.write_text(yaml.safe_dump({"name": "lme", "suite": [{"model": str(tiny_llama), "label": "t"}],
                                   "tasks": ["lm_eval:piqa"], "output": str(lm_env / "out"),
                                   "data": {"piqa": {"validation": data["validation"]}}}))
    assert main(["run", str(cfg)]) == 0
    assert "(0 computed, 1 reused" in capsys.readouterr().out


def test_pythia_standard_config_resolves(lm_env):
    from harness.config import load_config, resolve_config

    config = load_config(resolve_config("pythia_standard"))
    tasks = resolve_tasks(config.tasks, Path.cwd(), config.data, config.run.num_fewshot)
    assert len(config.suite) == 8 and len(tasks) == 7 + 57
    assert {t.name for t in tasks if t.group is None} == {"lambada_openai", "piqa", "winogrande", "arc_easy",
                                                          "arc_challenge", "sciq", "hellaswag"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["generate", "rolling"])
def test_generation_and_perplexity_equal_lm_eval(name, lm_env, tmp_path, monkeypatch, tiny_llama):
    """Generation through the regex filter: every filtered answer and ``exact_match`` equal lm-eval's; rolling
    log-likelihood: ``word_perplexity``, ``byte_perplexity`` and ``bits_per_byte`` equal lm-eval's."""
    import lm_eval
    import yaml
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.models.huggingface import HFLM

    from harness.metrics import aggregate
    from harness.models.hf import HFBackend
    from harness.models.suite import ModelSpec
    from harness.scoring import evaluate

    folder = tmp_path / "mine"
    folder.mkdir()
    rows = [{"q": f"the cat sat on {i} red mats and {3 * i} blue ones", "answer": str(7 * i), "label": "a",
             "topic": "t"} for i in range(6)]
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(x) + "\n" for x in rows))
    text = f"task: {name}\ndataset_path: json\ntest_split: test\n" + CUSTOM[name]
    if name == "generate":
        text = text.replace("max_gen_toks: 8", "max_gen_toks: 12").replace("until: ['\\n']", "until: ['mats']")
    (folder / f"{name}.yaml").write_text(text)
    monkeypatch.setenv("HARNESS_LM_EVAL_TASKS", str(folder))
    (t,) = resolve_tasks([f"lm_eval:{name}"], Path.cwd(), {"*": {"test": str(data)}})
    backend = HFBackend(ModelSpec(model=str(tiny_llama)), device="cpu", batch_size=4)
    records = evaluate(backend, prepare(t))
    backend.close()

    cfg = yaml.safe_load(text)
    cfg.update(dataset_kwargs={"data_files": {"test": str(data)}})
    lm = HFLM(pretrained=str(tiny_llama), device="cpu", batch_size=4, dtype="float32")
    out = lm_eval.simple_evaluate(model=lm, tasks=[ConfigurableTask(config=cfg)], log_samples=True, num_fewshot=0)
    res = out["results"][name]
    samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    if name == "generate":
        assert [r["answer"] for r in records] == [s["filtered_resps"][0] for s in samples]
        assert np.mean([r["metrics"]["exact_match"] for r in records]) == res["exact_match,strict"]
    else:
        for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
            assert aggregate(metric, records).value == pytest.approx(res[f"{metric},none"], rel=1e-5)


def test_regex_replace_takes_lm_evals_argument_order():
    """``"hello world" | regex_replace('o', '0')``: the string filtered first, then pattern and replacement."""
    from harness.tasks.lm_eval_docs import _ENV

    assert _ENV.from_string("{{ 'hello world' | regex_replace('o', '0') }}").render() == "hell0 w0rld"
    assert _ENV.from_string("{{ 'a-b-c' | regex_replace('-', '+', 1) }}").render() == "a+b-c"
