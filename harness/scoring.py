"""Scoring: one prepared task on one loaded model → typed per-example records with their metric values,
and the chance level of each metric. Records keep the raw quantities (every choice's log-prob, token
counts, the generation) so any metric can be recomputed later without running a model."""

from __future__ import annotations

from collections.abc import Sequence

from harness import metrics as M
from harness.models.backend import Backend
from harness.outputs import BaseRecord, output_type
from harness.tasks.prepared import PreparedTask


def evaluate(backend: Backend, prepared: PreparedTask) -> list[BaseRecord]:
    """Run one task on one model and return per-example records with their metric values."""
    spec = prepared.task.spec
    records = output_type(spec.output).evaluate(backend, prepared.instances, spec)
    for rec, inst in zip(records, prepared.instances):
        if inst.slices:
            rec["slices"] = dict(inst.slices)
        rec["metrics"] = {m.name: M.compute(m.name, rec, m.options) for m in spec.metrics}
        if spec.canary:
            rec["canary"] = spec.canary
    return records


def unrepresentable_documents(backend: Backend, prepared: PreparedTask) -> int:
    """How many documents contain text (context, choices or target) that the model's tokenizer maps to unknown
    or padding tokens: their scores say nothing about the task (e.g. letters on a digits-only vocabulary)."""
    per_doc = [[*(i.contexts or [i.context]), *i.continuations, i.delimiter + (i.target or "")] for i in prepared.instances]
    flags = iter(backend.unrepresentable([t for texts in per_doc for t in texts]))
    return sum(any([next(flags) for _ in texts]) for texts in per_doc)


def chance_levels(prepared: PreparedTask, records: Sequence[BaseRecord]) -> dict[str, float]:
    """Chance per metric where the output type knows it (multiple choice: a uniform guess, or the majority class),
    or the task's ``chance``."""
    spec = prepared.task.spec
    out = output_type(spec.output).chance(records)
    if spec.chance is not None:
        out.update({m.name: spec.chance for m in spec.metrics if M.METRICS[m.name].kind == "discontinuous"})
    return {m.name: out[m.name] for m in spec.metrics if m.name in out}
