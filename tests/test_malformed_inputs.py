"""The malformed-input corpus, end to end through the CLI: every case gets a correct result (exit 0) or one
clear line (exit 2; exit 1 where a run records a failed pair and goes on), never a traceback, in bounded
time, and results already in the output folder stay byte-identical. Classes A-F follow docs/reliability.md's
reliability section, which lists every case id below."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import pytest
import yaml

from harness.cli import main
from harness.testing import project_config, write_jsonl

ROWS = [{"q": "x", "opts": ["a", "b"], "gold": 1}, {"q": "y", "opts": ["a", "b"], "gold": 0},
        {"q": "z", "opts": ["a", "b"], "gold": 1}, {"q": "w", "opts": ["a", "b"], "gold": 0}]
GOOD = {"name": "t", "dataset": {"path": "d.jsonl"}, "prompt": "{{q}}", "choices": "{{opts}}", "answer": "{{gold}}",
        "output": "multiple_choice", "metrics": ["acc"]}
GEN = {**GOOD, "output": "generate", "target": "{{q}}", "choices": None, "answer": None, "metrics": ["exact_match"]}
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefg", "bcdefgh"))
Files = dict[str, Union[str, bytes]]


@dataclass
class Case:
    id: str
    cls: str  # A unbounded work, B silently wrong, C data lost, D misleading message, E names as markup, F data paths
    argv: list[str]
    files: Files = field(default_factory=dict)
    rc: int = 2
    expect: str = ""  # a fragment of the error line (rc 2), the failure line (rc 1) or the output (rc 0)
    env: dict[str, str] = field(default_factory=dict)
    setup: Optional[Callable[[Path], None]] = None
    check: Optional[Callable[[Path, str], None]] = None
    rewrites: tuple[str, ...] = ()  # recorded files the case may change (a table refreshed or extended), checked by ``check``


def task(change: Union[dict, str], base: Optional[dict] = None, rows: Optional[list] = None, n: int = 2) -> dict:
    """Files and argv of ``harness tasks show tasks/x.yaml`` for GOOD (or ``base``) changed by ``change``."""
    if isinstance(change, str):
        text = change
    else:
        spec = {**(base or GOOD), **change}
        text = yaml.safe_dump({k: v for k, v in spec.items() if v is not None})
    data = "".join(json.dumps(r) + "\n" for r in (ROWS if rows is None else rows))
    return {"argv": ["tasks", "show", "tasks/x.yaml", "--n", str(n)], "files": {"tasks/x.yaml": text, "tasks/d.jsonl": data}}


def tpl(prompt: str) -> dict:
    return task({"prompt": prompt})


def run(config_change: Optional[dict] = None, *extra: str, files: Optional[Files] = None) -> dict:
    """``harness run config.yaml`` with the baseline config (tiny llama on toy_mc, output results/t) changed."""
    return {"argv": ["run", "config.yaml", *extra], "files": {"config.yaml": ("CONFIG", config_change or {}), **(files or {})}}


def csv_text(rows: list[str], header: str = "model,params,task,metric,value,stderr,n") -> str:
    return "\n".join([header, *rows]) + "\n"


CURVE = [f"m{i},{10 ** (i + 6)},arc_easy,acc,{0.25 + 0.1 * i},0.01,100" for i in range(4)]


def classify(text: str, *extra: str) -> dict:
    return {"argv": ["classify", "s.csv", *extra], "files": {"s.csv": text}}


def lm_eval(results: list[dict], samples: Optional[dict[str, str]] = None) -> dict:
    """A folder of lm-eval results files (one per model) and optional samples files."""
    files: Files = {f"lm/m{i}/results.json": json.dumps(r) for i, r in enumerate(results)}
    files.update(samples or {})
    return {"argv": ["classify", "lm"], "files": files}


def lm_result(size: str = "70m", acc: Any = 0.5, stderr: Any = 0.01, **extra: Any) -> dict:
    return {"results": {"arc_easy": {"alias": "arc_easy", "acc,none": acc, "acc_stderr,none": stderr}},
            "config": {"model_args": f"pretrained=/m/pythia-{size}"}, **extra}


LADDER = [lm_result(s, 0.25 + 0.1 * i) for i, s in enumerate(["70m", "160m", "410m", "1b"])]


def outside(root: Path) -> None:
    (root.parent / f"{root.name}-outside").mkdir(exist_ok=True)
    write_jsonl(root.parent / f"{root.name}-outside" / "d.jsonl", ROWS)


def symlink_out(root: Path) -> None:
    outside(root)
    (root / "tasks" / "link.jsonl").symlink_to(root.parent / f"{root.name}-outside" / "d.jsonl")


def no_weights(root: Path) -> None:
    """./noweights: the baseline model's folder without its weights file."""
    model = Path(yaml.safe_load((root / "results" / "t" / "manifest.json").read_text())["suite"][0]["model"])
    shutil.copytree(model, root / "noweights", ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))


def foreign_tmp(root: Path) -> None:
    (root / "results" / "t" / "notes").mkdir(parents=True, exist_ok=True)
    (root / "results" / "t" / "notes" / ".tmp-mine.txt").write_text("keep me")
    (root / "results" / "t" / ".tmp-draft.md").write_text("keep me too")


def kept_tmp(root: Path, out: str) -> None:
    assert (root / "results" / "t" / "notes" / ".tmp-mine.txt").read_text() == "keep me"
    assert (root / "results" / "t" / ".tmp-draft.md").exists()


def no_raw_script(root: Path, out: str) -> None:
    html = (root / "rep" / "index.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html


CASES = [
    # A. Unbounded work from a task file or config: refused within seconds
    Case("A-alias-bomb-metric-option", "A", **task("name: t\n" + BOMB + "dataset: {path: d.jsonl}\nprompt: '{{q}}'\n"
         "target: '{{q}}'\noutput: generate\nmetrics: [{name: exact_match, ignore_case: *h}]\n"), expect="aliases expand"),
    Case("A-alias-bomb-dataset-args", "A", **task("name: t\n" + BOMB + "dataset: {generator: arithmetic, args: {n: *h}}\n"
         "prompt: '{{a}}'\ntarget: '{{answer}}'\noutput: generate\nmetrics: [exact_match]\n"), expect="aliases expand"),
    Case("A-alias-bomb-config", "A", ["run", "bomb.yaml"], {"bomb.yaml": "name: t\n" + BOMB + "suite: *h\ntasks: [x]\n"},
         expect="aliases expand"),
    Case("A-nesting-20000", "A", **task("a: " + "[" * 20000 + "]" * 20000 + "\n"), expect="nested deeper than 64"),
    Case("A-nesting-unused-file", "A", ["tasks", "list"], {"tasks/deep.yaml": "a: " + "{b: " * 5000 + "1" + "}" * 5000},
         rc=0, expect="nested deeper than 64"),
    Case("A-nesting-unused-file-run", "A", **run(files={"tasks/deep.yaml": "a: " + "[" * 20000 + "]" * 20000}), rc=0,
         expect="0 computed"),
    Case("A-nesting-config", "A", ["run", "deep.yaml"], {"deep.yaml": "name: " + "[" * 3000 + "]" * 3000}, expect="nested"),
    Case("A-tpl-power", "A", **tpl("{{ 9**999999999 }}"), expect="template limit"),
    Case("A-tpl-repeat", "A", **tpl("{{ q * 10**10 }}"), expect="template limit"),
    Case("A-tpl-format-width", "A", **tpl("{{ '{0:>3000000000}'.format(q) }}"), expect="format width"),
    Case("A-tpl-printf-width", "A", **tpl("{{ '%0999999999d' % 1 }}"), expect="format width"),
    Case("A-tpl-printf-star", "A", **tpl("{{ '%*d' % (999999999, 1) }}"), expect="'*' widths"),
    Case("A-tpl-format-filter", "A", **tpl("{{ '%999999999s'|format(q) }}"), expect="format width"),
    Case("A-tpl-nested-format", "A", **tpl("{{ '{:>{w}}'.format(q, w=999999999) }}"), expect="nested fields"),
    Case("A-tpl-center", "A", **tpl("{{ q|center(3000000000) }}"), expect="center would build"),
    Case("A-tpl-ljust", "A", **tpl("{{ q.ljust(3000000000) }}"), expect="ljust would build"),
    Case("A-tpl-expandtabs", "A", **tpl("{{ ('a' ~ '\\t' ~ q).expandtabs(999999999) }}"), expect="expandtabs"),
    Case("A-tpl-indent", "A", **tpl("{{ q|indent(999999999) }}"), expect="indent would build"),
    Case("A-tpl-batch", "A", **tpl("{{ [1]|batch(999999999, 'x')|list }}"), expect="batch would build"),
    Case("A-tpl-join", "A", **tpl("{{ range(100000)|join('x' * 200) }}"), expect="join would build"),
    Case("A-tpl-join-method", "A", **tpl("{{ ('y' * 1000).join((q * 100000)|list) }}"), expect="join would build"),
    Case("A-tpl-replace", "A", **tpl("{{ ('x' * 1000)|replace('x', 'y' * 100000) }}"), expect="replace would build"),
    Case("A-tpl-concat-doubling", "A", **tpl("{% set ns = namespace(s=q) %}{% for i in range(64) %}"
         "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"), expect="'~' would build"),
    Case("A-tpl-plus-doubling", "A", **tpl("{% set ns = namespace(s=q) %}{% for i in range(64) %}"
         "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}"), expect="'+' would build"),
    Case("A-tpl-list-repeat", "A", **tpl("{{ (range(99999)|list) * 101 }}"), expect="repeating a value"),
    Case("A-tpl-emit-loop", "A", **tpl("{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx"
         "{% endfor %}{% endfor %}"), expect="output is longer than"),
    Case("A-tpl-busy-loop", "A", **tpl("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
         "{% endfor %}"), expect="longer than 5 s"),
    Case("A-tpl-recursion", "A", **tpl("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"), expect="recursion too deep"),
    Case("A-tpl-big-int-text", "A", **tpl("{{ (10**3000) * (10**3000) }}"), expect="prompt: row 0"),
    Case("A-tpl-answer-power", "A", **task({"answer": "{{ 9**999999999 }}"}), expect="answer: row 0: template limit"),
    Case("A-tpl-choices-power", "A", **task({"choices": ["{{ q }}", "{{ 7**99999999 }}"]}),
         expect="choices.1: row 0: template limit"),
    Case("A-tpl-random", "A", **tpl("{{ opts|random }}"), expect="No filter named 'random'"),
    Case("A-tpl-lipsum", "A", **tpl("{{ lipsum() }}"), expect="'lipsum' is undefined"),
    Case("A-tpl-append", "A", **tpl("{{ opts.append(1) }}"), expect="prompt: row 0"),

    # B. Results that would be silently wrong: refused, or made right
    Case("B-ambiguous-answer", "B", **task({"answer": "{{gold}}"}, rows=[{"q": "x", "opts": ["2", "0", "1"], "gold": "1"}]),
         expect="ambiguous"),
    Case("B-answer-is-text", "B", **task({"answer_is": "text"}, rows=[{"q": "x", "opts": ["2", "0", "1"], "gold": "1"}]),
         rc=0, expect="choice 2 (gold)"),
    Case("B-answer-is-index", "B", **task({"answer_is": "index"}, rows=[{"q": "x", "opts": ["2", "0", "1"], "gold": "1"}]),
         rc=0, expect="choice 1 (gold)"),
    Case("B-answer-is-text-missing", "B", **task({"answer_is": "text"}), expect="not the text of a choice"),
    Case("B-answer-is-bad", "B", **task({"answer_is": "label"}), expect="answer_is"),
    Case("B-one-choice", "B", **task({"choices": ["{{q}}"]}), expect="at least 2 items"),
    Case("B-no-choices", "B", **task({"choices": []}), expect="choices: row 0"),
    Case("B-empty-choice-list-row", "B", **task({}, rows=[{"q": "x", "opts": [], "gold": 0}]), expect="choices: row 0"),
    Case("B-max-new-tokens-over-context", "B", **run({"tasks": ["long_gen"]}, files={"tasks/long.yaml": yaml.safe_dump(
         {**GEN, "name": "long_gen", "generation": {"max_new_tokens": 4096}}),
         "tasks/d.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS)}), rc=1, expect="leaves no room"),
    Case("B-task-chance-inf", "B", **task({"chance": float("inf")}), expect="chance"),
    Case("B-task-chance-nan", "B", **task({"chance": float("nan")}), expect="chance"),
    Case("B-task-chance-above-1", "B", **task({"chance": 7.5}), expect="chance"),
    Case("B-task-chance-negative", "B", **task({"chance": -3}), expect="chance"),
    Case("B-cli-chance-above-1", "B", **classify(csv_text(CURVE), "--chance", "arc_easy=7.5"), expect="between 0 and 1"),
    Case("B-cli-chance-nan", "B", **classify(csv_text(CURVE), "--chance", "arc_easy=nan"), expect="--chance"),
    Case("B-cli-chance-inf", "B", **classify(csv_text(CURVE), "--chance", "arc_easy=inf"), expect="--chance"),
    Case("B-lm-eval-negative-stderr", "B", **lm_eval([lm_result(stderr=-0.2)]), expect="cannot be negative"),
    Case("B-lm-eval-minus-infinity", "B", **lm_eval([lm_result(acc=float("-inf"))]), expect="not a finite number"),
    Case("B-lm-eval-nan-score", "B", **lm_eval([*LADDER[:2], lm_result("410m", acc=float("nan"))]),
         expect="results.arc_easy.acc,none: not a finite number"),
    Case("B-lm-eval-params-true", "B", **lm_eval([{**r, "config": {**r["config"], "model_num_parameters": True}}
                                                  for r in LADDER]), rc=0, expect="arc_easy"),
    Case("B-lm-eval-params-true-no-name", "B", **lm_eval([{"results": LADDER[0]["results"], "config": {
         "model_args": "pretrained=/m/mymodel", "model_num_parameters": True}}]), expect="no params for model"),
    Case("B-csv-inf-value", "B", **classify(csv_text([*CURVE[:3], "m3,1e9,arc_easy,acc,inf,0.01,100"])),
         expect="must be a finite number"),
    Case("B-csv-negative-stderr", "B", **classify(csv_text([*CURVE[:3], "m3,1e9,arc_easy,acc,0.5,-1,100"])),
         expect="column 'stderr' must be"),
    Case("B-csv-negative-params", "B", **classify(csv_text([*CURVE[:3], "m3,-5,arc_easy,acc,0.5,0.01,100"])),
         expect="column 'params' must be"),
    Case("B-csv-fractional-n", "B", **classify(csv_text([*CURVE[:3], "m3,1e9,arc_easy,acc,0.5,0.01,2.5"])),
         expect="column 'n' must be"),
    Case("B-csv-bool-params", "B", **classify(csv_text([*CURVE[:3], "m3,true,arc_easy,acc,0.5,0.01,100"])),
         expect="not a number"),

    # C. Data lost or overwritten: never
    Case("C-foreign-tmp-files-kept", "C", **run(), rc=0, expect="0 computed", setup=foreign_tmp, check=kept_tmp),
    Case("C-label-collision", "C", **run({"suite": [{"model": "TINY", "label": "small model"},
                                                    {"model": "TINY", "label": "small_model"}]}),
         expect="would share the results folder"),
    Case("C-same-label-twice", "C", **run({"suite": [{"model": "TINY", "label": "a"}, {"model": "TINY", "label": "a"}]}),
         expect="share the name"),
    Case("C-output-is-a-file", "C", **run({}, "--output", "afile", files={"afile": "x"}), expect="not a directory"),
    Case("C-output-inside-a-file", "C", **run({}, "--output", "afile/sub", files={"afile": "x"}),
         expect="not a directory"),

    # D. One clear line where a traceback or a misleading message was
    Case("D-batch-size-word", "D", **run({}, "--batch-size", "abc"), expect="expected 'auto' or a whole number"),
    Case("D-batch-size-zero", "D", **run({}, "--batch-size", "0"), expect="run.batch_size"),
    Case("D-limit-zero", "D", **run({}, "--limit", "0"), expect="at least 1"),
    Case("D-limit-word", "D", **run({}, "--limit", "ten"), expect="at least 1"),
    Case("D-seed-word", "D", **run({}, "--seed", "x"), expect="--seed"),
    Case("D-device-banana", "D", **run({}, "--device", "banana"), expect="unknown device 'banana'"),
    Case("D-device-cuda-on-cpu", "D", **run({}, "--device", "cuda"), expect="CUDA is not available"),
    Case("D-device-cuda-index", "D", **run({}, "--device", "cuda:x"), expect="unknown device"),
    Case("D-dtype-int8", "D", **run({}, "--dtype", "int8"), expect="invalid choice"),
    Case("D-unknown-command", "D", ["evaluate"], expect="invalid choice"),
    Case("D-missing-config-argument", "D", ["run"], expect="required: config"),
    Case("D-config-not-found", "D", ["run", "nope.yaml"], expect="file not found"),
    Case("D-config-unknown-name", "D", ["run", "quickstrat"], expect="no config file or packaged config"),
    Case("D-config-not-mapping", "D", ["run", "c.yaml"], {"c.yaml": "- a\n"}, expect="must be a mapping"),
    Case("D-config-unknown-field", "D", **run({"taks": ["toy_mc"]}), expect="did you mean 'tasks'"),
    Case("D-config-empty-suite", "D", **run({"suite": []}), expect="the suite is empty"),
    Case("D-config-empty-tasks", "D", **run({"tasks": []}), expect="tasks"),
    Case("D-config-bad-name", "D", **run({"name": "a b"}), expect="name"),
    Case("D-config-run-not-mapping", "D", **run({"run": 5}), expect="run"),
    Case("D-config-unknown-ladder", "D", **run({"suite": {"ladder": "huge"}}), expect="ladder"),
    Case("D-model-path-is-file", "D", **run({"suite": [{"model": "./afile"}]}, files={"afile": "x"}),
         expect="is a file"),
    Case("D-model-path-missing", "D", **run({"suite": [{"model": "./nomodel"}]}), expect="suite.0.model"),
    Case("D-model-folder-empty", "D", **run({"suite": [{"model": "./empty"}]}), setup=lambda r: (r / "empty").mkdir(),
         expect="has no config.json"),
    Case("D-model-config-corrupt", "D", **run({"suite": [{"model": "./broken"}]}),
         setup=lambda r: ((r / "broken").mkdir(), (r / "broken" / "config.json").write_text("{nope")), rc=1,
         expect="is not a valid JSON file"),
    Case("D-model-weights-missing", "D", **run({"suite": [{"model": "./noweights"}]}),
         setup=lambda r: no_weights(r), rc=1, expect="could not load model"),
    Case("D-task-not-found", "D", **run({"tasks": ["toy_mcq"]}), expect="did you mean 'toy_mc'"),
    Case("D-task-unknown-field", "D", **task({"promt": "x"}), expect="did you mean 'prompt'"),
    Case("D-task-unknown-metric", "D", **task({"metrics": ["accuracy"]}), expect="unknown metric 'accuracy'"),
    Case("D-task-metric-wrong-output", "D", **task({"metrics": ["exact_match"]}), expect="not defined for output"),
    Case("D-task-yaml-syntax", "D", **task("name: [unclosed\n"), expect="invalid YAML"),
    Case("D-task-yaml-tab", "D", **task("name: t\n\tprompt: x\n"), expect="invalid YAML"),
    Case("D-task-python-tag", "D", **task("name: !!python/object/apply:os.system ['echo x']\n"), expect="invalid YAML"),
    Case("D-task-not-utf8", "D", **{**task({}), "files": {"tasks/x.yaml": b"name: \xff\xfe\n"}}, expect="UTF-8"),
    Case("D-task-empty-file", "D", **task(""), expect="must be a mapping"),
    Case("D-task-bad-jinja", "D", **tpl("{{ q "), expect="invalid template"),
    Case("D-task-undefined-var", "D", **tpl("{{ question }}"), expect="prompt: row 0"),
    Case("D-task-sandbox-escape", "D", **tpl("{{ q.__class__.__mro__ }}"), expect="sandbox"),
    Case("D-task-undefined-filter", "D", **tpl("{{ q|shout }}"), expect="invalid template"),
    Case("D-task-filter-type-error", "D", **tpl("{{ q|round }}"), expect="prompt: row 0"),
    Case("D-answer-superscript", "D", **task({"answer": "²"}), expect="answer: row 0"),
    Case("D-answer-double-minus", "D", **task({"answer": "--1"}), expect="answer: row 0"),
    Case("D-answer-out-of-range", "D", **task({"answer": "{{gold + 5}}"}), expect="answer: row 0"),
    Case("D-answer-float", "D", **task({}, rows=[{"q": "x", "opts": ["a", "b"], "gold": 1.5}]), expect="answer: row 0"),
    Case("D-answer-bool", "D", **task({}, rows=[{"q": "x", "opts": ["a", "b"], "gold": True}]), expect="answer: row 0"),
    Case("D-data-missing", "D", **task({"dataset": {"path": "nope.jsonl"}}), expect="data file not found"),
    Case("D-data-corrupt-line", "D", **{**task({}), "files": {"tasks/x.yaml": yaml.safe_dump(GOOD),
         "tasks/d.jsonl": '{"q": "x", "opts": ["a", "b"], "gold": 1}\n{"q": broken\n'}}, expect="line 2"),
    Case("D-data-row-not-object", "D", **task({}, rows=[[1, 2]]), expect="row 1"),
    Case("D-data-empty", "D", **task({}, rows=[]), expect="dataset is empty"),
    Case("D-data-not-utf8", "D", **{**task({}), "files": {"tasks/x.yaml": yaml.safe_dump(GOOD),
         "tasks/d.jsonl": b'{"q": "\xff"}\n'}}, expect="not valid UTF-8"),
    Case("D-data-json-not-list", "D", **{**task({"dataset": {"path": "d.json"}}),
         "files": {"tasks/x.yaml": yaml.safe_dump({**GOOD, "dataset": {"path": "d.json"}}), "tasks/d.json": "{}"}},
         expect="list of objects"),
    Case("D-data-unsupported-type", "D", **{**task({"dataset": {"path": "d.txt"}}), "files": {
         "tasks/x.yaml": yaml.safe_dump({**GOOD, "dataset": {"path": "d.txt"}}), "tasks/d.txt": "x"}},
         expect="unsupported data file type"),
    Case("D-data-parquet-corrupt", "D", **{**task({}), "files": {
         "tasks/x.yaml": yaml.safe_dump({**GOOD, "dataset": {"path": "d.parquet"}}), "tasks/d.parquet": b"PAR1junk"}},
         expect="could not read parquet"),
    Case("D-generator-unknown", "D", **task({"dataset": {"generator": "nope"}}), expect="unknown generator"),
    Case("D-generator-bad-arg", "D", **task({"dataset": {"generator": "arithmetic", "args": {"dgts": 2}}}),
         expect="no argument"),
    Case("D-fewshot-k-over-pool", "D", **task({"num_fewshot": 9}), expect="num_fewshot"),
    Case("D-limit-below-fewshot-k", "D", **task({"num_fewshot": 3}, n=1), rc=0, expect="end of context"),
    Case("D-show-n-zero", "D", **task({}, n=0), expect="at least 1"),
    Case("D-validate-limit-negative", "D", ["tasks", "validate", "--limit", "-1"], expect="--limit"),
    Case("D-csv-truncated-row", "D", **classify(csv_text([*CURVE, "m4,1e10,arc_easy,ac"])), expect="row 6: 4 fields"),
    Case("D-run-scores-truncated", "D", ["classify", "results/t"], setup=lambda r: (r / "results" / "t" / "scores.csv")
         .write_text((r / "results" / "t" / "scores.csv").read_text()[:-25]), expect="fields where the header has"),
    Case("D-csv-missing-column", "D", **classify("model,task\nm,t\n"), expect="missing column"),
    Case("D-csv-not-number", "D", **classify(csv_text([*CURVE[:3], "m3,1e9,arc_easy,acc,high,0.01,100"])),
         expect="not a number"),
    Case("D-csv-empty", "D", **classify(""), expect="not a readable CSV"),
    Case("D-csv-binary", "D", ["classify", "s.csv"], {"s.csv": b"\x00\xff\xfe" * 50}, expect="s.csv"),
    Case("D-results-missing", "D", ["classify", "nowhere"], expect="no such file or directory"),
    Case("D-results-empty-folder", "D", ["classify", "emptydir"], setup=lambda r: (r / "emptydir").mkdir(),
         expect="no .json files"),
    Case("D-lm-eval-config-string", "D", **lm_eval([{**r, "config": "hf", "model_name": f"pythia-{s}"}
                                                    for r, s in zip(LADDER, ["70m", "160m", "410m", "1b"])]),
         rc=0, expect="arc_easy"),
    Case("D-lm-eval-samples-broken-line", "D", **lm_eval(LADDER, {"lm/m0/samples_arc_easy_2024-01-01T00-00-00.jsonl":
         '{"doc_id": 0, "acc": 1.0}\n{"doc_id": 1, "acc": \n'}), expect="line 2"),
    Case("D-lm-eval-string-scores", "D", **lm_eval([{**r, "results": {"arc_easy": {"acc,none": str(v)}}}
                                                   for r, v in zip(LADDER, [0.25, 0.35, 0.45, 0.55])]),
         rc=0, expect="arc_easy"),
    Case("D-lm-eval-word-score", "D", **lm_eval([lm_result(acc="high")]), expect="not a number: 'high'"),
    Case("D-lm-eval-not-json", "D", ["classify", "lm"], {"lm/r.json": "{nope"}, expect="not valid JSON"),
    Case("D-lm-eval-no-results", "D", ["classify", "lm"], {"lm/a.json": "{}", "lm/b.json": "[]"},
         expect="2 .json file(s) read"),
    Case("D-bootstrap-negative", "D", **classify(csv_text(CURVE), "--bootstrap", "-5"), expect="--bootstrap"),
    Case("D-size-negative", "D", **classify(csv_text(CURVE), "--size", "m0=-1"), expect="--size"),
    Case("D-size-garbage", "D", **classify(csv_text(CURVE), "--size", "m0"), expect="--size"),
    Case("D-size-unknown-model", "D", **classify(csv_text(CURVE), "--size", "zz=5"), expect="not in the results"),
    Case("D-x-unknown", "D", **classify(csv_text(CURVE), "--x", "depth"), expect="invalid choice"),
    Case("D-compare-missing", "D", ["compare", "a.csv", "b.csv"], {"a.csv": csv_text(CURVE)},
         expect="no such file or directory"),
    Case("D-report-out-is-file", "D", ["report", "s.csv", "--out", "afile"], {"s.csv": csv_text(CURVE), "afile": "x"},
         expect="afile"),

    # E. Names are data, never console markup
    Case("E-task-closing-tag", "E", **classify(csv_text([r.replace("arc_easy", "hellaswag[/]") for r in CURVE])),
         rc=0, expect="hellaswag[/]"),
    Case("E-task-colour-tag", "E", **classify(csv_text([r.replace("arc_easy", "mmlu[red]_stem") for r in CURVE])),
         rc=0, expect="mmlu[red]_stem"),
    Case("E-model-markup-label", "E", **run({"suite": [{"model": "TINY", "label": "[bold]m[/]"}]}, "--output", "r2"),
         rc=0, expect="[bold]m[/]"),
    Case("E-missing-path-with-markup", "E", ["run", "[red]c.yaml"], expect="[red]c.yaml"),
    Case("E-report-html-script", "E", ["report", "s.csv", "--out", "rep"],
         {"s.csv": csv_text([r.replace("arc_easy", "<script>alert(1)</script>") for r in CURVE])}, rc=0,
         expect="report:", check=no_raw_script),
    Case("E-report-dollar-names", "E", ["report", "s.csv", "--out", "rep"],
         {"s.csv": csv_text([r.replace("arc_easy", "cost_$x^2$_$").replace(",m", ",$m") for r in CURVE])}, rc=0,
         expect="report:"),

    # F. What a task file may read
    Case("F-path-parent", "F", **task({"dataset": {"path": "../x-outside.jsonl"}}), expect="outside the task's folder"),
    Case("F-path-absolute", "F", **task({"dataset": {"path": "/etc/hostname.csv"}}), expect="outside the task's folder"),
    Case("F-path-symlink-out", "F", **task({"dataset": {"path": "link.jsonl"}}), setup=symlink_out,
         expect="outside the task's folder"),
    Case("F-hf-folder-outside", "F", **task({"dataset": {"hf": {"path": ".."}}}), expect="dataset.hf.path"),
    Case("F-subfolder-allowed", "F", **{**task({"dataset": {"path": "data/d.jsonl"}}), "files": {
         "tasks/x.yaml": yaml.safe_dump({**GOOD, "dataset": {"path": "data/d.jsonl"}}),
         "tasks/data/d.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS)}}, rc=0, expect="end of context"),
]


# ---- round 3: what an attacker and a careless user found (issue "Reliability round 3")

def evil_archive(root: Path) -> None:
    """An archive whose member has an empty path component: ``.../benchmark_tasks//ABS/pwned_task.json`` would
    write to the absolute path ABS (here a folder beside the project) if joined naively."""
    import io
    import tarfile

    target = root.parent / f"{root.name}-pwned"
    with tarfile.open(root / "evil.tar.gz", "w:gz") as tar:
        for name in (f"bigbench/benchmark_tasks//{target}/pwned_task.json", "bigbench/benchmark_tasks/ok/task.json"):
            data = json.dumps({"name": "ok", "description": "d", "keywords": [], "metrics": ["exact_str_match"],
                               "examples": [{"input": "1+1", "target": "2"}]}).encode()
            info = tarfile.TarInfo(f"BIG-bench-main/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def nothing_outside(root: Path, out: str) -> None:
    assert not (root.parent / f"{root.name}-pwned").exists()


def user_folder(root: Path) -> None:
    (root / "mine").mkdir()
    (root / "mine" / "scores.csv").write_text("my,own\n1,2\n")
    (root / "mine" / "manifest.json").write_text('{"mine": true}')


def user_folder_kept(root: Path, out: str) -> None:
    assert (root / "mine" / "scores.csv").read_text() == "my,own\n1,2\n"
    assert (root / "mine" / "manifest.json").read_text() == '{"mine": true}' and not (root / "mine" / "models").exists()


def task_data_kept(root: Path, out: str) -> None:
    assert (root / "tasks" / "mc.jsonl").read_text().count("\n") == 8 and not (root / "tasks" / "models").exists()


def lookalike_tmp(root: Path) -> None:
    (root / "results" / "t" / ".tmp-budget.csv.2024").write_text("a user's file")
    (root / "results" / "t" / ".tmp-scores.csv.notapid").write_text("another")


def lookalike_kept(root: Path, out: str) -> None:
    assert (root / "results" / "t" / ".tmp-budget.csv.2024").read_text() == "a user's file"
    assert (root / "results" / "t" / ".tmp-scores.csv.notapid").exists()


def user_report(root: Path) -> None:
    (root / "site" / "figures").mkdir(parents=True)
    (root / "site" / "index.html").write_text("<p>my page</p>")


def user_report_kept(root: Path, out: str) -> None:
    assert (root / "site" / "index.html").read_text() == "<p>my page</p>" and not list((root / "site" / "figures").iterdir())


def rows_of_both_configs(root: Path, out: str) -> None:
    text = (root / "results" / "t" / "scores.csv").read_text()
    assert "toy_mc," in text and "toy_gen," in text


def tokens_refreshed(root: Path, out: str) -> None:
    import csv

    rows = list(csv.DictReader((root / "results" / "t" / "scores.csv").open()))
    assert rows and all(float(r["tokens"]) == 5e9 and r["step"] == "7" for r in rows)


def no_raw_control(root: Path, out: str) -> None:
    assert "\x1b" not in out and "\x07" not in out and "\x00" not in out
    assert "forged" not in [line.strip()[:6] for line in out.splitlines()]


def deep(n: int) -> str:
    return '{"q": ' + "[" * n + "]" * n + "}"


def truncated_noted(root: Path, out: str) -> None:
    assert "toy_mc," in (root / "results" / "t" / "scores.csv").read_text()  # the earlier config's rows are kept
    recs = [json.loads(line) for line in (root / "results" / "t" / "models" / "llama" / "long_mc.jsonl").read_text().splitlines()]
    assert recs[0].get("truncated") is True and "truncated" not in recs[1]


LM_DIR = {"HARNESS_LM_EVAL_TASKS": "lmtasks"}


CASES += [
    # A. unbounded work
    Case("A-gen-lookup-infeasible", "A", **task({"dataset": {"generator": "lookup", "args": {"pairs": 5, "keys": "ab",
         "key_len": 1}}}), expect="more distinct keys"),
    Case("A-gen-arith-choices-infeasible", "A", **task({"dataset": {"generator": "arithmetic", "args": {
         "digits": 1, "choices": 40}}}), expect="more distractors"),
    Case("A-gen-n-huge", "A", **task({"dataset": {"generator": "arithmetic", "args": {"n": 10 ** 12}}}),
         expect="dataset.args.n"),
    Case("A-gen-n-float-text", "A", **task("name: t\ndataset: {generator: arithmetic, args: {n: 1e12}}\nprompt: '{{a}}'\n"
         "target: '{{answer}}'\noutput: generate\nmetrics: [exact_match]\n"), expect="whole number"),
    Case("A-gen-sequence-length", "A", **task({"dataset": {"generator": "sequence", "args": {"length": 2 * 10 ** 9}}}),
         expect="dataset.args.length"),
    Case("A-gen-lookup-work", "A", **task({"dataset": {"generator": "lookup", "args": {"n": 1000000, "pairs": 1000}}}),
         expect="at most 10,000,000"),
    Case("A-tpl-sum-lists", "A", **tpl("{{ ([[0]]*300000)|sum(start=[]) }}"), expect="longer than 5 s"),
    Case("A-json-row-deep", "A", **{**task({"dataset": {"path": "d.json"}}), "files": {
         "tasks/x.yaml": yaml.safe_dump({**GOOD, "dataset": {"path": "d.json"}}), "tasks/d.json": "[" + deep(100000) + "]"}},
         expect="nested too deep"),
    Case("A-jsonl-row-deep", "A", **{**task({}), "files": {"tasks/x.yaml": yaml.safe_dump(GOOD),
         "tasks/d.jsonl": deep(100000) + "\n"}}, expect="line 1: invalid JSON: nested too deep"),
    Case("A-lm-eval-results-deep", "A", ["classify", "lm"], {"lm/r.json": deep(100000)}, expect="nested too deep"),
    Case("A-bootstrap-huge", "A", **classify(csv_text(CURVE), "--bootstrap", "1000000000"), expect="--bootstrap"),
    Case("A-seed-huge", "A", **run({}, "--seed", "1180591620717411303424"), expect="--seed"),
    Case("A-config-seed-huge", "A", **run({"run": {"device": "cpu", "seed": 1180591620717411303424}}),
         expect="run.seed"),
    Case("A-prompt-longer-than-context", "A", **run({"tasks": ["long_mc"]}, files={
         "tasks/long.yaml": yaml.safe_dump({**GOOD, "name": "long_mc"}), "tasks/d.jsonl": "".join(
             json.dumps(r) + "\n" for r in [{"q": "x " * 100000, "opts": ["a", "b"], "gold": 1}, *ROWS[1:]])}),
         rc=0, expect="longer than the model's context", check=truncated_noted, rewrites=("scores.csv",)),

    # B. silently wrong results
    Case("B-identical-choices", "B", **task({}, rows=[{"q": "x", "opts": ["a", "a"], "gold": 0}]),
         expect="every choice is the same text"),
    Case("B-answer-text-two-choices", "B", **task({"answer_is": "text"}, rows=[{"q": "x", "opts": ["a", "a", "b"],
         "gold": "a"}]), expect="the text of 2 choices"),
    Case("B-empty-target", "B", **task({"target": "{{ '' }}"}, base=GEN), expect="target: row 0"),
    Case("B-tokens-inf", "B", **run({"suite": [{"model": "TINY", "tokens": float("inf")}]}), expect="suite.0.tokens"),
    Case("B-flops-nan", "B", **run({"suite": [{"model": "TINY", "flops": float("nan")}]}), expect="suite.0.flops"),
    Case("B-resume-refreshes-metadata", "B", **run({"suite": [{"model": "TINY", "tokens": 5e9, "step": 7}]}), rc=0,
         expect="0 computed", check=tokens_refreshed, rewrites=("scores.csv",)),
    Case("B-duplicate-task-name", "B", **run({"tasks": ["toy_mc"]}, files={"tasks/copy.yaml": yaml.safe_dump(
         {**GOOD, "name": "toy_mc"}), "tasks/d.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS)}),
         expect="is defined in both"),
    Case("B-csv-model-two-sizes", "B", **classify(csv_text([*CURVE, "m0,5e9,arc_easy,acc_norm,0.3,0.01,100"])),
         expect="two values of params"),
    Case("B-csv-three-values", "B", **classify(csv_text([*CURVE, CURVE[1].replace("0.35", "0.5"),
         CURVE[1].replace("0.35", "0.6")])), expect="has 3 rows for arc_easy / acc"),
    Case("B-csv-literal-nan", "B", **classify(csv_text([*CURVE[:3], "m3,1e9,arc_easy,acc,nan,0.01,100"])),
         expect="got 'nan'"),
    Case("B-lm-eval-two-files-one-model", "B", ["classify", "lm"], {f"lm/r{i}.json": json.dumps(lm_result(acc=v))
         for i, v in enumerate([0.3, 0.6])}, expect="in two results files"),
    Case("B-cli-chance-unknown-task", "B", **classify(csv_text(CURVE), "--chance", "arc_esay=0.25"),
         expect="did you mean 'arc_easy'"),
    Case("B-data-without-lm-eval-task", "B", **run({}, "--data", "validation=x.jsonl"), expect="lm-eval tasks only"),
    Case("B-data-unknown-lm-eval-task", "B", **run({"tasks": ["toy_mc", "lm_eval:arc_easy"],
         "data": {"arc_esay": {"test": "x.jsonl"}}}), expect="data.arc_esay"),

    # C. data lost or overwritten
    Case("C-output-foreign-folder", "C", **run({}, "--output", "mine"), setup=user_folder,
         expect="not a results folder", check=user_folder_kept),
    Case("C-output-dot", "C", **run({}, "--output", "."), expect="not a results folder"),
    Case("C-output-task-folder", "C", **run({"output": "tasks"}), expect="not a results folder", check=task_data_kept),
    Case("C-tmp-lookalikes-kept", "C", **run(), rc=0, expect="0 computed", setup=lookalike_tmp, check=lookalike_kept),
    Case("C-report-foreign-folder", "C", ["report", "s.csv", "--out", "site"], {"s.csv": csv_text(CURVE)},
         setup=user_report, expect="holds no report", check=user_report_kept),
    Case("C-second-config-keeps-rows", "C", **run({"name": "other", "tasks": ["toy_gen"]}, files={
         "tasks/gen.yaml": yaml.safe_dump({**GEN, "name": "toy_gen", "generation": {"max_new_tokens": 2}}),
         "tasks/d.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS)}), rc=0, expect="1 computed",
         check=rows_of_both_configs, rewrites=("scores.csv",)),

    # D. one clear line
    Case("D-config-top-level-typo", "D", ["run", "c.yaml"], {"c.yaml": "name: t\nsutie: []\ntasks: [toy_mc]\n"},
         expect="sutie: unknown field; did you mean 'suite'"),
    Case("D-metric-unknown", "D", **classify(csv_text(CURVE), "--metric", "nosuch"), expect="no metric 'nosuch'"),
    Case("D-task-flag-unknown", "D", **classify(csv_text(CURVE), "--task", "arc_hard"), expect="--task"),
    Case("D-generator-keys-empty", "D", **task({"dataset": {"generator": "lookup", "args": {"keys": ""}}}),
         expect="dataset.args.keys"),
    Case("D-generator-op-minus", "D", **task({"dataset": {"generator": "modular", "args": {"op": "-"}}}),
         expect="op must be + or *"),
    Case("D-lm-eval-include-cycle", "D", ["tasks", "show", "lm_eval:cyc"], {"lmtasks/a.yaml": "task: cyc\ninclude: b.yaml\n",
         "lmtasks/b.yaml": "include: a.yaml\n"}, env=LM_DIR, expect="Include cycle"),
    Case("D-lm-eval-include-outside-runs-python", "D", ["tasks", "show", "lm_eval:outs"], {"lmtasks/c.yaml":
         "task: outs\ninclude: ../elsewhere/x.yaml\n", "elsewhere/x.yaml": "dataset_path: json\n"
         "process_docs: !function utils.go\n", "elsewhere/utils.py": "import os\nos.system('touch pwned')\n"},
         env=LM_DIR, expect="--trust-task-code"),

    # E. names are data
    Case("E-label-escape-sequences", "E", **run({"suite": [{"model": "TINY", "label": "m\x1b[2J\x1b]0;title\x07"}]},
         "--output", "r4"), rc=0, expect="m\\x1b[2J", check=no_raw_control),
    Case("E-label-newline-forges-a-line", "E", **run({"suite": [{"model": "TINY", "label": "m\nforged: ok"}]},
         "--output", "r5"), rc=0, expect="m\\nforged", check=no_raw_control),
    Case("E-label-nul", "E", **run({"suite": [{"model": "TINY", "label": "m\x00n"}]}, "--output", "r6"), rc=0,
         expect="m\\x00n", check=no_raw_control),
    Case("E-csv-names-escape", "E", **classify(csv_text([r.replace("arc_easy", "arc\x1b[31m").replace("m", "\x1b]0;t\x07m", 1)
         for r in CURVE])), rc=0, expect="arc\\x1b[31m", check=no_raw_control),
    Case("E-argument-escape", "E", ["run", "\x1b[2Jc.yaml"], expect="\\x1b[2Jc.yaml", check=no_raw_control),

    # F. where files are written
    Case("F-archive-member-absolute", "F", ["bigbench", "fetch", "--source", "evil.tar.gz"], rc=0, expect="1 JSON task",
         setup=evil_archive, check=nothing_outside),
]


def _env_root_case() -> Case:
    c = Case("F-data-path-env-allows", "F", **task({"dataset": {"path": "../../outside/d.jsonl"}}), rc=0,
             expect="end of context", setup=lambda r: (
                 (r.parent / "outside").mkdir(exist_ok=True), write_jsonl(r.parent / "outside" / "d.jsonl", ROWS)))
    c.env = {"HARNESS_DATA_PATH": "OUTSIDE"}
    return c


CASES.append(_env_root_case())
CASES.append(Case("F-config-data-roots-allows", "F", **run({"tasks": ["far"], "data_roots": ["../far"]}, "--output", "r3",
                  files={"tasks/far.yaml": yaml.safe_dump({**GOOD, "name": "far", "dataset": {"path": "../../far/d.jsonl"}})}),
                  rc=0, expect="1 computed",
                  setup=lambda r: ((r.parent / "far").mkdir(exist_ok=True), write_jsonl(r.parent / "far" / "d.jsonl", ROWS))))
CASES.append(Case("F-config-without-data-roots", "F", **run({"tasks": ["far"]}, "--output", "r3",
                  files={"tasks/far.yaml": yaml.safe_dump({**GOOD, "name": "far", "dataset": {"path": "../../far/d.jsonl"}})}),
                  expect="data_roots"))


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every recorded file (the manifest describes the latest run, so each run rewrites it)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input(case: Case, project, tiny_llama, tmp_path, monkeypatch, capsys):
    root = tmp_path / "project"
    shutil.copytree(project, root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.replace("OUTSIDE", str(tmp_path / "outside")))
    for rel, content in case.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):  # ("CONFIG", change)
            content = yaml.safe_dump(project_config(tiny_llama, content[1]))
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if case.setup:
        case.setup(root)
    before = _snapshot(root / "results" / "t")
    t0 = time.perf_counter()
    try:
        rc = main(case.argv)
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    seconds = time.perf_counter() - t0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    assert rc == case.rc, text[-2000:]
    assert seconds < 60
    if case.rc == 2:
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert len(lines) == 1 and "error:" in lines[0] and case.expect in lines[0], lines[-5:]  # never wrapped
    elif case.rc == 1:
        assert any(case.expect in line for line in text.splitlines() if line.startswith("FAILED")), text[-2000:]
    else:
        assert case.expect in text, text[-2000:]
    after = _snapshot(root / "results" / "t")
    kept = {k: v for k, v in before.items() if k not in case.rewrites}
    assert {k: v for k, v in after.items() if k in kept} == kept  # nothing recorded earlier changed
    if case.check:
        case.check(root, text)


def test_corpus_size_and_classes_match_the_reliability_notes():
    import re
    from collections import Counter

    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)
    assert all(c.id.startswith(c.cls + "-") for c in CASES)
    readme = (Path(__file__).parent.parent / "docs" / "reliability.md").read_text()
    listed = dict(re.findall(r"\*\*([A-F])\. [^*]+\*\* \((\d+)\)", readme))
    assert {k: int(v) for k, v in listed.items()} == dict(Counter(c.cls for c in CASES))
    assert f"({len(CASES)} cases" in readme
