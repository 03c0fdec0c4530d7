"""Native tasks: YAML files in the task folders (``$HARNESS_TASKS_PATH``, ``./tasks``, the shipped ``tasks/``),
found by path, name or glob, groups expanded."""

from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from harness.errors import HarnessError
from harness.files import read_yaml, shipped
from harness.tasks.schema import Task, parse_task_dict

PACKAGE_TASKS = shipped("tasks")  # the shipped task files: tasks/ of the checkout, package data in a wheel


def load_task_file(path: Path) -> list[Task]:
    """Validate one task file: a single task, or a group's subtasks."""
    path = Path(path).resolve()
    return parse_task_dict(read_yaml(path), path)


def searched_dirs() -> list[Path]:
    """Where task names are looked up, in order: ``$HARNESS_TASKS_PATH`` entries, ``./tasks``, the shipped tasks."""
    dirs = [Path(p) for p in os.environ.get("HARNESS_TASKS_PATH", "").split(os.pathsep) if p]
    return list(dict.fromkeys(d.resolve() for d in dirs + [Path.cwd() / "tasks", PACKAGE_TASKS]))


def task_dirs() -> list[Path]:
    """The searched folders that exist."""
    return [d for d in searched_dirs() if d.is_dir()]


@dataclass
class IndexEntry:
    name: str
    path: Path
    group: Optional[str]  # the group this name belongs to, or the name itself for a group
    clash: Optional[Path] = None  # another file of the same folder defining the same name


class TaskIndex:
    """Names defined by the YAML files under the task directories (read, not yet validated)."""

    def __init__(self, dirs: Optional[list[Path]] = None):
        self.entries: dict[str, IndexEntry] = {}
        self.broken: dict[Path, str] = {}
        for d in dirs if dirs is not None else task_dirs():
            here: dict[str, Path] = {}  # names defined in this folder: a second file with one is an error
            for path in sorted(list(d.rglob("*.yaml")) + list(d.rglob("*.yml"))):
                try:
                    raw = read_yaml(path)
                except HarnessError as err:
                    self.broken[path] = str(err)
                    continue
                if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                    self.broken[path] = f"{path}: name: missing"
                    continue
                names = [(raw["name"], raw["name"] if "subtasks" in raw else None)]
                subtasks = raw.get("subtasks")
                for sub in subtasks if isinstance(subtasks, list) else []:
                    if isinstance(sub, dict) and isinstance(sub.get("name"), str):
                        names.append((sub["name"], raw["name"]))
                for name, group in names:
                    if name in here and here[name] != path:
                        self.broken[path] = str(HarnessError(f"task name {name!r} is also defined in {here[name]}",
                                                             source=path, where="name"))
                        self.entries[name] = IndexEntry(name, path, group, clash=here[name])
                        continue
                    here[name] = path
                    self.entries.setdefault(name, IndexEntry(name, path, group))

    def resolve(self, entry: str, base: Path) -> list[Task]:
        """A path to a YAML file (relative to ``base``), a task or group name, or a glob over names."""
        if entry.endswith((".yaml", ".yml")) or "/" in entry:
            return list(load_task_file(base / entry))
        names = [n for n in self.entries if fnmatch.fnmatchcase(n, entry)]
        if not names:
            close = difflib.get_close_matches(entry, list(self.entries), n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            if self.broken:
                hint += f"; {len(self.broken)} task file(s) could not be read: run 'harness tasks validate'"
            places = ", ".join(str(d) + ("" if d.is_dir() else " (missing)") for d in searched_dirs())
            raise HarnessError(f"no task named '{entry}' (searched {places}){hint}", where="tasks")
        tasks: list[Task] = []
        for name in sorted(names):
            e = self.entries[name]
            if e.clash is not None:
                raise HarnessError(f"task name {name!r} is defined in both {e.clash} and {e.path}: rename one",
                                   where="tasks")
            for task in load_task_file(e.path):
                if e.group == name or task.name == name:  # a group name selects all its subtasks
                    tasks.append(task)
        return tasks
