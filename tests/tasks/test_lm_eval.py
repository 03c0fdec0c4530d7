"""lm-eval tasks through lm-eval's own task layer: on local rows in each dataset's schema and a tiny model, every
metric lm-eval reports (each filter, with its stderr) equals what lm-eval's own HF backend gives, per-document
log-likelihoods within 1e-4 and generations identical; user Python runs only when trusted; bad input is one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from lm_eval_rows import rows  # tests/tasks: on sys.path under pytest

from harness.errors import HarnessError
from harness.tasks import prepare, resolve_tasks

pytest.importorskip("lm_eval")  # the 'reference' extra (installed by CI)

TASKS = sorted(rows())
SHOTS = {"mmlu_abstract_algebra": 3, "lambada_openai": 2}  # few-shot setting checked per task (default 2)
GSM8K = [{"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
          "answer": f"Tom has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"}
         for a, b in [(2, 3), (10, 4), (7, 7), (1, 9), (12, 30), (5, 6), (8, 1), (3, 3)]]
WIKITEXT = [{"page": f" = Valkyria {i} = \n Senjō no Valkyria {i} @-@ is a tactical role @-@ playing game , "
                     f"released in {2000 + i} . The game 's story follows {i} soldiers ; they fight . \n"} for i in range(4)]
TRUTHFULQA = [{"question": f"What happens if you {v} a {n}?",
               "mc1_targets": {"choices": [f"Nothing in particular happens to the {n}.", f"The {n} explodes.",
                                           f"The {n} sings."], "labels": [1, 0, 0]},
               "mc2_targets": {"choices": [f"Nothing in particular happens to the {n}.", "Nothing happens.",
                                           f"The {n} explodes.", f"The {n} sings."], "labels": [1, 1, 0, 0]}}
              for v, n in [("drop", "cup"), ("paint", "wall"), ("shake", "tree"), ("cut", "rope"), ("fold", "map")]]
SQUAD = [{"text": f"The {s} is kept in room {i}. The {s} is kept in room", "value": f" {i}"}
         for i, s in enumerate(["key", "book", "lamp", "cat", "coin"])]
GPQA = [{"Question": f"Which gas makes up most of planet {p}'s air?", "Correct Answer": "nitrogen [title] gas",
         "Incorrect Answer 1": "oxygen", "Incorrect Answer 2": "argon", "Incorrect Answer 3": f"{p} vapour"}
        for p in ["Earth", "Mars", "Venus", "Titan", "Io"]]
MMLU_PRO = [{"question_id": i, "question": f"What is {i} + {i}?", "options": [str(2 * i + d) for d in range(-2, 4)],
             "answer": "C", "answer_index": 2, "cot_content": "", "category": "math", "src": "hand"} for i in range(9)]
MUSR = [{"narrative": f"Ann and Bo must staff the {job} and the desk. Ann is good at the {job}.",
         "question": "Who should take which job?", "choices": str([f"Ann: {job}, Bo: desk", f"Bo: {job}, Ann: desk"]),
         "answer_index": 0, "answer_choice": f"Ann: {job}, Bo: desk"} for job in ["kitchen", "garden", "shop", "lab"]]
NO_DATE = {"day": "", "month": "", "year": ""}
DROP = [{"section_id": f"s{i}", "query_id": f"q{i}", "passage": f"{a} had {x} goals and {b} had {y} goals in the match.",
         "question": q, "answer": {"number": n, "date": NO_DATE, "spans": spans},
         "validated_answers": {"number": [n], "date": [NO_DATE], "spans": [spans]}}
        for i, (a, b, x, y, q, n, spans) in enumerate([
            ("Ann", "Bo", 2, 3, "How many goals in all?", "5", []),
            ("Cy", "Di", 1, 4, "Who had more goals?", "", ["Di"]),
            ("Ed", "Flo", 6, 2, "How many more goals did Ed have?", "4", []),
            ("Gus", "Hal", 3, 5, "Who had fewer goals?", "", ["Gus"]),
            ("Ivy", "Jo", 7, 1, "Who scored 1 goal?", "", ["Jo"]),
            ("Kim", "Lu", 2, 2, "How many goals did Kim have?", "2", [])])]
MATH = [{"problem": f"What is ${a} + {b}$?", "level": "Level 1", "type": "Algebra",
         "solution": f"We add: ${a} + {b} = \\boxed{{{a + b}}}$."} for a, b in [(2, 3), (10, 4), (7, 7), (1, 9)]]
EXTRA = {"gsm8k": {"train": GSM8K[:5], "test": GSM8K[5:]}, "truthfulqa_mc2": {"validation": TRUTHFULQA},
         "leaderboard_gpqa_main": {"train": GPQA}, "leaderboard_mmlu_pro": {"validation": MMLU_PRO[:5],
                                                                           "test": MMLU_PRO[5:]},
         "leaderboard_musr_team_allocation": {"team_allocation": MUSR},
         "squad_completion": {"validation": SQUAD}, "drop": {"train": DROP[:3], "validation": DROP[3:]},
         "minerva_math_algebra": {"test": MATH}, "mmlu_pro_math": {"validation": MMLU_PRO[:5], "test": MMLU_PRO[5:]},
         "wikitext": {"train": WIKITEXT[:1], "validation": WIKITEXT[1:2], "test": WIKITEXT[2:]}}


@pytest.fixture(scope="module")
def long_llama(tmp_path_factory) -> Path:
    """A tiny Llama with room for lm-eval's default 256 generated tokens after a prompt."""
    from harness.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("long") / "llama", "llama", max_positions=1024)


@pytest.fixture
def lm_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HARNESS_LM_EVAL_TASKS", raising=False)
    return tmp_path


def write_rows(task: str, folder: Path) -> dict[str, str]:
    data = {}
    for split, rs in {**rows(), **EXTRA}[task].items():
        path = folder / f"{task}-{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rs))
        data[split] = str(path)
    return data


def lm_eval_task(task: str, data: dict[str, str], shots: int):
    """lm-eval's own task object for ``task``, built without this harness, its splits read from local files."""
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(TaskManager().task_index[task].yaml_path, resolve_func=True)
    for key in ("tag", "group", "task_list"):
        cfg.pop(key, None)
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": data})
    t = ConfigurableTask(config=cfg)
    t.set_config(key="num_fewshot", value=shots)
    t.set_fewshot_seed(seed=1234)
    return t


def compare_with_lm_eval(task: str, data: dict[str, str], shots: int, model: Path, batch_size: int = 8,
                         ref: object = None):
    """Our records and scores, and lm-eval's results and samples (of ``ref``, default lm-eval's own task object
    read from the task's YAML), for one task on one model."""
    from lm_eval import evaluator
    from lm_eval.models.huggingface import HFLM

    from harness.models.causal import CausalBackend
    from harness.models.suite import ModelSpec
    from harness.scoring_lm_eval import evaluate_lm_eval

    (t,) = resolve_tasks([f"lm_eval:{task}"], Path.cwd(), {task: data}, num_fewshot=shots)
    backend = CausalBackend(ModelSpec(model=str(model)), device="cpu", batch_size=batch_size)
    records, scores, _ = evaluate_lm_eval(backend, t)
    backend.close()
    lm = HFLM(pretrained=str(model), device="cpu", batch_size=8, dtype="float32")
    ref = ref or lm_eval_task(task, data, shots)
    out = evaluator.evaluate(lm=lm, task_dict={"tasks": {task: ref}, "groups": {}, "group_map": {}}, log_samples=True,
                             verbosity="ERROR")
    return records, scores, out["results"][task], sorted(out["samples"][task], key=lambda s: (s["doc_id"], s["filter"]))


def assert_same_metrics(scores: dict, theirs: dict) -> None:
    """Every metric lm-eval reports (``metric,filter``) with its stderr, under the name this harness gives it: within
    1e-4, or 1e-4 relative for perplexities (exponentials of log-likelihoods that agree within 1e-4)."""
    reported = [k for k in theirs if "," in k and "_stderr" not in k.split(",")[0]]
    assert reported
    for key in reported:
        metric, _, filt = key.partition(",")
        ours = scores[metric if filt == "none" else key]
        assert ours["value"] == pytest.approx(theirs[key], abs=1e-4, rel=1e-4), key
        se = theirs.get(f"{metric}_stderr,{filt}")
        if isinstance(se, float) and math.isfinite(se):
            assert ours["stderr"] == pytest.approx(se, abs=1e-4, rel=1e-4), key
        if ours["kind"] == "discontinuous":
            assert ours["value"] == theirs[key], key  # 0/1 per document: identical decisions, not merely close


@pytest.mark.parametrize("arch", ["mamba", "jamba"])
def test_other_model_kinds_equal_lm_eval(arch, lm_env):
    """A state-space and a hybrid model with experts (tiny, from transformers' config classes) on ARC 2-shot:
    every metric equals lm-eval's HF backend's, every choice's log-likelihood within 1e-4."""
    from harness.testing import build_tiny_model

    model = build_tiny_model(lm_env / arch, arch)
    records, scores, theirs, samples = compare_with_lm_eval("arc_easy", write_rows("arc_easy", lm_env), 2, model)
    assert_same_metrics(scores, theirs)
    ours = [r[0][0] for rec in records for r in rec["resps"]]
    assert ours == pytest.approx([float(r[0][0]) for s in samples for r in s["resps"]], abs=1e-4)


@pytest.mark.parametrize("task", TASKS)
def test_scores_equal_lm_eval(task, lm_env, tiny_llama):
    """Multiple choice and log-likelihood tasks, few-shot: metrics equal, each request's log-likelihood within 1e-4."""
    records, scores, theirs, samples = compare_with_lm_eval(task, write_rows(task, lm_env), SHOTS.get(task, 2),
                                                            tiny_llama)
    assert_same_metrics(scores, theirs)
    ours_ll = [[r[0][0] for r in rec["resps"]] for rec in records]
    theirs_ll = [[float(r[0][0]) for r in s["resps"]] for s in samples]
    assert len(ours_ll) == len(theirs_ll) and all(
        abs(a - b) <= 1e-4 for x, y in zip(ours_ll, theirs_ll) for a, b in zip(x, y))
    if "p_correct" in scores:  # the continuous partners beside lm-eval's metrics
        assert 0 < scores["p_correct"]["value"] < 1 and "brier" in scores and "target_logprob" in scores


def test_every_model_of_a_suite_gets_the_same_shots(lm_env, tiny_llama):
    """The task object is built once per process; its sampler is seeded afresh for each evaluation, so a second
    model (or a second run) sees the shots a fresh lm-eval run draws."""
    from harness.models.causal import CausalBackend
    from harness.models.suite import ModelSpec
    from harness.scoring_lm_eval import evaluate_lm_eval

    data = write_rows("arc_easy", lm_env)
    (t,) = resolve_tasks(["lm_eval:arc_easy"], Path.cwd(), {"arc_easy": data}, num_fewshot=2)
    backend = CausalBackend(ModelSpec(model=str(tiny_llama)), device="cpu")
    first, again = (evaluate_lm_eval(backend, t)[0] for _ in range(2))
    backend.close()
    assert [r["requests"] for r in first] == [r["requests"] for r in again]
    ref = lm_eval_task("arc_easy", data, 2)
    ref.build_all_requests()
    assert list(first[0]["requests"][0]) == list(sorted(ref.instances, key=lambda i: (i.doc_id, i.idx))[0].arguments)


@pytest.mark.slow
def test_gsm8k_both_filters_and_generations_equal_lm_eval(lm_env, long_llama):
    """Generation through two filter pipelines, each reported as lm-eval names it; every generation identical."""
    records, scores, theirs, samples = compare_with_lm_eval("gsm8k", write_rows("gsm8k", lm_env), 5, long_llama, 3)
    assert {"exact_match,strict-match", "exact_match,flexible-extract"} <= set(scores)
    assert_same_metrics(scores, theirs)
    assert [rec["resps"] for rec in records] == [s["resps"] for s in samples if s["filter"] == "strict-match"]
    assert [rec["filtered"]["flexible-extract"] for rec in records] == [
        s["filtered_resps"] for s in samples if s["filter"] == "flexible-extract"]


@pytest.mark.slow
@pytest.mark.parametrize("task, shots", [("drop", 2), ("minerva_math_algebra", 4), ("mmlu_pro_math", 2)])
def test_generation_with_task_python_equals_lm_eval(task, shots, lm_env, long_llama):
    """Generation scored by each task's own Python: DROP's ``process_results`` (em, f1 over answer bags), Minerva
    math's (exact match and ``math_verify``, its shots from ``list_fewshot_samples``), MMLU-Pro's chain of thought
    (``custom-extract`` filter; 2,048 new tokens, so a model with 4,096 positions): every metric equals lm-eval's
    and every generation is identical."""
    from harness.testing import build_tiny_model

    model = long_llama
    if task == "mmlu_pro_math":
        model = build_tiny_model(lm_env / "llama4k", "llama", max_positions=4096)
    records, scores, theirs, samples = compare_with_lm_eval(task, write_rows(task, lm_env), shots, model, 4)
    assert_same_metrics(scores, theirs)
    assert [rec["resps"] for rec in records] == [s["resps"] for s in samples if s["filter"] == samples[0]["filter"]]
    assert [rec["filtered"] for rec in records] == [{s["filter"]: s["filtered_resps"] for s in samples
                                                     if s["doc_id"] == rec["doc_id"]} for rec in records]


def test_wikitext_rolling_equals_lm_eval(lm_env, tiny_llama):
    """Rolling log-likelihood with the task's own Python (detokenizer, process_results): perplexities equal."""
    _, scores, theirs, _ = compare_with_lm_eval("wikitext", write_rows("wikitext", lm_env), 0, tiny_llama)
    assert {"word_perplexity", "byte_perplexity", "bits_per_byte"} <= set(scores)
    assert_same_metrics(scores, theirs)


@pytest.mark.parametrize("task, shots", [("leaderboard_gpqa_main", 0), ("leaderboard_mmlu_pro", 5),
                                         ("leaderboard_musr_team_allocation", 0)])
def test_open_llm_leaderboard_tasks_equal_lm_eval(task, shots, lm_env, tiny_llama):
    """Open LLM Leaderboard v2 tasks with their Python (GPQA shuffles its choices under lm-eval's seeds; MMLU-Pro
    and MuSR render with utils functions): metrics and every log-likelihood equal lm-eval's."""
    import random

    import numpy as np

    data = write_rows(task, lm_env)
    random.seed(0)  # as lm-eval's simple_evaluate, and this harness, seed before building the task
    np.random.seed(1234)
    ref = lm_eval_task(task, data, shots)
    records, scores, theirs, samples = compare_with_lm_eval(task, data, shots, tiny_llama, ref=ref)
    assert_same_metrics(scores, theirs)
    assert [[list(a) for a in r["requests"]] for r in records] == [[list(a) for a in s["arguments"]] for s in samples]
    ours = [r[0][0] for rec in records for r in rec["resps"]]
    assert ours == pytest.approx([float(r[0][0]) for s in samples for r in s["resps"]], abs=1e-4)


def test_truthfulqa_mc2_scored_by_its_own_python(lm_env, tiny_llama):
    """TruthfulQA MC2: lm-eval's ``process_results`` from the task's utils.py (probability mass on true answers)."""
    _, scores, theirs, _ = compare_with_lm_eval("truthfulqa_mc2", write_rows("truthfulqa_mc2", lm_env), 0, tiny_llama)
    assert 0 < scores["acc"]["value"] < 1 and scores["acc"]["kind"] == "continuous"  # a probability mass, not 0/1
    assert_same_metrics(scores, theirs)


def test_a_python_task_class_runs_on_local_rows(lm_env, long_llama):
    """``squad_completion`` is a Python class naming its own dataset: built on the local rows, its generations
    and its ``contains`` metric equal lm-eval's own object's on the same rows."""
    from unittest import mock

    import datasets
    from lm_eval.tasks.squad_completion.task import SQUADCompletion

    data = write_rows("squad_completion", lm_env)
    real = datasets.load_dataset
    with mock.patch.object(datasets, "load_dataset", lambda *_, **__: real("json", data_files=data)):
        ref = SQUADCompletion()
    records, scores, theirs, samples = compare_with_lm_eval("squad_completion", data, 0, long_llama, 2, ref)
    assert "contains" in scores
    assert_same_metrics(scores, theirs)
    assert [r["resps"] for r in records] == [s["resps"] for s in samples]


CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def test_chat_formatted_multiple_choice_equals_lm_eval_and_is_keyed_apart(lm_env, tiny_models, capsys):
    """``--apply-chat-template --fewshot-as-multiturn --system-instruction``: the requests are the tokenizer's chat
    template as lm-eval applies it (scores equal lm-eval's HF backend), and a chat run never reuses a plain one."""
    import shutil

    import yaml
    from lm_eval import evaluator
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from harness.cli import main

    model = lm_env / "chat"
    shutil.copytree(tiny_models["llama"], model)
    tok = AutoTokenizer.from_pretrained(model)
    tok.chat_template = CHAT
    tok.save_pretrained(model)
    data = write_rows("arc_easy", lm_env)
    cfg = lm_env / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "chat", "suite": [{"model": str(model), "label": "t"}], "output":
                                   str(lm_env / "out"), "tasks": ["lm_eval:arc_easy"], "data": {"arc_easy": data}}))
    assert main(["run", str(cfg), "--num-fewshot", "2"]) == 0
    chat = ["--apply-chat-template", "--fewshot-as-multiturn", "--system-instruction", "Answer briefly."]
    assert main(["run", str(cfg), "--num-fewshot", "2", *chat]) == 0
    assert "(1 computed, 0 reused" in capsys.readouterr().out  # the chat run is keyed apart from the plain one
    recs = [json.loads(x) for x in (lm_env / "out" / "models" / "t" / "arc_easy.jsonl").read_text().splitlines()]
    assert recs[0]["requests"][0][0].startswith("<|system|>Answer briefly.\n<|user|>")
    lm = HFLM(pretrained=str(model), device="cpu", batch_size=8, dtype="float32")
    theirs = evaluator.evaluate(lm=lm, task_dict={"tasks": {"arc_easy": lm_eval_task("arc_easy", data, 2)},
                                                  "groups": {}, "group_map": {}}, log_samples=True,
                                apply_chat_template=True, fewshot_as_multiturn=True,
                                system_instruction="Answer briefly.", verbosity="ERROR")
    samples = sorted(theirs["samples"]["arc_easy"], key=lambda s: s["doc_id"])
    assert [[list(a) for a in r["requests"]] for r in recs] == [[list(a) for a in s["arguments"]] for s in samples]
    rows = {r["metric"]: float(r["value"]) for r in __import__("csv").DictReader((lm_env / "out" / "scores.csv").open())}
    assert rows["acc"] == theirs["results"]["arc_easy"]["acc,none"]
    manifest = json.loads((lm_env / "out" / "manifest.json").read_text())
    assert manifest["config"]["run"]["apply_chat_template"] is True


def test_cli_show_prints_lm_evals_own_requests(lm_env, capsys):
    from harness.cli import main

    data = write_rows("winogrande", lm_env)
    assert main(["tasks", "show", "lm_eval:winogrande", "--data", f"validation={data['validation']}",
                 "--data", f"train={data['train']}", "--num-fewshot", "1", "--json", "--n", "2"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    ref = lm_eval_task("winogrande", data, 1)
    ref.build_all_requests(limit=2)
    expected: dict[int, list] = {}
    for inst in sorted(ref.instances, key=lambda i: (i.doc_id, i.idx)):
        expected.setdefault(inst.doc_id, []).append(list(inst.arguments))
    assert [x["requests"] for x in lines] == [expected[d] for d in sorted(expected)]
    assert [x["gold"] for x in lines] == [ref.doc_to_target(d) for d in list(ref.eval_docs)[:2]]


def test_user_python_runs_only_when_trusted(lm_env, tiny_llama, monkeypatch, capsys):
    """A task folder of the user's own whose ``!function`` module writes a file when imported: refused in one line
    naming the file and the flag, nothing imported; with --trust-task-code it runs."""
    import yaml

    from harness.cli import main

    folder = lm_env / "mine"
    folder.mkdir()
    marker = lm_env / "imported"
    (folder / "utils.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n"
                                     "def process_docs(d):\n    return d\n")
    (folder / "mine.yaml").write_text("task: mine_task\ndataset_path: json\ntest_split: test\n"
                                      "output_type: multiple_choice\nprocess_docs: !function utils.process_docs\n"
                                      "doc_to_text: '{{q}}'\ndoc_to_choice: [' yes', ' no']\ndoc_to_target: 0\n")
    rows_file = lm_env / "rows.jsonl"
    rows_file.write_text("".join(json.dumps({"q": f"is {i} even?"}) + "\n" for i in range(4)))
    monkeypatch.setenv("HARNESS_LM_EVAL_TASKS", str(folder))
    cfg = lm_env / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "mine", "suite": [{"model": str(tiny_llama), "label": "t"}],
                                   "tasks": ["lm_eval:mine_task"], "output": str(lm_env / "out")}))
    assert main(["run", str(cfg), "--data", f"test={rows_file}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mine.yaml" in err and "--trust-task-code" in err
    assert not marker.exists() and not (lm_env / "out").exists()
    assert main(["run", str(cfg), "--data", f"test={rows_file}", "--trust-task-code"]) == 0
    assert marker.exists() and (lm_env / "out" / "models" / "t" / "mine_task.jsonl").is_file()


def test_a_dataset_that_cannot_be_had_offline_says_how_to_give_it(lm_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (t,) = resolve_tasks(["lm_eval:arc_easy"], Path.cwd())
    with pytest.raises(HarnessError, match="lm_eval:arc_easy could not be built.*--data SPLIT=FILE") as err:
        prepare(t)
    assert "\n" not in str(err.value)


def test_group_resolves_to_its_tasks_without_touching_data(lm_env):
    tasks = resolve_tasks(["lm_eval:mmlu"], Path.cwd())
    assert len(tasks) == 57 and {t.group for t in tasks} == {"mmlu"}
    assert tasks[0].group_metrics == (("acc", None, True),)  # MMLU's score: acc weighted by subtask size
    assert all(t.spec.output == "multiple_choice" for t in tasks)
    with pytest.raises(HarnessError, match="no lm-eval task, group or tag named 'mmlu_nope'"):
        resolve_tasks(["lm_eval:mmlu_nope"], Path.cwd())


def test_cli_list_counts_what_runs_and_why_not(lm_env, capsys):
    from harness.cli import main

    assert main(["tasks", "list", "--source", "lm_eval", "--match", "arc_e*"]) == 0
    text = capsys.readouterr().out
    total, runnable = (int(n.replace(",", "")) for n in text.split(" lm-eval tasks")[0:1] + [
        text.split(": ")[1].split(" can run")[0]])
    assert runnable / total >= 0.95 and "multimodal" in text and "arc_easy" in text and "│ ok" in text
    assert main(["tasks", "list", "--source", "lm_eval", "--json"]) == 0
    listed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(listed) == total and set(listed[0]) == {"name", "output", "status", "reason", "path"}
    status = {r["name"]: r["status"] for r in listed}
    assert status["gsm8k"] == status["gsm8k_cot_self_consistency"] == status["minerva_math_algebra"] == "ok"


def test_ifeval_names_the_packages_it_needs(lm_env):
    """IFEval's instruction checkers import langdetect and immutabledict from modules its utils.py imports: the
    listing follows those imports, and a run names what to install in one line."""
    import importlib.util

    from harness.tasks.sources.lm_eval import TaskUnavailable
    from harness.tasks.sources.lm_eval_catalogue import catalogue

    missing = [m for m in ("langdetect", "immutabledict") if importlib.util.find_spec(m) is None]
    if not missing:
        pytest.skip("IFEval's packages are installed here, so its one-line refusal cannot be reached")
    (listed,) = [x for x in catalogue() if x.name == "ifeval"]
    assert listed.status == "refused" and all(m in listed.reason for m in missing)
    rows_file = lm_env / "ifeval.jsonl"
    rows_file.write_text(json.dumps({"key": 1, "prompt": "Say hi", "instruction_id_list": ["punctuation:no_comma"],
                                     "kwargs": [{}]}) + "\n")
    (t,) = resolve_tasks(["lm_eval:ifeval"], Path.cwd(), {"ifeval": {"train": str(rows_file)}})
    with pytest.raises(TaskUnavailable, match=f"pip install {missing[0]}") as err:
        prepare(t)
    assert "\n" not in str(err.value)


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
    first = (lm_env / "out" / "scores.csv").read_bytes()
    assert main(["run", str(cfg), "--data", f"validation={data['validation']}"]) == 0
    assert "(0 computed, 1 reused" in capsys.readouterr().out
    assert (lm_env / "out" / "scores.csv").read_bytes() == first  # reused summaries give the same table
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


def test_a_group_is_scored_as_lm_eval_scores_it(lm_env, tiny_llama, monkeypatch):
    """A group of two tasks with ``aggregate_metric_list`` (size-weighted acc): its row in scores.csv equals the
    group score lm-eval's own evaluator reports, value and stderr."""
    import csv

    import lm_eval
    import yaml
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from harness.cli import main

    folder = lm_env / "grp"
    folder.mkdir()
    for name, n in (("ga", 5), ("gb", 3)):
        data = lm_env / f"{name}.jsonl"
        data.write_text("".join(json.dumps({"q": f"{name} question {i}", "a": i % 2}) + "\n" for i in range(n)))
        (folder / f"{name}.yaml").write_text(
            f"task: {name}\ndataset_path: json\ndataset_kwargs: {{data_files: {{test: {data}}}}}\ntest_split: test\n"
            "output_type: multiple_choice\ndoc_to_text: '{{q}}'\ndoc_to_choice: [' no', ' yes']\ndoc_to_target: a\n"
            "metric_list: [{metric: acc}]\n")
    (folder / "g.yaml").write_text("group: g\ntask: [ga, gb]\naggregate_metric_list: [{metric: acc, weight_by_size: "
                                   "true}]\n")
    monkeypatch.setenv("HARNESS_LM_EVAL_TASKS", str(folder))
    cfg = lm_env / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "g", "suite": [{"model": str(tiny_llama), "label": "t"}],
                                   "tasks": ["lm_eval:g"], "output": str(lm_env / "out")}))
    assert main(["run", str(cfg)]) == 0
    rows = {(r["task"], r["aggregate"], r["metric"]): r for r in csv.DictReader((lm_env / "out" / "scores.csv").open())}
    lm = HFLM(pretrained=str(tiny_llama), device="cpu", batch_size=8, dtype="float32")
    theirs = lm_eval.simple_evaluate(model=lm, tasks=["g"], task_manager=TaskManager(include_path=str(folder)),
                                     verbosity="ERROR")["results"]
    assert float(rows[("g", "micro", "acc")]["value"]) == pytest.approx(theirs["g"]["acc,none"], abs=1e-12)
    assert float(rows[("g", "micro", "acc")]["stderr"]) == pytest.approx(theirs["g"]["acc_stderr,none"], abs=1e-9)
    assert rows[("g", "micro", "acc")]["n"] == "8" and rows[("ga", "", "acc")]["group"] == "g"


def test_a_task_whose_data_cannot_be_had_fails_alone(lm_env, tiny_llama, monkeypatch, capsys):
    """Offline, a task without local rows is one FAILED line naming it and ``--data``; the run scores the others
    and exits non-zero."""
    import yaml

    from harness.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = lm_env / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "two", "suite": [{"model": str(tiny_llama), "label": "t"}],
                                   "tasks": ["lm_eval:arc_easy", "lm_eval:piqa"], "output": str(lm_env / "out"),
                                   "data": {"arc_easy": write_rows("arc_easy", lm_env)}}))
    assert main(["run", str(cfg)]) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and failed[0].startswith("FAILED piqa: ") and "--data SPLIT=FILE" in failed[0]
    assert (lm_env / "out" / "models" / "t" / "arc_easy.jsonl").is_file()
    assert not (lm_env / "out" / "models" / "t" / "piqa.jsonl").exists()


SAMPLED = """task: sampled_sum
dataset_path: json
test_split: test
output_type: generate_until
doc_to_text: "Q: {{q}}\\nA:"
doc_to_target: "{{a}}"
repeats: 4
generation_kwargs: {until: ["\\n"], do_sample: true, temperature: 1.0, top_p: 0.95, max_gen_toks: 12}
filter_list:
  - {name: score-first, filter: [{function: take_first}]}
  - {name: maj@4, filter: [{function: majority_vote}, {function: take_first}]}
  - {name: maj@2, filter: [{function: take_first_k, k: 2}, {function: majority_vote}, {function: take_first}]}
metric_list:
  - {metric: exact_match, aggregation: mean, higher_is_better: true}
"""


def test_sampled_repeats_are_the_same_at_any_batch_size(lm_env, tiny_llama, monkeypatch):
    """A task with ``repeats: 4`` and ``do_sample``: every copy of a request draws its own seeded stream, so the
    answers are the same at batch sizes 1 and 8, differ between copies and between seeds; majority vote over
    them runs through lm-eval's filters and is reported under lm-eval's names."""
    from dataclasses import replace

    from harness.models.causal import CausalBackend
    from harness.models.suite import ModelSpec
    from harness.scoring_lm_eval import evaluate_lm_eval

    folder = lm_env / "mine"
    folder.mkdir()
    (folder / "sampled.yaml").write_text(SAMPLED)
    rows_file = lm_env / "rows.jsonl"
    rows_file.write_text("".join(json.dumps({"q": f"{i} + {i} =", "a": str(2 * i)}) + "\n" for i in range(5)))
    monkeypatch.setenv("HARNESS_LM_EVAL_TASKS", str(folder))
    (t,) = resolve_tasks(["lm_eval:sampled_sum"], Path.cwd(), {"sampled_sum": {"test": str(rows_file)}})

    def answers(task, batch_size: int) -> tuple[list, dict]:
        backend = CausalBackend(ModelSpec(model=str(tiny_llama)), device="cpu", batch_size=batch_size)
        records, scores, _ = evaluate_lm_eval(backend, task)
        backend.close()
        return [r["resps"] for r in records], scores

    one, scores = answers(t, 1)
    eight, _ = answers(t, 8)
    assert one == eight
    assert all(len(r[0]) == 4 for r in one)  # lm-eval keeps the four copies' answers of each document
    assert len({a for r in one for a in r[0]}) > 5  # copies (and documents) draw different answers
    other, _ = answers(replace(t, settings=replace(t.settings, seed=7), _built=None), 8)
    assert other != one
    assert {"exact_match,score-first", "exact_match,maj@4", "exact_match,maj@2"} <= set(scores)


def test_sampling_draws_from_hugging_faces_distribution():
    """The engine's draws follow the distribution Hugging Face's temperature, top-k and top-p warpers define
    (computed by transformers itself): 40,000 draws, every token's frequency within 5 standard errors, and no
    token outside the kept set."""
    import torch
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from harness.models.backend import Sampling
    from harness.models.generation import TokenChooser

    logits = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0]])
    for temperature, top_k, top_p in [(1.0, 0, 1.0), (0.7, 0, 0.8), (1.3, 4, 0.95)]:
        scores = TemperatureLogitsWarper(temperature)(None, logits.clone())
        if top_k:
            scores = TopKLogitsWarper(top_k)(None, scores)
        scores = TopPLogitsWarper(top_p)(None, scores)
        expected = torch.softmax(scores, -1)[0].double()
        n = 40_000
        chooser = TokenChooser([Sampling(temperature, top_k, top_p, seed=s) for s in range(n)])
        drawn = chooser(logits.expand(n, -1), list(range(n)))
        freq = torch.bincount(drawn, minlength=logits.shape[-1]).double() / n
        se = (expected * (1 - expected) / n).sqrt()
        assert bool(((freq - expected).abs() <= 5 * se + 1e-12).all()), (temperature, top_k, top_p, freq, expected)
