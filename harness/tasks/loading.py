"""A config's task entries resolved by their source: ``lm_eval:NAME`` (lm-eval's catalogue), ``bigbench:TASK``
(BIG-bench's JSON tasks), else native YAML files by path, name or glob (see ``tasks.sources``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from harness.errors import HarnessError
from harness.tasks.schema import Task, parse_task_dict
from harness.tasks.sources import bigbench
from harness.tasks.sources.lm_eval import LmEvalSettings, LmEvalTask
from harness.tasks.sources.lm_eval import resolve as resolve_lm_eval
from harness.tasks.sources.native import TaskIndex


def resolve_entry(entry: str, base: Path, index: TaskIndex, data: Optional[dict[str, dict[str, str]]] = None,
                  settings: Optional[LmEvalSettings] = None) -> list[Task | LmEvalTask]:
    """One task entry: ``lm_eval:NAME`` (a task, group, tag or glob, built by lm-eval; ``data`` points splits at
    local files, ``settings`` sets shots, trust and chat), ``bigbench:TASK[:SUBTASK]``, else a native path, name
    or glob."""
    if entry.startswith("lm_eval:"):
        return list(resolve_lm_eval(entry.partition(":")[2], data, settings or LmEvalSettings()))
    if entry.startswith("bigbench:"):
        return [parse_task_dict(spec, path)[0] if group is None else _grouped(spec, path, group)
                for spec, path, group in bigbench.task_specs(entry)]
    return list(index.resolve(entry, base))


def _grouped(spec: dict, path: Path, group: str) -> Task:
    (task,) = parse_task_dict(spec, path)
    task.group = group
    return task


def resolve_tasks(entries: list[str], base: Path, data: Optional[dict[str, dict[str, str]]] = None,
                  num_fewshot: Optional[int] = None, trust_task_code: bool = False,
                  lm_eval: Optional[LmEvalSettings] = None) -> list[Task | LmEvalTask]:
    """Resolve a config's task list into unique tasks, in order of first mention. lm-eval tasks: ``data`` maps a
    task name (or ``*``, every one) to {split: local file}; ``num_fewshot`` (None: each task's own);
    ``trust_task_code``: Python of the user's own lm-eval task folders may run; ``lm_eval``: all of their
    settings at once (chat formatting too)."""
    index = TaskIndex()
    out: dict[str, Task | LmEvalTask] = {}
    settings = lm_eval or LmEvalSettings(num_fewshot=num_fewshot, trust_task_code=trust_task_code)
    for entry in entries:
        for task in resolve_entry(entry, base, index, data, settings):
            prev = out.get(task.name)
            if prev is not None and prev.source != task.source:
                raise HarnessError(f"task name '{task.name}' is defined in both {prev.source} and {task.source}", where="tasks")
            out.setdefault(task.name, task)
    return list(out.values())
