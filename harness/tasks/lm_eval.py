"""lm-evaluation-harness task YAMLs, unchanged: read from the installed ``lm-eval`` package (or folders of lm-eval
YAMLs), turned into this harness's tasks with the same contexts and continuations lm-eval builds.

Reading: ``include`` is merged as lm-eval merges it (included files first, the file's own keys win; shallow);
``!function`` is kept as text and never imported: a known name maps to a re-implementation in
``lm_eval_functions``, any other is a one-line error. Names: ``lm_eval:TASK`` (a task, a group, a tag, or a glob).
Documents: the task's HF dataset (``dataset_path``, ``dataset_name``, ``dataset_kwargs``) or local files per split
(``--data SPLIT=FILE``), rendered here in lm-eval's order (description, shots from its sampler, question)."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import yaml

from harness.errors import HarnessError
from harness.files import _BoundedLoader, atomic_write, cache_dir, digest
from harness.tasks.lm_eval_functions import FUNCTIONS, MULTIPLE_INPUT

FUNCTION_PREFIX = "!function "  # how a ``!function`` value is kept in a config (text, never imported)
MAX_INCLUDE_DEPTH = 16
OUTPUTS = {"multiple_choice": "multiple_choice", "loglikelihood": "loglikelihood",
           "loglikelihood_rolling": "perplexity", "generate_until": "generate"}
# lm-eval metric → this harness's, per output type; continuous partners are added to every task
METRICS = {
    "multiple_choice": {"acc": "acc", "acc_norm": "acc_norm", "acc_bytes": "acc_bytes", "brier_score": "brier",
                        "f1": "f1", "mcc": "mcc"},
    "loglikelihood": {"acc": "is_greedy", "perplexity": "target_perplexity"},
    "perplexity": {"word_perplexity": "word_perplexity", "byte_perplexity": "byte_perplexity",
                   "bits_per_byte": "bits_per_byte"},
    "generate": {"exact_match": "exact_match", "bleu": "bleu"},
}
DEFAULT_METRICS = {"multiple_choice": ["acc", "acc_norm"], "loglikelihood": ["perplexity", "acc"],
                   "perplexity": ["word_perplexity", "byte_perplexity", "bits_per_byte"],
                   "generate": ["exact_match"]}
PARTNERS = {"multiple_choice": ["p_correct", "brier", "target_logprob"],
            "loglikelihood": ["target_logprob", "target_logprob_per_token", "token_accuracy"],
            "perplexity": [], "generate": ["char_edit_distance", "target_logprob"]}
EXACT_MATCH_OPTIONS = ("ignore_case", "ignore_punctuation", "regexes_to_ignore")
REFUSED = {"class": "a Python-defined task", "process_results": "custom result processing (Python)",
           "custom_dataset": "a Python dataset builder", "use_prompt": "promptsource prompts",
           "doc_to_image": "images", "doc_to_audio": "audio"}
GROUP_FIELDS = {"group", "group_alias", "task", "aggregate_metric_list", "metadata"}


def roots() -> list[Path]:
    """Where lm-eval task YAMLs are read: the installed ``lm_eval/tasks``, then ``$HARNESS_LM_EVAL_TASKS`` folders
    (later ones win on a name clash, as lm-eval's ``--include_path``). The package is located, never imported."""
    installed = _installed_tasks()
    out = [installed] if installed is not None else []
    out += [Path(p) for p in os.environ.get("HARNESS_LM_EVAL_TASKS", "").split(os.pathsep) if p]
    return [p.resolve() for p in out if p.is_dir()]


def _installed_tasks() -> Optional[Path]:
    """The installed lm-eval package's ``tasks`` folder (located, not imported), if there is one."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    return (Path(list(spec.submodule_search_locations)[0]) / "tasks").resolve()


class _Loader(_BoundedLoader):
    """The bounded safe loader, plus lm-eval's ``!function`` tag kept as text."""


def _function_tag(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return FUNCTION_PREFIX + str(loader.construct_scalar(node))


_Loader.add_constructor("!function", _function_tag)


def _read_one(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except FileNotFoundError:
        raise HarnessError("file not found", source=path) from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        raise HarnessError(f"invalid YAML: {getattr(exc, 'problem', None) or exc}", source=path,
                           where=f"line {mark.line + 1}" if mark is not None else None) from None
    if not isinstance(raw, dict):
        raise HarnessError("an lm-eval task file must be a mapping", source=path)
    return raw


def read_config(path: Path, _stack: tuple[Path, ...] = (), _memo: Optional[dict[Path, dict]] = None) -> dict[str, Any]:
    """One task YAML with its ``include`` chain merged as lm-eval merges it (shallow: the file's keys win)."""
    path = path.resolve()
    if path in _stack:
        raise HarnessError("include cycle: " + " -> ".join(p.name for p in (*_stack, path)), source=_stack[0],
                           where="include")
    if len(_stack) >= MAX_INCLUDE_DEPTH:
        raise HarnessError(f"includes nested deeper than {MAX_INCLUDE_DEPTH}", source=_stack[0], where="include")
    if _memo is not None and path in _memo:
        cfg = dict(_memo[path])
    else:
        cfg = _read_one(path)
        if _memo is not None:
            _memo[path] = dict(cfg)
    if "include" not in cfg:
        return cfg
    includes = cfg.pop("include")
    merged: dict[str, Any] = {}
    for inc in includes if isinstance(includes, list) else [includes]:
        if not isinstance(inc, str):
            raise HarnessError(f"include must name a file (got {inc!r:.60})", source=path, where="include")
        if not (path.parent / inc).is_file():
            raise HarnessError(f"includes {inc!r}, which does not exist", source=path, where="include")
        folders = roots()
        if folders and not any((path.parent / inc).resolve().is_relative_to(r) for r in folders):
            raise HarnessError(f"includes {inc!r}, which is outside the task folders ({', '.join(map(str, folders))})",
                               source=path, where="include")
        sub = read_config(path.parent / inc, (*_stack, path), _memo)
        sub.pop("task_list", None)
        merged.update(sub)
    merged.update(cfg)
    return merged


# ---------------------------------------------------------------- index

def _yaml_files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*.yaml") if "__pycache__" not in p.parts), key=lambda p: p.as_posix())


def index() -> dict[str, dict[str, Any]]:
    """Every task, group and tag name → {kind, path, members (groups, tags), tags}, from every YAML under
    ``roots()``. Each folder's part is cached (keyed by its files' paths, sizes and mtimes), so listing and
    resolving read no YAML once built; within a folder the first definition of a name wins, a later folder
    overrides an earlier one."""
    entries: dict[str, dict[str, Any]] = {}
    for root in roots():
        entries.update(_root_index(root))
    return entries


def _entries_for(pattern: str) -> dict[str, dict[str, Any]]:
    """The index to resolve ``pattern`` in: a plain task name defined in the last folder that defines anything
    by that name needs only that folder's index (a later folder wins), so a folder of one's own YAMLs resolves
    without indexing lm-eval's 14,000 files; a glob, a group or a tag needs them all."""
    if not any(c in pattern for c in "*?["):
        for root in reversed(roots()):
            part = _root_index(root)
            if pattern in part:
                return part if part[pattern]["kind"] == "task" else index()
        _why_missing(pattern)  # a file of the user's that defines it but cannot be read says why, at once
    return index()


_PARSED: dict[Path, dict[str, dict[str, Any]]] = {}  # cached index files already read by this process
_INSTALLED_STAMP: dict[Path, str] = {}  # the installed lm-eval's stamp, walked once per process


def _root_index(root: Path) -> dict[str, dict[str, Any]]:
    files: Optional[list[Path]] = None
    stamp = _INSTALLED_STAMP.get(root)  # an installed package does not change while a command runs
    if stamp is None:
        files = _yaml_files(root)
        stamp = digest([str(root)] + [[str(p), p.stat().st_mtime_ns, p.stat().st_size] for p in files])
        if root == _installed_tasks():
            _INSTALLED_STAMP[root] = stamp
    cached = cache_dir() / "lm_eval" / f"index-{stamp}.json"
    if cached in _PARSED:
        return _PARSED[cached]
    if cached.is_file():
        _PARSED[cached] = dict(json.loads(cached.read_text()))
        return _PARSED[cached]
    found: dict[str, dict[str, Any]] = {}
    memo: dict[Path, dict] = {}
    for path in files if files is not None else _yaml_files(root):
        try:
            cfg = read_config(path, _memo=memo)
        except HarnessError:
            continue  # a broken file: `tasks list --source lm_eval` reports it
        _add(cfg, path, found)
    atomic_write(cached, json.dumps(found).encode())
    return found


def _add(cfg: dict[str, Any], path: Path, found: dict[str, dict[str, Any]]) -> None:
    """Index one merged config: a group (``group`` and a ``task`` list), a task (``task`` a name), its tags."""
    tags = cfg.get("tag") or []
    tags = [tags] if isinstance(tags, str) else [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
    if "group" in cfg and "class" not in cfg:
        name, kind, members = cfg["group"], "group", cfg.get("task")
    elif isinstance(cfg.get("task"), str):
        name, kind, members = cfg["task"], "task", None
    else:
        return  # a template (included by others)
    if not isinstance(name, str) or (name in found and found[name]["kind"] != "tag"):
        return
    found[name] = {"kind": kind, "path": str(path), "tags": tags,
                   "members": members if isinstance(members, list) else None}
    for tag in tags if kind == "task" else []:
        entry = found.setdefault(tag, {"kind": "tag", "path": None, "tags": [], "members": []})
        if entry["kind"] == "tag" and name not in entry["members"]:
            entry["members"].append(name)


def task_specs(entry: str, data: Optional[dict[str, str]] = None,
               num_fewshot: Optional[int] = None) -> list[tuple[dict[str, Any], Path, Optional[str]]]:
    """``lm_eval:NAME`` (a task, group, tag or glob) → (task spec, YAML file, group) for each task. A group's tasks
    carry its name (its scores aggregate them); a tag is shorthand for its tasks."""
    pattern = entry.partition(":")[2]
    entries = _entries_for(pattern)
    names = sorted(n for n in entries if fnmatch.fnmatchcase(n, pattern))
    if not names:
        import difflib

        close = difflib.get_close_matches(pattern, list(entries), n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        where = ", ".join(str(r) for r in roots()) or "no lm-eval installed and $HARNESS_LM_EVAL_TASKS empty"
        _why_missing(pattern)
        raise HarnessError(f"no lm-eval task, group or tag named '{pattern}' (searched {where}){hint}", where="tasks")
    out: list[tuple[dict[str, Any], Path, Optional[str]]] = []
    for name in names:
        group = name if entries[name]["kind"] == "group" else None
        for task, cfg, path in _leaves(name, entries, {}, ()):
            out.append((spec(task, cfg, path, data or {}, num_fewshot), path, group))
    return out


def _why_missing(name: str) -> None:
    """A file of the user's folders that defines ``name`` but could not be read (an include cycle, an include outside
    the folders): its own error, rather than "no task named"."""
    installed = _installed_tasks()
    for root in roots():
        for path in _yaml_files(root) if root != installed else []:
            try:
                raw = _read_one(path)
            except HarnessError:
                continue
            if name in (raw.get("task"), raw.get("group")):
                read_config(path)  # raises what kept it out of the index


def _leaves(name: str, entries: dict[str, dict[str, Any]], overrides: dict[str, Any],
            stack: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any], Path]]:
    """The tasks under a name, with the overrides groups and member entries apply (as lm-eval's task factory)."""
    e = entries.get(name)
    if e is None:
        raise HarnessError(f"group '{stack[-1]}' names '{name}', which is no lm-eval task, group or tag",
                           where="tasks")
    if name in stack or len(stack) > 8:
        raise HarnessError(f"group '{stack[0]}' contains itself", where="tasks")
    if e["kind"] == "tag":
        for member in sorted(e["members"]):
            yield from _leaves(member, entries, overrides, (*stack, name))
        return
    path = Path(e["path"])
    cfg = read_config(path)
    if e["kind"] == "task":
        cfg = {**cfg, **overrides}
        for key in ("tag", "group", "task_list"):
            cfg.pop(key, None)
        yield name, cfg, path
        return
    group_overrides = {**{k: v for k, v in cfg.items() if k not in GROUP_FIELDS}, **overrides}
    for i, member in enumerate(cfg.get("task") or []):
        if isinstance(member, str):
            yield from _leaves(member, entries, group_overrides, (*stack, name))
        elif isinstance(member, dict) and isinstance(member.get("task"), str) and member["task"] in entries:
            extra = {k: v for k, v in member.items() if k != "task"}
            yield from _leaves(member["task"], entries, {**group_overrides, **extra}, (*stack, name))
        else:
            raise HarnessError("inline task or group definitions inside a group are not supported", source=path,
                               where=f"task.{i}")


# ---------------------------------------------------------------- config → this harness's task spec

def function_name(value: Any, path: Path, key: str) -> Optional[str]:
    """The registry name of a ``!function`` value (``FOLDER/MODULE.FUNCTION``), or None for any other value."""
    if not (isinstance(value, str) and value.startswith(FUNCTION_PREFIX)):
        return None
    name = f"{path.parent.name}/{value[len(FUNCTION_PREFIX):]}"
    if name not in FUNCTIONS:
        raise HarnessError(f"needs the Python function {value[len(FUNCTION_PREFIX):]!r} ({name}), which this harness "
                           "does not run; the known ones are in harness/tasks/lm_eval_functions.py", source=path,
                           where=key)
    return name


def spec(task: str, cfg: dict[str, Any], path: Path, data: dict[str, str],
         num_fewshot: Optional[int] = None) -> dict[str, Any]:
    """This harness's task spec for one lm-eval task config. Everything lm-eval would compute from the YAML
    is checked here (functions known, output type and metrics supported); documents are rendered later."""
    for key, what in REFUSED.items():
        if cfg.get(key) is not None:
            raise HarnessError(f"{what} ('{key}') is not supported", source=path, where=key)
    output_type = cfg.get("output_type", "generate_until")
    if output_type not in OUTPUTS:
        raise HarnessError(f"output_type '{output_type}' is not supported (use {', '.join(OUTPUTS)})", source=path,
                           where="output_type")
    output = OUTPUTS[output_type]
    fewshot_cfg = cfg.get("fewshot_config") or {}
    if not isinstance(fewshot_cfg, dict):
        raise HarnessError("must be a mapping", source=path, where="fewshot_config")
    for key in ("doc_to_text", "doc_to_target", "doc_to_choice", "process_docs", "description"):
        function_name(cfg.get(key), path, key)
    for key in ("process_docs", "doc_to_text", "doc_to_target", "doc_to_choice", "samples"):
        function_name(fewshot_cfg.get(key), path, f"fewshot_config.{key}")
    if fewshot_cfg.get("sampler", "default") not in ("default", "first_n"):
        raise HarnessError(f"few-shot sampler '{fewshot_cfg['sampler']}' is not supported (use default or first_n)",
                           source=path, where="fewshot_config.sampler")
    multiple_input = isinstance(cfg.get("doc_to_text"), int) or function_name(cfg.get("doc_to_text"), path,
                                                                           "doc_to_text") in MULTIPLE_INPUT
    metrics = _metrics(cfg, output, path)
    out: dict[str, Any] = {
        "name": task, "description": str(cfg.get("task_alias") or ""),
        "keywords": [t for t in ([cfg["tag"]] if isinstance(cfg.get("tag"), str) else cfg.get("tag") or [])
                     if isinstance(t, str)],
        "dataset": {"lm_eval": {"task": task, "file": str(path), "config": cfg, "num_fewshot": num_fewshot,
                                "data": data}},
        "output": output, "metrics": metrics, "target_delimiter": "",
    }
    if output == "multiple_choice":
        out.update(choices="{{ lm_choices }}", answer="{{ lm_gold }}", answer_is="index",
                   target_delimiter=cfg.get("target_delimiter", " "))
        if multiple_input:
            out.update(prompt="{{ lm_contexts[choice_index] }}", target="{{ lm_target }}", multiple_input=True)
        else:
            out["prompt"] = "{{ lm_context }}"
    elif output == "perplexity":
        out["prompt"] = "{{ lm_target }}"
    else:
        out.update(prompt="{{ lm_context }}", target="{{ lm_target }}", references="{{ lm_references }}")
    if output == "generate":
        out["target_delimiter"] = cfg.get("target_delimiter", " ")
        out["generation"] = _generation(cfg, path)
    return out


def _metrics(cfg: dict[str, Any], output: str, path: Path) -> list[Any]:
    listed = cfg.get("metric_list")
    if listed is None:
        listed = [{"metric": m} for m in DEFAULT_METRICS[output]]
    if not isinstance(listed, list):
        raise HarnessError("must be a list", source=path, where="metric_list")
    names: list[Any] = []
    for i, entry in enumerate(listed):
        name = entry.get("metric") if isinstance(entry, dict) else None
        ours = METRICS[output].get(name) if isinstance(name, str) else None
        if ours is None:
            raise HarnessError(f"metric {name!r} is not supported for {output} (supported: "
                               f"{', '.join(METRICS[output])})", source=path, where=f"metric_list.{i}")
        if ours == "exact_match":
            options = {k: entry[k] for k in EXACT_MATCH_OPTIONS if k in entry}
            names.append({"name": "exact_match", "strip": False, **options})
        elif ours not in names:
            names.append(ours)
    return names + [m for m in PARTNERS[output] if m not in names]


def _generation(cfg: dict[str, Any], path: Path) -> dict[str, Any]:
    kwargs = cfg.get("generation_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise HarnessError("must be a mapping", source=path, where="generation_kwargs")
    try:
        temperature, max_new = float(kwargs.get("temperature") or 0), int(kwargs.get("max_gen_toks", 256))
    except (TypeError, ValueError):
        raise HarnessError("temperature and max_gen_toks must be numbers", source=path,
                           where="generation_kwargs") from None
    if kwargs.get("do_sample") or temperature > 0:
        raise HarnessError("sampled generation is not supported (this harness decodes greedily)", source=path,
                           where="generation_kwargs")
    until = kwargs.get("until", [cfg.get("fewshot_delimiter", "\n\n")])
    gen: dict[str, Any] = {"until": [until] if isinstance(until, str) else until, "max_new_tokens": max_new}
    filters = cfg.get("filter_list")
    if filters:
        if not isinstance(filters, list) or not isinstance(filters[0], dict):
            raise HarnessError("must be a list of named filter pipelines", source=path, where="filter_list")
        steps = filters[0].get("filter") or []
        gen["filters"] = [{k: v for k, v in s.items()} for s in steps if isinstance(s, dict)]
        known = {"take_first", "regex", "remove_whitespace", "lowercase", "uppercase"}
        for j, s in enumerate(gen["filters"]):
            if s.get("function") not in known:
                raise HarnessError(f"filter {s.get('function')!r} is not supported (use {', '.join(sorted(known))})",
                                   source=path, where=f"filter_list.0.filter.{j}")
    return gen


def catalogue() -> list[dict[str, Any]]:
    """Every lm-eval task with whether it loads here (its spec builds: functions known, output type and metrics
    supported) and, if not, the one-line problem and a reason to count it under. Cached like the index."""
    entries = index()
    code = [Path(__file__).read_bytes(), (Path(__file__).parent / "lm_eval_functions.py").read_bytes()]
    cached = cache_dir() / "lm_eval" / f"catalogue-{digest([sorted(entries.items()), digest(b''.join(code))])}.json"
    if cached.is_file():
        return list(json.loads(cached.read_text()))
    rows = []
    for name, e in sorted(entries.items()):
        if e["kind"] != "task":
            continue
        path, output, problem = Path(e["path"]), None, None
        try:
            cfg = read_config(path)
            output = cfg.get("output_type", "generate_until")
            spec(name, cfg, path, {})
        except HarnessError as err:
            problem = err.message if err.where is None else f"{err.where}: {err.message}"
        reason = None if problem is None else problem.split(" (")[0].split(": ", 1)[-1]
        rows.append({"name": name, "path": str(path), "output": output, "problem": problem, "reason": reason})
    atomic_write(cached, json.dumps(rows).encode())
    return rows
