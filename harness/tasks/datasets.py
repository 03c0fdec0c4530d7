"""Documents for a task: local files (JSONL/JSON/CSV/Parquet), ``datasets.load_dataset``, or a generator."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from harness.errors import HarnessError
from harness.files import hf_datasets, read_file
from harness.tasks.generators import generate
from harness.tasks.schema import DatasetSpec
from harness.tasks.sources.bigbench import documents as bigbench_documents

Document = dict[str, Any]


def data_roots(extra: Sequence[Path] = ()) -> list[Path]:
    """Folders any task file may read data from besides its own: ``extra`` (a config's ``data_roots``) and the
    entries of ``$HARNESS_DATA_PATH``."""
    env = [Path(p) for p in os.environ.get("HARNESS_DATA_PATH", "").split(os.pathsep) if p]
    return [Path(p).resolve() for p in [*extra, *env]]


def local_data(relative: str, task_file: Path, roots: Sequence[Path], where: str) -> Path:
    """Resolve a task's data path (relative to the task file; symlinks followed). A task file may read only
    below its own folder or a data root: task files are shared, and what they read ends up in records."""
    path = (task_file.parent / relative).resolve()
    allowed = [task_file.parent.resolve(), *data_roots(roots)]
    if not any(path.is_relative_to(root) for root in allowed):
        raise HarnessError(f"{relative!r} resolves to {path}, outside the task's folder and the data roots; add its "
                           "folder to the config's data_roots or to $HARNESS_DATA_PATH", source=task_file, where=where)
    return path


def load_documents(spec: DatasetSpec, task_file: Path, split: Optional[str] = None,
                   roots: Sequence[Path] = ()) -> list[Document]:
    """Load one split of a task's dataset. ``split=None`` is the evaluated split; ``roots``: extra folders the
    task may read data from (see ``local_data``)."""
    if spec.generator is not None:
        try:
            docs = generate(spec.generator, split or "test", spec.args)
        except HarnessError as err:
            err.source = task_file
            raise
        where: object = "dataset.generator"
    elif spec.hf is not None:
        docs = _load_hf(spec, task_file, split, roots)
        where = "dataset.hf"
    elif spec.bigbench is not None:
        if split is not None:
            raise HarnessError("a BIG-bench task brings its own shots (dataset.bigbench.num_fewshot); leave fewshot empty",
                               source=task_file, where="fewshot.split")
        docs = bigbench_documents(spec.bigbench.task, spec.bigbench.subtask, spec.bigbench.num_fewshot)
        where = "dataset.bigbench"
    else:
        if split is not None:
            raise HarnessError("a 'path' dataset has a single split; leave fewshot.split empty", source=task_file, where="fewshot.split")
        assert spec.path is not None
        path = local_data(spec.path, task_file, roots, "dataset.path")
        docs = read_file(path)
        where = path
    if not docs:
        raise HarnessError("dataset is empty", source=task_file, where=where)
    return docs


def _load_hf(spec: DatasetSpec, task_file: Path, split: Optional[str], roots: Sequence[Path]) -> list[Document]:
    datasets = hf_datasets()

    hf = spec.hf
    assert hf is not None
    path = hf.path
    if (task_file.parent / path).exists():  # a local dataset folder, relative to the task file like every path
        path = str(local_data(path, task_file, roots, "dataset.hf.path"))
    try:
        ds = datasets.load_dataset(path, hf.name, split=split or hf.split, revision=hf.revision)
    except Exception as exc:  # datasets raises many types; the user needs the message
        raise HarnessError(f"could not load dataset '{hf.path}' split '{split or hf.split}': {type(exc).__name__}: {exc}",
                           source=task_file, where="dataset.hf") from None
    return [dict(row) for row in ds]
