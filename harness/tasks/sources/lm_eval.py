"""lm-eval tasks through lm-eval's own task layer: its ``TaskManager`` finds each task, group and tag, builds the
task objects (YAML chain, ``!function`` utilities, Python task classes), loads the dataset or the local rows given
with ``--data SPLIT=FILE``, and builds the requests with its few-shot sampler. This harness's engine answers the
requests and lm-eval scores them (see ``harness.scoring_lm_eval``).

Trust: Python inside the installed lm-eval package runs as importing lm-eval runs it. Task folders of the user's
own (``$HARNESS_LM_EVAL_TASKS``) run Python only with ``run.trust_task_code`` (``--trust-task-code``)."""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from harness.errors import HarnessError
from harness.files import digest, file_sha256, hf_datasets
from harness.tasks.sources.lm_eval_index import installed_tasks, require_lm_eval, task_manager, user_folders

MAX_INCLUDE_DEPTH = 16
OUTPUTS = {"multiple_choice": "multiple_choice", "loglikelihood": "loglikelihood",
           "loglikelihood_rolling": "perplexity", "generate_until": "generate"}
_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
_CODE = re.compile(r"!function|^\s*class\s*:", re.MULTILINE)


class TaskUnavailable(HarnessError):
    """An lm-eval task that cannot be had here (a package not installed, a dataset not reachable): a run goes on
    with its other tasks."""


@dataclass(frozen=True)
class LmEvalSettings:
    """What changes lm-eval's requests besides the task: the shots, their seed, and whether user Python may run."""

    num_fewshot: Optional[int] = None  # None: each task's own
    fewshot_seed: int = 1234  # lm-eval's default
    trust_task_code: bool = False
    apply_chat_template: bool | str = False  # the tokenizer's chat template, or one of its named templates
    system_instruction: Optional[str] = None
    fewshot_as_multiturn: bool = False
    seed: int = 1234  # the run's seed: sampled generation draws from it

    @property
    def chat(self) -> list[Any]:
        """What changes the prompts besides the shots: part of every result's key."""
        return [self.apply_chat_template, self.system_instruction, self.fewshot_as_multiturn]


@dataclass(frozen=True)
class Fewshot:
    seed: int


@dataclass(frozen=True)
class LmEvalSpec:
    """The parts of a task's description the runner reads (output type, shots) for an lm-eval task."""

    output: str
    num_fewshot: int
    fewshot: Fewshot
    keywords: tuple[str, ...] = ()
    preferred_metric: Optional[str] = None
    canary: Optional[str] = None


@dataclass
class LmEvalTask:
    """One lm-eval task (a leaf), named as lm-eval names it, built from the entry the config named (``request``:
    a task, group or tag), so a group's overrides reach it. The built object is not pickled: a worker rebuilds it."""

    name: str
    request: str
    group: Optional[str]
    source: Path
    data: dict[str, dict[str, str]]
    settings: LmEvalSettings
    spec: LmEvalSpec
    hash: str
    # the group's ``aggregate_metric_list`` (metric, filters or None, weight_by_size): how lm-eval scores the group
    group_metrics: tuple[tuple[str, Optional[tuple[str, ...]], bool], ...] = ()
    _built: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_built": None}

    def build(self) -> Any:
        """lm-eval's task object (its dataset loaded), its few-shot sampler seeded afresh: every model of a suite
        gets the shots a fresh lm-eval run draws, however often the object was used before."""
        if self._built is None:
            tasks = _load(self.request, _freeze(self.data), self.settings, user_folders())["tasks"]
            if self.name not in tasks:
                raise HarnessError(f"lm-eval built no task {self.name!r} for {self.request!r} (built: "
                                   f"{', '.join(list(tasks)[:5])})", where="tasks")
            self._built = tasks[self.name]
            self.spec = built_spec(self._built, self.settings)
        _apply(self._built, self.settings)
        return self._built


def _freeze(data: dict[str, dict[str, str]]) -> tuple:
    return tuple(sorted((k, tuple(sorted(v.items()))) for k, v in data.items()))


def _apply(task: Any, settings: LmEvalSettings) -> None:
    """The run's few-shot settings, as lm-eval's ``simple_evaluate`` sets them."""
    if settings.num_fewshot is not None and task.get_config("num_fewshot") != settings.num_fewshot:
        task.set_config(key="num_fewshot", value=settings.num_fewshot)
    task.set_fewshot_seed(seed=settings.fewshot_seed)


@functools.lru_cache(maxsize=8)
def _manager(folders: tuple[Path, ...], data: tuple, settings: LmEvalSettings) -> Any:
    """The TaskManager building tasks through a factory that points their splits at local files and refuses
    untrusted Python."""
    import copy
    from unittest import mock

    from lm_eval.tasks._factory import TaskFactory

    files = {name: dict(splits) for name, splits in data}
    installed = require_lm_eval()

    class Factory(TaskFactory):
        def _load_full_config(self, entry: Any, overrides: Any = None) -> dict[str, Any]:
            if entry.yaml_path is not None and not settings.trust_task_code:
                check_trust(Path(entry.yaml_path), installed)
            local = _rows_for(entry)
            cfg = super()._load_full_config(entry, {**(overrides or {}), **_local_dataset(entry.name, local)}
                                            if local else overrides)
            return _local_splits(entry.name, cfg, local, settings) if local else cfg

        def _build_task(self, entry: Any, overrides: Any) -> Any:
            local = _rows_for(entry)
            if not local or entry.kind.name != "PY_TASK":
                return super()._build_task(entry, overrides)
            # a Python task class may ignore its config and name its own dataset: every dataset it loads while
            # being built is read from the local rows instead
            import datasets

            spec = _local_dataset(entry.name, local)
            real = datasets.load_dataset
            with mock.patch.object(datasets, "load_dataset", lambda *_, **__: real(
                    spec["dataset_path"], **spec["dataset_kwargs"])):
                return super()._build_task(entry, overrides)

    def _rows_for(entry: Any) -> dict[str, str]:
        """The local rows given for a task (a group's own config takes none)."""
        if entry.kind.name not in ("TASK", "PY_TASK"):
            return {}
        return {**files.get("*", {}), **files.get(entry.name, {})}

    tm = copy.copy(task_manager(folders))
    tm._factory = Factory(meta=None)
    return tm


def _local_dataset(name: str, splits: dict[str, str]) -> dict[str, Any]:
    """Overrides that read a task's splits from local files (JSON lines, JSON, CSV, Parquet)."""
    kinds = {_FORMATS.get(Path(f).suffix.lower()) for f in splits.values()}
    if None in kinds or len(kinds) != 1:
        raise HarnessError(f"local rows must be one format of {', '.join(sorted(_FORMATS))} for every split",
                           where=f"data.{name}")
    for split, f in splits.items():
        if not Path(f).is_file():
            raise HarnessError("no such file", source=f, where=f"data.{name}.{split}")
    return {"dataset_path": kinds.pop(), "dataset_name": None,
            "dataset_kwargs": {"data_files": {s: str(Path(f).resolve()) for s, f in splits.items()}}}


def _local_splits(name: str, cfg: dict[str, Any], local: dict[str, str], settings: LmEvalSettings) -> dict[str, Any]:
    """A task read from local rows uses the splits given: the scored split must be there (and the shots' split when
    there are shots and the task does not list them itself); a split the task names only for shots, with none asked, is dropped."""
    scored = cfg.get("test_split") or cfg.get("validation_split")
    if scored and scored not in local:
        raise HarnessError(f"lm_eval:{name} scores the split '{scored}': give it with --data {scored}=FILE (given: "
                           f"{', '.join(sorted(local))})", where="data")
    shots = num_fewshot(settings, cfg)
    source = cfg.get("fewshot_split") or cfg.get("training_split") or cfg.get("validation_split")
    fixed = isinstance(cfg.get("fewshot_config"), dict) and cfg["fewshot_config"].get("samples")  # shots listed
    if shots and source and source not in local and not fixed:
        raise HarnessError(f"lm_eval:{name} takes its {shots} shot(s) from the split '{source}': give it with "
                           f"--data {source}=FILE", where="data")
    out = dict(cfg)
    for key in ("training_split", "validation_split", "fewshot_split"):
        if out.get(key) and out[key] not in local:
            out[key] = None
    return out


def check_trust(path: Path, installed: Path, depth: int = 0) -> None:
    """A task YAML outside the installed lm-eval package (or any file it includes) that names Python is refused
    unless the user trusts task code."""
    path = path.resolve()
    if path.is_relative_to(installed) or depth > MAX_INCLUDE_DEPTH or not path.is_file():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    if _CODE.search(text):
        raise HarnessError("this task runs Python from its folder; pass --trust-task-code (config "
                           "run.trust_task_code: true) if you trust it", source=path, where="!function")
    for inc in re.findall(r"^include\s*:\s*['\"]?([^'\"#\n]+?)['\"]?\s*$", text, re.MULTILINE):
        check_trust(path.parent / inc, installed, depth + 1)


@functools.lru_cache(maxsize=64)
def _load(request: str, data: tuple, settings: LmEvalSettings, folders: tuple[Path, ...]) -> dict[str, Any]:
    """``TaskManager.load`` of one name, cached per process; lm-eval's errors become one line."""
    import random

    import numpy as np

    tm = _manager(folders, data, settings)
    hf_datasets()
    random.seed(0)  # lm-eval's simple_evaluate seeds these before building tasks (GPQA shuffles its choices)
    np.random.seed(1234)
    try:
        return tm.load([request])
    except HarnessError:
        raise
    except ModuleNotFoundError as exc:
        raise TaskUnavailable(f"lm_eval:{request} needs the package '{exc.name}': pip install {exc.name}",
                              where="tasks") from None
    except Exception as exc:  # lm-eval and datasets raise many kinds; one line naming the task
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        error = TaskUnavailable if _is_dataset_error(exc) else HarnessError
        hint = "; pass local rows with --data SPLIT=FILE" if error is TaskUnavailable else ""
        raise error(f"lm_eval:{request} could not be built: {type(exc).__name__}: {first}{hint}",
                    where="tasks") from None


def _is_dataset_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(w in text for w in ("dataset", "hub", "offline", "connection", "couldn't", "doesn't exist", "split"))


def names(pattern: str) -> list[str]:
    """The registered lm-eval names (tasks, groups, tags) matching ``pattern`` (a name or a glob)."""
    tm = task_manager(user_folders())
    if pattern in tm.task_index:
        return [pattern]
    found = [n for n in tm.all_tasks if fnmatch.fnmatchcase(n, pattern)]
    if not found:
        import difflib

        unreadable = _unreadable(pattern)
        if unreadable:
            raise unreadable
        close = difflib.get_close_matches(pattern, tm.all_tasks, n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise HarnessError(f"no lm-eval task, group or tag named '{pattern}'{hint}", where="tasks")
    return found


def _unreadable(name: str) -> Optional[HarnessError]:
    """A YAML file of the user's folders that names ``name`` but lm-eval could not read (its index skips such
    files): the error lm-eval's loader gives for it, on one line."""
    from lm_eval.tasks._yaml_loader import load_yaml

    pattern = re.compile(rf"^(task|group)\s*:\s*['\"]?{re.escape(name)}['\"]?\s*$", re.MULTILINE)
    for folder in user_folders():
        for path in sorted(folder.rglob("*.yaml")):
            if pattern.search(path.read_text(encoding="utf-8", errors="replace")):
                try:
                    load_yaml(path, resolve_func=False)
                except RecursionError:
                    return HarnessError("lm-eval cannot read this file: Include cycle", source=path, where="include")
                except Exception as exc:  # whatever lm-eval's loader raises for the file
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                    return HarnessError(f"lm-eval cannot read this file: {type(exc).__name__}: {first}", source=path)
    return None


def resolve(pattern: str, data: Optional[dict[str, dict[str, str]]] = None,
            settings: LmEvalSettings = LmEvalSettings()) -> list[LmEvalTask]:
    """The leaf tasks of ``lm_eval:PATTERN`` (a task, group, tag or glob), read from lm-eval's index without
    building them (no dataset is touched: ``prepare`` builds them). ``data``: task name (or ``*``) → {split:
    local file}; rows given for a named group or tag apply to each of its tasks."""
    tm = task_manager(user_folders())
    out: dict[str, LmEvalTask] = {}
    for request in names(pattern):
        given = data or {}
        rows = {**given, "*": {**given.get("*", {}), **given.get(request, {})}}
        top = tm.task_index[request]
        named_group = top.kind.name == "GROUP"
        for name, group in _leaves(tm.task_index, request, None, 0):
            group = request if named_group else group  # a named group is scored as lm-eval scores it
            entry = tm.task_index.get(name)
            cfg = (entry.cfg if entry is not None else None) or {}
            source = Path(entry.yaml_path) if entry is not None and entry.yaml_path else installed_tasks() or Path(".")
            shots = num_fewshot(settings, cfg)
            output = str(cfg.get("output_type") or "generate_until")
            spec = LmEvalSpec(OUTPUTS.get(output, output), shots, Fewshot(settings.fewshot_seed))
            agg = _group_metrics(tm.task_index[group].cfg if group in tm.task_index else None)
            out.setdefault(name, LmEvalTask(name, request, group, source, rows, settings, spec,
                                            _hash(name, source, rows, settings), agg))
    return list(out.values())


def _leaves(index: dict[str, Any], name: str, group: Optional[str], depth: int) -> list[tuple[str, Optional[str]]]:
    """(task, its group) for every task under a registered name, in lm-eval's order: a group's ``task:`` list
    (names, references with overrides, inline subgroups named ``GROUP::NAME``), a tag's members."""
    from lm_eval.tasks._index import Kind

    entry = index.get(name)
    if entry is None or depth > MAX_INCLUDE_DEPTH:
        return [(name, group)]  # an inline task: lm-eval names it when it builds the group
    if entry.kind in (Kind.TASK, Kind.PY_TASK):
        return [(name, group)]
    if entry.kind == Kind.TAG:
        return [leaf for n, e in index.items() if name in e.tags for leaf in _leaves(index, n, group, depth + 1)]
    out: list[tuple[str, Optional[str]]] = []
    for item in (entry.cfg or {}).get("task") or []:
        ref = item if isinstance(item, str) else item.get("task") or item.get("group") if isinstance(item, dict) else None
        if not isinstance(ref, str):
            continue
        if ref in index:
            out += _leaves(index, ref, name, depth + 1)
        else:
            out.append((f"{name}::{ref}", name))
    return out


def _group_metrics(cfg: Optional[dict[str, Any]]) -> tuple[tuple[str, Optional[tuple[str, ...]], bool], ...]:
    out = []
    for item in (cfg or {}).get("aggregate_metric_list") or []:
        if isinstance(item, dict) and isinstance(item.get("metric"), str):
            filters = item.get("filter_list")
            filters = [filters] if isinstance(filters, str) else filters
            out.append((item["metric"], tuple(filters) if filters else None, bool(item.get("weight_by_size", True))))
    return tuple(out)


def num_fewshot(settings: LmEvalSettings, cfg: dict) -> int:
    """The shots a task gets: the run's ``num_fewshot`` where set, else the task's own."""
    return settings.num_fewshot if settings.num_fewshot is not None else int(cfg.get("num_fewshot") or 0)


def built_spec(task: Any, settings: LmEvalSettings) -> LmEvalSpec:
    """The spec as the built task says (a Python task class names its output type only when built)."""
    return LmEvalSpec(output=OUTPUTS.get(task.OUTPUT_TYPE, task.OUTPUT_TYPE),
                      num_fewshot=int(task.get_config("num_fewshot") or 0), fewshot=Fewshot(settings.fewshot_seed))


def _hash(name: str, source: Path, data: dict[str, dict[str, str]], settings: LmEvalSettings) -> str:
    """What makes a result of this task reusable: lm-eval's version, the task's YAML and Python files (its folder
    and the one above, where includes live), the local rows, and the settings."""
    import lm_eval

    files = []
    if source.is_file():
        for folder in (source.parent, source.parent.parent):
            files += [f for f in sorted(folder.glob("*")) if f.suffix in (".yaml", ".yml", ".py") and f.is_file()]
    local = {s: file_sha256(Path(f)) for s, f in {**data.get("*", {}), **data.get(name, {})}.items()
             if Path(f).is_file()}
    return digest({"lm_eval": lm_eval.__version__, "task": name, "files": [file_sha256(f) for f in files],
                   "data": local, "settings": [settings.num_fewshot, settings.fewshot_seed, settings.seed, *settings.chat]})


def requests(task: LmEvalTask, limit: Optional[int] = None) -> list[dict[str, Any]]:
    """lm-eval's own requests per document, in its order, with the gold as lm-eval scores it (a choice index, a
    list of indices where several answers count, or the target text)."""
    built = task.build()
    built.build_all_requests(limit=limit, rank=0, world_size=1)
    by_doc: dict[int, dict[str, Any]] = {}
    for inst in sorted(built.instances, key=lambda i: (i.doc_id, i.idx)):
        entry = by_doc.setdefault(inst.doc_id, {"task": task.name, "doc_id": inst.doc_id, "output": task.spec.output,
                                                "requests": [], "gold": built.doc_to_target(inst.doc)})
        entry["requests"].append([a if isinstance(a, str) else _plain(a) for a in inst.arguments])
    return list(by_doc.values())


def _plain(value: Any) -> Any:
    """Generation keyword arguments as JSON can hold them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
