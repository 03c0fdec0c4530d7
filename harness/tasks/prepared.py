"""A task made ready to score: its documents loaded and rendered once, reused for every model of a suite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union, overload

from harness.files import digest
from harness.outputs import Instance
from harness.tasks.datasets import load_documents
from harness.tasks.prompts import build_instances
from harness.tasks.schema import Task
from harness.tasks.sources.lm_eval import LmEvalTask


@dataclass
class PreparedTask:
    """A task's rendered instances, built once and reused for every model of the suite."""

    task: Task
    instances: list[Instance]

    @property
    def prompt_hash(self) -> str:
        """Hash of everything the models will see and be scored on (part of each result's key)."""
        return digest([[i.context, i.delimiter, i.target, i.choices, i.gold, i.doc_hash, i.choice_scores, i.references] + ([i.contexts] if i.contexts else [])
                       for i in self.instances])


@dataclass(frozen=True)
class DocRef:
    """An lm-eval task's document: lm-eval builds its requests when the model is there."""

    doc_id: int
    doc_hash: str


@dataclass
class LmEvalPrepared:
    """An lm-eval task with its documents counted and hashed (``limit``: lm-eval's first N)."""

    task: LmEvalTask
    instances: list[DocRef]
    limit: Optional[int]

    @property
    def prompt_hash(self) -> str:
        return digest([self.task.hash, [d.doc_hash for d in self.instances]])


AnyPrepared = Union[PreparedTask, LmEvalPrepared]


@overload
def prepare(task: Task, limit: Optional[int] = None, data_roots: Sequence[Path] = ()) -> PreparedTask: ...
@overload
def prepare(task: LmEvalTask, limit: Optional[int] = None, data_roots: Sequence[Path] = ()) -> LmEvalPrepared: ...
@overload
def prepare(task: Task | LmEvalTask, limit: Optional[int] = None, data_roots: Sequence[Path] = ()) -> AnyPrepared: ...


def prepare(task: Task | LmEvalTask, limit: Optional[int] = None, data_roots: Sequence[Path] = ()) -> AnyPrepared:
    """Load documents (and the few-shot split) and render them; all template errors surface here.
    ``data_roots``: folders the task may read data from besides its own."""
    if isinstance(task, LmEvalTask):
        docs = list(task.build().eval_docs)[:limit]
        return LmEvalPrepared(task, [DocRef(i, digest(d)) for i, d in enumerate(docs)], limit)
    spec = task.spec
    docs = load_documents(spec.dataset, task.source, roots=data_roots)
    pool, same_split = docs, True  # shots come from the whole split, so they do not depend on ``limit``
    if spec.num_fewshot and spec.fewshot.split is not None:
        pool, same_split = load_documents(spec.dataset, task.source, split=spec.fewshot.split, roots=data_roots), False
    if limit is not None:
        docs = docs[:limit]
    return PreparedTask(task, build_instances(task, docs, pool, same_split))
