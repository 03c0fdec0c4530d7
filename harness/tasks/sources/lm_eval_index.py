"""lm-eval's index of its tasks (every registered name, with its YAML and config), as this harness reads it: the
installed package's folder and the user's own (``$HARNESS_LM_EVAL_TASKS``), each folder's index kept under the
cache and rebuilt only when one of its YAML files changes (parsing lm-eval's 14,000 files takes ~10 s)."""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from harness.errors import HarnessError
from harness.files import atomic_write, cache_dir, digest


def installed_tasks() -> Optional[Path]:
    """The installed lm-eval package's ``tasks`` folder, or None without lm-eval."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    return (Path(list(spec.submodule_search_locations)[0]) / "tasks").resolve()


def user_folders() -> tuple[Path, ...]:
    """``$HARNESS_LM_EVAL_TASKS``: the user's own lm-eval task folders (later ones win on a name clash)."""
    return tuple(Path(p).resolve() for p in os.environ.get("HARNESS_LM_EVAL_TASKS", "").split(os.pathsep) if p)


def require_lm_eval() -> Path:
    root = installed_tasks()
    if root is None:
        raise HarnessError("lm_eval: tasks need lm-eval: pip install 'scaling-harness[reference]' (lm-eval==0.4.13)",
                           where="tasks")
    return root


@functools.lru_cache(maxsize=2)
def task_manager(folders: tuple[Path, ...]) -> Any:
    """lm-eval's TaskManager over the installed tasks and the user's folders. Its index (every YAML parsed: ~10 s
    for lm-eval's 14,000 files) is kept per folder under the cache, rebuilt when a YAML file changes."""
    from unittest import mock

    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._index import TaskIndex

    require_lm_eval()
    for folder in folders:
        if not folder.is_dir():
            raise HarnessError("not a folder", source=folder, where="HARNESS_LM_EVAL_TASKS")
    build = TaskIndex.build

    def cached(paths: Any, **kwargs: Any) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for root in paths:  # later folders win, as lm-eval merges them
            merged.update(_folder_index(Path(root), build, kwargs))
        return merged

    with mock.patch.object(TaskIndex, "build", staticmethod(cached)):
        return TaskManager(include_path=[str(f) for f in folders] or None)


def _folder_index(root: Path, build: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """One folder's lm-eval index, from the cache when no YAML file in it changed."""
    import json

    import lm_eval
    from lm_eval.tasks._index import Entry, Kind

    files = sorted((str(p), st.st_mtime_ns, st.st_size) for p in _yaml_files(root) if (st := p.stat()))
    path = cache_dir() / "lm_eval_index" / f"{digest([lm_eval.__version__, str(root.resolve()), files])}.json"
    if path.is_file():
        try:
            return {e["name"]: Entry(e["name"], Kind[e["kind"]], None if e["yaml_path"] is None else Path(e["yaml_path"]),
                                     e["cfg"], set(e["tags"])) for e in json.loads(path.read_text())}
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache file is rebuilt
    index = build([root], **kwargs)
    try:
        atomic_write(path, json.dumps([{"name": e.name, "kind": e.kind.name, "tags": sorted(e.tags), "cfg": e.cfg,
                                        "yaml_path": None if e.yaml_path is None else str(e.yaml_path)}
                                       for e in index.values()]).encode())
    except (OSError, TypeError, ValueError):
        pass  # the cache is an optimisation only
    return dict(index)


def _yaml_files(root: Path) -> Iterator[Path]:
    """Every ``*.yaml`` under ``root`` (``os.walk``: three times faster than ``rglob`` over lm-eval's 14,000)."""
    for folder, _, names in os.walk(root):
        yield from (Path(folder, n) for n in names if n.endswith(".yaml"))
