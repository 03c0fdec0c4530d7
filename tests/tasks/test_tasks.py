"""Task YAML: accepted as the README documents it, rendered exactly, and every bad input named by file and field/row."""

import json

import pytest

from harness.errors import HarnessError
from harness.tasks import GENERATORS, load_task_file, prepare, resolve_tasks
from harness.tasks.generators import generate

ARC_LIKE = """
name: arc_like
dataset: {hf: {path: arc_data, split: test}}
prompt: "Question: {{question}}\\nAnswer:"
choices: "{{choices.text}}"
answer: "{{choices.label.index(answerKey)}}"
output: multiple_choice
metrics: [acc, acc_norm, p_correct, brier, target_logprob]
"""


def test_design_md_multiple_choice_example_via_datasets_load_dataset(tmp_path):
    data = tmp_path / "arc_data"
    data.mkdir()
    rows = [{"question": "Which is a color?", "choices": {"text": ["red", "cat", "run"], "label": ["A", "B", "C"]},
             "answerKey": "A"},
            {"question": "Which is an animal?", "choices": {"text": ["blue", "dog", "jump"], "label": ["A", "B", "C"]},
             "answerKey": "B"}]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "arc.yaml").write_text(ARC_LIKE)
    (task,) = load_task_file(tmp_path / "arc.yaml")
    insts = prepare(task).instances
    assert insts[1].context == "Question: Which is an animal?\nAnswer:"
    assert insts[1].continuations == [" blue", " dog", " jump"] and insts[1].gold == 1


def test_design_md_generate_example(tmp_path):
    (tmp_path / "t.yaml").write_text("""
name: arithmetic_3d_add
version: 1
description: Three-digit addition; the answer is generated greedily.
dataset:
  generator: arithmetic
  args: {op: "+", digits: 3, n: 50, seed: 0}
prompt: "Q: What is {{a}} + {{b}}?\\nA:"
target: "{{answer}}"
output: generate
generation: {until: ["\\n"], max_new_tokens: 8}
num_fewshot: 2
fewshot: {split: train, seed: 1234}
metrics: [exact_match, token_edit_distance, target_logprob]
""")
    (task,) = load_task_file(tmp_path / "t.yaml")
    insts = prepare(task).instances
    assert len(insts) == 50
    a = insts[0]
    assert a.context.count("Q: What is") == 3 and a.context.endswith("?\nA:")
    shots = a.context.split("\n\n")[:2]
    assert all(s.startswith("Q: What is") and "\nA: " in s for s in shots)
    assert int(a.target) == sum(int(x) for x in a.context.rsplit("What is ", 1)[1].split("?")[0].split(" + "))


def test_fewshot_never_includes_the_document_itself(tmp_path):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"q": f"q{i}", "a": f"a{i}"}) + "\n" for i in range(6)))
    (tmp_path / "t.yaml").write_text("name: fs\ndataset: {path: d.jsonl}\nprompt: '{{q}}'\ntarget: '{{a}}'\n"
                                     "output: generate\nnum_fewshot: 5\nfewshot: {seed: 3}\nmetrics: [exact_match]\n")
    (task,) = load_task_file(tmp_path / "t.yaml")
    for inst in prepare(task).instances:
        shots = inst.context.split("\n\n")[:-1]
        assert len(shots) == 5 and f"q{inst.doc_id} a{inst.doc_id}" not in shots
    again = prepare(task).instances
    assert [i.context for i in again] == [i.context for i in prepare(task).instances]  # deterministic


def test_the_shots_older_names_read_as_num_fewshot(tmp_path):
    """``num_fewshot`` is the one name for the number of shots (native tasks, BIG-bench, lm-eval); task files
    written with the older ``fewshot: {k: N}`` and BIG-bench's ``shots: N`` read the same."""
    from harness.tasks.schema import BigBenchRef

    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"q": f"q{i}", "a": f"a{i}"}) + "\n" for i in range(6)))
    body = "dataset: {path: d.jsonl}\nprompt: '{{q}}'\ntarget: '{{a}}'\noutput: generate\nmetrics: [exact_match]\n"
    (tmp_path / "old.yaml").write_text("name: fs\n" + body + "fewshot: {k: 2, seed: 3}\n")
    (tmp_path / "new.yaml").write_text("name: fs\n" + body + "num_fewshot: 2\nfewshot: {seed: 3}\n")
    (old,), (new,) = load_task_file(tmp_path / "old.yaml"), load_task_file(tmp_path / "new.yaml")
    assert old.spec == new.spec and old.spec.num_fewshot == 2 and old.hash == new.hash
    assert [i.context for i in prepare(old).instances] == [i.context for i in prepare(new).instances]
    assert BigBenchRef(task="t", shots=2) == BigBenchRef(task="t", num_fewshot=2)


def test_task_group_subtasks(tmp_path):
    (tmp_path / "g.yaml").write_text("""
name: arith
prompt: "{{a}}{{op}}{{b}}="
target: "{{answer}}"
target_delimiter: ""
output: generate
metrics: [exact_match]
dataset: {generator: arithmetic, args: {n: 5}}
subtasks:
  - {name: arith_add, dataset: {args: {op: "+"}}}
  - {name: arith_mul, dataset: {args: {op: "*"}}}
""")
    tasks = load_task_file(tmp_path / "g.yaml")
    assert [t.name for t in tasks] == ["arith_add", "arith_mul"] and {t.group for t in tasks} == {"arith"}
    assert "*" in prepare(tasks[1]).instances[0].context
    assert tasks[0].hash != tasks[1].hash


def test_resolve_by_name_glob_group_and_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tasks").mkdir()
    for name in ("alpha_one", "alpha_two", "beta"):
        (tmp_path / "tasks" / f"{name}.yaml").write_text(
            f"name: {name}\ndataset: {{generator: modular}}\nprompt: '{{{{a}}}}'\ntarget: '{{{{answer}}}}'\n"
            "output: generate\nmetrics: [exact_match]\n")
    names = [t.name for t in resolve_tasks(["alpha_*", "beta", "tasks/alpha_one.yaml"], tmp_path)]
    assert names == ["alpha_one", "alpha_two", "beta"]
    with pytest.raises(HarnessError, match="no task named 'gamma'"):
        resolve_tasks(["gamma"], tmp_path)


def test_generators_are_deterministic_and_split_aware():
    for name in GENERATORS:
        a, b = generate(name, "test", {"n": 20}), generate(name, "test", {"n": 20})
        assert a == b and len(a) == 20
        assert generate(name, "train", {"n": 20}) != a
    docs = generate("arithmetic", "test", {"digits": 2, "pad": True, "choices": 4, "n": 30})
    for d in docs:
        assert len(d["a"]) == 2 and len(d["answer"]) == 3
        assert d["options"][d["label"]] == d["answer"] and len(set(d["options"])) == 4


GOOD = {"name": "t", "dataset": {"path": "d.jsonl"}, "prompt": "{{q}}", "choices": "{{opts}}", "answer": "{{gold}}",
        "output": "multiple_choice", "metrics": ["acc"]}
ROWS = [{"q": "x", "opts": ["a", "b"], "gold": 1}, {"q": "y", "opts": ["a", "b"], "gold": 0}]

# (description, change to GOOD or raw text, rows, expected fragment of the one-line error)
BAD = [
    ("yaml syntax", "name: [unclosed\n", None, "invalid YAML"),
    ("not a mapping", "- a\n- b\n", None, "must be a mapping"),
    ("unknown field", {"promt": "x"}, None, "promt: unknown field"),
    ("wrong type", {"metrics": "acc"}, None, "metrics"),
    ("unknown metric", {"metrics": ["accuracy"]}, None, "unknown metric 'accuracy'"),
    ("metric for wrong output", {"metrics": ["exact_match"]}, None, "not defined for output"),
    ("unknown output", {"output": "classify"}, None, "output"),
    ("missing prompt", {"prompt": None}, None, "prompt"),
    ("bad name", {"name": "has space"}, None, "name"),
    ("two sources", {"dataset": {"path": "d.jsonl", "generator": "arithmetic"}}, None, "exactly one of"),
    ("unknown generator", {"dataset": {"generator": "nope"}}, None, "unknown generator"),
    ("unknown generator arg", {"dataset": {"generator": "arithmetic", "args": {"dgts": 2}}}, None, "no argument"),
    ("bad jinja", {"prompt": "{{ q "}, None, "invalid template"),
    ("missing variable", {"prompt": "{{ question }}"}, None, "prompt: row 0"),
    ("sandbox", {"prompt": "{{ q.__class__.__mro__ }}"}, None, "sandbox"),
    ("answer out of range", {"answer": "{{gold + 5}}"}, None, "answer: row 0"),
    ("choices not a list", {"choices": "{{q}}"}, None, "choices: row 0"),
    ("missing data file", {"dataset": {"path": "nope.jsonl"}}, None, "data file not found"),
    ("corrupt row", {}, '{"q": "x", "opts": ["a","b"], "gold": 1}\n{"q": broken\n', "line 2"),
    ("row not object", {}, '[1, 2]\n', "row 1"),
    ("empty dataset", {}, "", "dataset is empty"),
    ("non utf-8", {}, b'{"q": "\xff\xfe"}\n', "not valid UTF-8"),
    ("fewshot too large", {"num_fewshot": 5}, None, "num_fewshot"),
    ("generate without target", {"output": "generate", "metrics": ["exact_match"]}, None, "needs the field 'target'"),
    ("empty file", "", None, "must be a mapping"),
    ("tab indentation", "name: t\n\tprompt: x\n", None, "invalid YAML"),
    ("answer text not a choice", {"answer": "{{q}}"}, None, "answer: row 0"),
    ("negative answer", {"answer": -1}, None, "answer: row 0"),
    ("until not a list", {"output": "generate", "target": "{{q}}", "metrics": ["exact_match"],
                          "generation": {"until": 5}}, None, "generation.until"),
    ("max_new_tokens zero", {"output": "generate", "target": "{{q}}", "metrics": ["exact_match"],
                             "generation": {"max_new_tokens": 0}}, None, "generation.max_new_tokens"),
    ("negative num_fewshot", {"num_fewshot": -1}, None, "num_fewshot"),
    ("shots under both names", {"num_fewshot": 1, "fewshot": {"k": 1}}, None, "give 'num_fewshot' only"),
    ("unknown fewshot field", {"fewshot": {"shots": 2}}, None, "fewshot.shots: unknown field"),
    ("subtasks not a list", {"subtasks": "a"}, None, "subtasks"),
    ("duplicate subtasks", {"subtasks": [{"name": "a"}, {"name": "a"}]}, None, "unique"),
    ("subtask error named", {"subtasks": [{"name": "a"}, {"name": "b", "metrics": ["nope"]}]}, None,
     "subtasks.1.metrics.0"),
    ("unsupported data type", {"dataset": {"path": "d.txt"}}, None, "unsupported data file type"),
    ("path dataset with split", {"num_fewshot": 1, "fewshot": {"split": "train"}}, None, "fewshot.split"),
    ("hf dataset missing", {"dataset": {"hf": {"path": "no_such_local_dataset_dir"}}}, None, "could not load dataset"),
    ("unknown metric option", {"metrics": [{"name": "acc", "ignore_case": True}]}, None, "has no option"),
    ("undefined filter", {"prompt": "{{ q | shout }}"}, None, "invalid template"),
    ("version wrong type", {"version": [1]}, None, "version"),
    ("python object tag", "name: !!python/object/apply:os.system ['echo pwned']\n", None, "invalid YAML"),
    ("one choice", {"choices": ["{{q}}"]}, None, "choices: row 0: choices must render to a list of at least 2"),
    ("no choices", {"choices": []}, None, "choices: row 0"),
    ("superscript answer", {"answer": "²"}, None, "answer: row 0"),
    ("double minus answer", {"answer": "--1"}, None, "answer: row 0"),
    ("chance above 1", {"chance": 7.5}, None, "chance"),
    ("chance infinite", {"chance": float("inf")}, None, "chance"),
    ("chance negative", {"chance": -3}, None, "chance"),
]


@pytest.mark.parametrize("desc,change,rows,fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_task_files_give_one_line_errors(tmp_path, desc, change, rows, fragment):
    import yaml

    path = tmp_path / "t.yaml"
    if isinstance(change, str):
        path.write_text(change)
    else:
        spec = {**GOOD, **change}
        path.write_text(yaml.safe_dump({k: v for k, v in spec.items() if v is not None}))
    data = rows if rows is not None else "".join(json.dumps(r) + "\n" for r in ROWS)
    (tmp_path / "d.jsonl").write_bytes(data if isinstance(data, bytes) else data.encode())
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(HarnessError) as info:
        for task in load_task_file(path):
            prepare(task)
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg
    assert str(tmp_path) in msg  # names the file (the task file or its data file)


def test_huge_prompt_is_truncated_from_the_left_not_an_error(tmp_path, tiny_llama):
    from harness.models.causal import CausalBackend
    from harness.models.suite import ModelSpec

    b = CausalBackend(ModelSpec(model=str(tiny_llama)), device="cpu")
    huge = "the cat sat on the mat " * 2000  # far beyond the 256-token context
    (short, full) = b.loglikelihood([(huge[-400:], " dog"), (huge, " dog")])
    assert full.n_tokens == short.n_tokens and abs(full.logprob) > 0
    assert len(b.generate([__import__("harness").GenerationRequest(huge, ("\n",), 4)])) == 1
    b.close()


WINO = """name: fill_blank
dataset: {path: wino.jsonl}
prompt: "{{ sentence.split('_')[0] }}{{ choice }}"
choices: ["{{option1}}", "{{option2}}"]
answer: "{{ answer|int - 1 }}"
target: "{{ sentence.split('_')[1].strip() }}"
multiple_input: true
output: multiple_choice
metrics: [acc, acc_norm, p_correct]
"""


def test_multiple_input_renders_a_context_per_choice_and_scores_the_shared_target(tmp_path, tiny_llama):
    """The README's multiple-input example: one context per choice, the same continuation after each; the
    log-prob of each (context, target) pair equals a direct computation; shots show the gold choice's context."""
    from harness.models.causal import CausalBackend
    from harness.models.suite import ModelSpec
    from harness.scoring import evaluate

    rows = [{"sentence": f"Ann gave Bo the cup {i} because _ was thirsty.", "option1": "Ann", "option2": "Bo",
             "answer": str(1 + i % 2)} for i in range(4)]
    (tmp_path / "wino.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "t.yaml").write_text(WINO)
    (task,) = load_task_file(tmp_path / "t.yaml")
    inst = prepare(task).instances[1]
    assert inst.requests == [("Ann gave Bo the cup 1 because Ann", " was thirsty."),
                             ("Ann gave Bo the cup 1 because Bo", " was thirsty.")]
    assert inst.gold == 1 and inst.context == inst.contexts[1]
    backend = CausalBackend(ModelSpec(model=str(tiny_llama)), device="cpu", batch_size=4)
    records = evaluate(backend, prepare(task))
    direct = backend.loglikelihood(inst.requests)
    backend.close()
    assert records[1]["logprobs"] == pytest.approx([d.logprob for d in direct], abs=1e-5)
    assert records[1]["contexts"] == list(inst.contexts) and records[1]["target"] == " was thirsty."[1:]
    (tmp_path / "t2.yaml").write_text(WINO.replace("name: fill_blank", "name: fill_blank_2shot") +
                                      "num_fewshot: 2\n")
    (shot_task,) = load_task_file(tmp_path / "t2.yaml")
    shot = prepare(shot_task).instances[0]
    gold_contexts = {f"Ann gave Bo the cup {i} because {['Ann', 'Bo'][i % 2]} was thirsty.\n\n" for i in range(1, 4)}
    prefix = shot.contexts[0][: -len("Ann gave Bo the cup 0 because Ann")]
    assert sum(g in prefix for g in gold_contexts) == 2 and shot.contexts[1].startswith(prefix)


def test_multiple_input_is_multiple_choice_only(tmp_path):
    (tmp_path / "t.yaml").write_text(WINO.replace("output: multiple_choice", "output: generate")
                                     .replace("metrics: [acc, acc_norm, p_correct]", "metrics: [exact_match]"))
    with pytest.raises(HarnessError, match="multiple_input is a kind of multiple choice"):
        load_task_file(tmp_path / "t.yaml")
