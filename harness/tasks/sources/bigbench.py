"""BIG-bench JSON tasks (fetched once by ``bigbench_fetch``): indexed, and formatted exactly as BIG-bench's ``json_task.py`` formats them (prefixes, choices appended in its
seeded order, n-shot contexts drawn with its seeded sampler, duplicate examples dropped).

Nothing of BIG-bench is committed to this repository: the data (and its canary string) is read from the user's
cache (``$HARNESS_CACHE/bigbench``) or from ``$BIGBENCH_ROOT`` at run time."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

from harness.errors import HarnessError
from harness.extraction import BIGBENCH_OUTPUT_REGEX
from harness.files import atomic_write, cache_dir, digest, read_json

SEED = 42  # BIG-bench's default random_seed for formatting and shots


def root() -> Path:
    """The folder of BIG-bench task folders: ``$BIGBENCH_ROOT`` (an unpacked ``benchmark_tasks``), else the cache."""
    env = os.environ.get("BIGBENCH_ROOT")
    return Path(env) if env else cache_dir() / "bigbench" / "benchmark_tasks"


def require_root() -> Path:
    path = root()
    if not path.is_dir():
        raise HarnessError("BIG-bench tasks not found: run 'harness bigbench fetch' (downloads 358 MB once) or set "
                           "BIGBENCH_ROOT to an unpacked bigbench/benchmark_tasks folder", source=path)
    return path


# ---------------------------------------------------------------- reading tasks


def read_task(path: Path) -> dict[str, Any]:
    """One ``task.json`` (its subtasks, in BIG-bench's sorted order, under ``subtasks`` when it has no examples)."""
    data = read_json(path, "a readable task.json")
    if not isinstance(data, dict):
        raise HarnessError("a task.json must hold an object", source=path)
    for key in ("canary", "name", "description", "keywords"):
        if key not in data:
            raise HarnessError(f"missing '{key}'", source=path, where=key)
    if "examples" not in data:
        subs = sorted(p for p in path.parent.glob("*/task.json"))
        if not subs:
            raise HarnessError("a task needs 'examples' or subtask folders", source=path, where="examples")
        data["subtasks"] = [read_task(p) for p in subs]
    return data


def subtask_names(data: dict[str, Any]) -> list[str]:
    return [str(s["name"]) for s in data.get("subtasks", [])]


def _check_examples(data: dict[str, Any], source: Path) -> list[dict[str, Any]]:
    """BIG-bench's own checks, as one-line errors naming the task and field."""
    name = data["name"]
    examples = data.get("examples")
    if not isinstance(examples, list) or not examples:
        raise HarnessError(f"task {name}: no examples", source=source, where="examples")
    for key in ("metrics", "preferred_score"):
        if key not in data:
            raise HarnessError(f"task {name}: missing '{key}'", source=source, where=key)
    mc = "multiple_choice_grade" in data["metrics"]
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict) or "input" not in ex or not ("target" in ex or "target_scores" in ex):
            raise HarnessError(f"task {name}: each example needs 'input' and 'target' or 'target_scores'",
                               source=source, where=f"examples.{i}")
        if mc and not isinstance(ex.get("target_scores"), dict):
            raise HarnessError(f"task {name}: multiple_choice_grade needs 'target_scores' in every example",
                               source=source, where=f"examples.{i}.target_scores")
    return examples


def format_examples(data: dict[str, Any], num_fewshot: int = 0, source: Path = Path("task.json"),
                    seed: int = SEED) -> list[dict[str, Any]]:
    """The task's examples as BIG-bench presents them to a model, in BIG-bench's order. Each document: ``input``
    (task prefix, shots and prompt, ending with the output prefix), ``targets``, and for multiple choice
    ``choices`` (in the file's order, as BIG-bench scores them) with their ``target_scores``; ``doc_id`` is the
    example's index among the distinct examples."""
    examples = _check_examples(data, source)
    seen: set[str] = set()
    distinct = []
    for ex in examples:  # duplicates dropped, order kept (as BIG-bench)
        key = json.dumps(ex)
        if key not in seen:
            seen.add(key)
            distinct.append(ex)
    if len(distinct) < num_fewshot + 1:
        raise HarnessError(f"task {data['name']}: {len(distinct)} distinct examples are too few for {num_fewshot} shots",
                           source=source, where="examples")
    formatted = [_format(copy.deepcopy(ex), data, seed, source, i) for i, ex in enumerate(distinct)]
    for i, ex in enumerate(formatted):
        ex["doc_id"] = i
    prefix = str(data.get("task_prefix", ""))
    out = _nshot(formatted, num_fewshot, seed, data.get("few_shot_example_separator", "\n"))
    for doc in out:
        doc["input"] = prefix + doc["input"]
    return out


def _format(sample: dict[str, Any], data: dict[str, Any], seed: int, source: Path, i: int) -> dict[str, Any]:
    """``json_task.default_format_fn``: a fresh generator per example, so the choice order depends only on the
    sorted choices."""
    rng = np.random.RandomState(seed=seed)
    choice_prefix = data.get("choice_prefix", "\n  choice: ")
    if "target_scores" in sample:
        scores = sample["target_scores"]
        if not isinstance(scores, dict) or not scores:
            raise HarnessError(f"task {data['name']}: target_scores must be a non-empty object", source=source,
                               where=f"examples.{i}.target_scores")
        if data.get("append_choices_to_input", True):
            permuted = rng.permutation(sorted(scores.keys()))
            sample["input"] = sample["input"] + choice_prefix + choice_prefix.join(permuted)
        if "target" not in sample:
            top, low = max(scores.values()), min(scores.values())
            if (len(scores) == 1 and top == 0) or (len(scores) > 1 and top <= low):
                raise HarnessError(f"task {data['name']}: no correct choice (every score equal)", source=source,
                                   where=f"examples.{i}.target_scores")
            sample["target"] = [k for k, v in scores.items() if v == top][0]
        sample["choice"] = list(scores.keys())
    sample["input"] = data.get("example_input_prefix", "\nQ: ") + sample["input"] + \
        data.get("example_output_prefix", "\nA: ")
    if not isinstance(sample["target"], list):
        sample["target"] = [sample["target"]]
    return sample


def _nshot(samples: list[dict[str, Any]], num_fewshot: int, seed: int, separator: str) -> list[dict[str, Any]]:
    """``json_task.make_nshot_dataset`` with ``max_examples`` = all examples (as ``evaluate_fixed_shot`` calls it):
    0-shot keeps the order; n-shot visits the queries in a seeded permutation, each with ``num_fewshot`` other examples
    and one of each shot's targets, drawn from the same generator."""
    rng = np.random.RandomState(seed=seed)
    if num_fewshot == 0:
        return [_document(s, s["input"]) for s in samples]
    order = rng.permutation(len(samples))  # rng.choice(samples, len(samples), replace=False)
    keys = [_same(x) for x in samples]
    out = []
    for q in order:
        sample = samples[q]
        valid = [x for x, key in zip(samples, keys) if key != keys[q]]
        picked = [valid[j] for j in rng.permutation(len(valid))[:num_fewshot]]
        context = separator.join(ex["input"] + _pick(rng, ex["target"]) for ex in picked)
        out.append(_document(sample, context + separator + sample["input"]))
    return out


def _same(sample: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in sample.items() if k != "doc_id"}, sort_keys=True)


def _pick(rng: np.random.RandomState, targets: list[str]) -> str:
    """``rng.choice(targets)``: one draw from the shared generator even when there is one target."""
    return str(np.asarray(targets)[rng.randint(0, len(targets))])


def _document(sample: dict[str, Any], text: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"doc_id": sample["doc_id"], "input": text, "targets": [str(t) for t in sample["target"]]}
    if "choice" in sample:
        doc["choices"] = [str(c) for c in sample["choice"]]
        doc["target_scores"] = [float(sample["target_scores"][c]) for c in sample["choice"]]
        doc["gold"] = int(np.argmax(doc["target_scores"]))
    return doc


def task_path(task: str) -> Path:
    path = require_root() / task / "task.json"
    if not path.is_file():
        raise HarnessError(f"no BIG-bench JSON task named '{task}' (programmatic tasks are not supported)",
                           source=require_root(), where="dataset.bigbench.task")
    return path


def part(data: dict[str, Any], subtask: Optional[str], path: Path) -> dict[str, Any]:
    """The task itself, or one of its subtasks by name (``name`` or ``task:name``)."""
    subs = {str(s["name"]).split(":")[-1]: s for s in data.get("subtasks", [])}
    if subtask is None:
        if subs:
            raise HarnessError(f"task {data['name']} has subtasks; name one ({', '.join(sorted(subs))})", source=path,
                               where="dataset.bigbench.subtask")
        return data
    if subtask not in subs:
        raise HarnessError(f"task {data['name']} has no subtask '{subtask}' (has: {', '.join(sorted(subs)) or 'none'})",
                           source=path, where="dataset.bigbench.subtask")
    return subs[subtask]


def documents(task: str, subtask: Optional[str] = None, num_fewshot: int = 0) -> list[dict[str, Any]]:
    """A BIG-bench task's formatted examples as documents; each carries the task's canary, so anything built
    from them keeps it."""
    path = task_path(task)
    own = path.parent / str(subtask) / "task.json"  # a subtask's folder is its short name: read it alone
    alone = read_task(own) if subtask and own.is_file() else None
    if alone is not None and str(alone["name"]).split(":")[-1] == subtask:
        data = chosen = alone
    else:
        data = read_task(path)
        chosen = part(data, subtask, path)
    canary = str(data.get("canary", ""))
    docs = format_examples(chosen, num_fewshot, path)
    for doc in docs:
        doc["canary"] = canary
    return sorted(docs, key=lambda d: d["doc_id"])


# ---------------------------------------------------------------- the index


def index() -> list[dict[str, Any]]:
    """Every JSON task under the root: name, subtasks, examples, preferred score, metrics, keywords, canary, and
    each (sub)task's fields but its examples (``parts``: what naming and scoring a task needs). Cached under
    ``$HARNESS_CACHE/bigbench``, keyed by the root and every task file's size and modification time, so listing
    and resolving read no task file after the first time."""
    base = require_root()
    cached = cache_dir() / "bigbench" / f"index-{digest(str(base.resolve()))}.json"  # never written into BIGBENCH_ROOT
    files = sorted([*base.glob("*/task.json"), *base.glob("*/*/task.json")])
    stamp = digest([(str(f.relative_to(base)), f.stat().st_mtime_ns, f.stat().st_size) for f in files])
    if cached.is_file():
        try:
            saved = json.loads(cached.read_text())
            if saved.get("stamp") == stamp and saved.get("root") == str(base.resolve()):
                return list(saved["tasks"])
        except (OSError, ValueError, AttributeError):
            pass  # a damaged cache is rebuilt
    entries: list[dict[str, Any]] = []
    for path in sorted(base.glob("*/task.json")):
        try:
            data = read_task(path)
        except HarnessError as err:
            entries.append({"name": path.parent.name, "error": str(err)})
            continue
        parts = data.get("subtasks") or [data]
        entries.append({"name": path.parent.name, "subtasks": subtask_names(data),
                        "examples": sum(len(p.get("examples") or []) for p in parts),
                        "preferred_score": parts[0].get("preferred_score"),
                        "metrics": sorted({m for p in parts for m in p.get("metrics") or []}),
                        "keywords": list(data.get("keywords") or []), "path": str(path),
                        "canary": str(data.get("canary", "")),
                        "parts": [{k: v for k, v in p.items() if k not in ("examples", "subtasks")} for p in parts]})
    atomic_write(cached, json.dumps({"stamp": stamp, "root": str(base.resolve()), "tasks": entries}).encode())
    return entries


# ---------------------------------------------------------------- as tasks of this harness


def task_specs(entry: str) -> list[tuple[dict[str, Any], Path, Optional[str]]]:
    """``bigbench:TASK``, ``bigbench:TASK:SUBTASK`` or a glob over task names → (task spec, task.json, group) for
    each (sub)task. A task with subtasks is a group. Multiple choice is scored on BIG-bench's choices with an
    empty delimiter (its prompts end with the output prefix); generation decodes without stopping early, and its
    metrics score the answer BIG-bench's post-processing extracts (stop string, then output regex). Reads the
    cached index, not the task files."""
    import fnmatch

    _, _, rest = entry.partition(":")
    task, _, subtask = rest.partition(":")
    entries = {e["name"]: e for e in index()}
    names = sorted(name for name in entries if fnmatch.fnmatchcase(name, task))
    if not names:
        raise HarnessError(f"no BIG-bench JSON task matches '{task}'", source=require_root(), where="tasks")
    out: list[tuple[dict[str, Any], Path, Optional[str]]] = []
    for name in names:
        e, path = entries[name], task_path(name)
        if "error" in e:
            read_task(path)  # raises the file's own one-line error
            raise HarnessError(e["error"], source=path)  # the file changed since: its error as indexed
        data = {"name": name, "subtasks": e["parts"]} if e["subtasks"] else e["parts"][0]
        subs: list[Optional[str]] = [subtask] if subtask else [s.split(":")[-1] for s in e["subtasks"]] or [None]
        group = f"bigbench.{name}" if e["subtasks"] else None
        for sub in subs:
            out.extend((spec, path, group) for spec in specs(name, sub, part(data, sub, path), e["canary"]))
    return out


# BIG-bench's metrics → this harness's (None: not computed here; bleurt needs a model checkpoint, macro_f1 a
# corpus-wide label set)
GENERATIVE = {"exact_str_match": ["exact_str_match"], "case_insensitive_str_match": ["case_insensitive_str_match"],
              "bleu": ["bleu"], "rouge": ["rouge1", "rouge2", "rougeLsum"], "sequence_f1": ["sequence_f1"],
              "numeric_match_with_0_1_relative_error": ["numeric_match_with_0_1_relative_error"], "bleurt": None}
MULTIPLE_CHOICE = {"multiple_choice_grade": ["multiple_choice_grade"], "macro_f1": None}
SCORING = {"log_likelihood": ["target_logprob"]}
PREFERRED = {"rougeLsum": "rougeLsum", "log_likelihood": "target_logprob"}  # preferred_score → metric, else same name


def specs(task: str, subtask: Optional[str], data: dict[str, Any], canary: str = "") -> list[dict[str, Any]]:
    """This harness's task specs for a BIG-bench (sub)task: BIG-bench's prompt and its scores beside continuous
    ones. A task BIG-bench scores both ways (choices and generation) becomes two tasks: the one holding its
    preferred score under the plain name, the other with ``.mc`` or ``.gen`` appended."""
    metrics = [str(m) for m in data.get("metrics") or []]
    unknown = [m for m in metrics if m not in {**GENERATIVE, **MULTIPLE_CHOICE, **SCORING}]
    if unknown:
        raise HarnessError(f"task {data['name']}: unknown metric '{unknown[0]}'", source=task_path(task),
                           where="metrics")
    preferred = str(data.get("preferred_score"))
    mc, gen = any(m in MULTIPLE_CHOICE for m in metrics), any(m in GENERATIVE for m in metrics)
    if mc and gen:
        modes = ["mc", "gen"] if preferred in MULTIPLE_CHOICE else ["gen", "mc"]
    else:
        modes = ["mc"] if mc else ["gen"] if gen else ["ll"]
    chosen = PREFERRED.get(preferred, preferred)
    out = []
    for rank, mode in enumerate(modes):
        spec = _spec(task, subtask, data, mode, suffix=f".{mode}" if rank else "")
        names = [m if isinstance(m, str) else m["name"] for m in spec["metrics"]]
        spec["preferred_metric"] = chosen if rank == 0 and chosen in names else None
        if canary:
            spec["canary"] = canary
        missing = [m for m in metrics if {**GENERATIVE, **MULTIPLE_CHOICE}.get(m, [""]) is None]
        if missing:
            spec["description"] += f" Not computed here: {', '.join(missing)}."
        out.append(spec)
    return out


def _spec(task: str, subtask: Optional[str], data: dict[str, Any], mode: str, suffix: str = "") -> dict[str, Any]:
    """One spec: ``mode`` is ``mc`` (BIG-bench's choices), ``gen`` (greedy generation, answer extracted as
    BIG-bench does) or ``ll`` (the target's log-prob only)."""
    # task names are [A-Za-z0-9_.-]: "atikampé_to" becomes "atikamp__to" in results (the subtask keeps its name)
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", f"bigbench.{task}" + (f".{subtask}" if subtask else "") + suffix)
    spec: dict[str, Any] = {
        "name": name, "prompt": "{{input}}", "target_delimiter": "",
        "description": f"BIG-bench {task}{':' + subtask if subtask else ''} (preferred score: "
                       f"{data.get('preferred_score')}). " + str(data.get("description", ""))[:400],
        "keywords": [str(k) for k in data.get("keywords") or []],
        "dataset": {"bigbench": {"task": task, "subtask": subtask}}}
    wanted = [m for m in data.get("metrics") or []]
    if mode == "mc":
        spec.update(output="multiple_choice", choices="{{choices}}", answer="{{gold}}", answer_is="index",
                    choice_scores="{{target_scores}}",
                    metrics=["multiple_choice_grade", "p_correct", "brier", "target_logprob"])
    elif mode == "gen":
        stop, regex = data.get("stop_string"), data.get("output_regex")
        ours = [n for m in wanted for n in GENERATIVE.get(m) or []]
        spec.update(output="generate", target="{{targets[0]}}", references="{{targets}}",
                    metrics=[*ours, "target_logprob", "char_edit_distance", "token_edit_distance"],
                    # decoded without stopping early; BIG-bench cuts afterwards (stop string, then the regex: its
                    # default when the task gives neither)
                    generation={"until": [], "max_new_tokens": 64, "stop_string": stop,
                                "output_regex": regex if regex or stop else BIGBENCH_OUTPUT_REGEX})
    else:  # log_likelihood only
        spec.update(output="loglikelihood", target="{{targets[0]}}", references="{{targets}}",
                    metrics=["target_logprob", "target_logprob_per_token"])
    return spec
