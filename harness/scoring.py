"""Scoring: one prepared task on one loaded model → typed per-example records with their metric values,
and the chance level of each metric. Records keep the raw quantities (every choice's log-prob, token
counts, the generation) so any metric can be recomputed later without running a model."""

from __future__ import annotations

import re
from typing import Union

import numpy as np
from typing_extensions import NotRequired, TypedDict

from harness import metrics as M
from harness.extraction import apply_filters, extract_answer
from harness.models.backend import Backend, GenerationRequest
from harness.tasks.prepared import PreparedTask


class ChoiceRecord(TypedDict):
    """``multiple_choice``: every choice's summed log-prob, token and byte lengths, and the gold index."""

    doc_id: int
    doc_hash: str
    prompt: str
    choices: list[str]
    gold: int
    logprobs: list[float]
    n_tokens: list[int]
    is_greedy: list[bool]
    n_bytes: list[int]
    metrics: dict[str, float]
    truncated: NotRequired[bool]  # longer than the model's context: the prompt was cut to its last tokens
    choice_scores: NotRequired[list[float]]  # credit per choice, when the task gives it (multiple_choice_grade)
    contexts: NotRequired[list[str]]  # multiple input: each choice's context (``prompt`` is the gold one's) ...
    target: NotRequired[str]  # ... and the continuation scored after each
    slices: NotRequired[dict[str, str]]
    canary: NotRequired[str]  # the benchmark's canary string, when the task has one (BIG-bench)


class TargetRecord(TypedDict):
    """``loglikelihood``: the teacher-forced log-prob of the target."""

    doc_id: int
    doc_hash: str
    prompt: str
    target: str
    target_logprob: float
    target_tokens: int
    is_greedy: bool
    token_greedy: list[bool]  # per target token under teacher forcing: is it the argmax (the answer's steps)
    metrics: dict[str, float]
    truncated: NotRequired[bool]  # longer than the model's context: the prompt was cut to its last tokens
    slices: NotRequired[dict[str, str]]  # the document's value of each slice the task declares
    references: NotRequired[list[str]]  # every acceptable answer, when the task lists them
    canary: NotRequired[str]
    reference_logprobs: NotRequired[list[float]]  # each reference's log-prob, when there are several


class GenerationRecord(TargetRecord):
    """``generate``: the target's log-prob, plus the greedy text and both token sequences; with an answer
    extraction (``generation.stop_string``/``output_regex``) the extracted ``answer`` that metrics score."""

    generation: str
    generation_ids: list[int]
    target_ids: list[int]
    answer: NotRequired[str]
    answer_ids: NotRequired[list[int]]
    reference_ids: NotRequired[list[list[int]]]  # each reference's token ids, when there are several


class PerplexityRecord(TypedDict):
    """``perplexity``: the whole text's log-prob and its length in tokens, bytes and words."""

    doc_id: int
    doc_hash: str
    logprob: float
    n_tokens: int
    n_bytes: int
    n_words: int
    metrics: dict[str, float]
    truncated: NotRequired[bool]  # longer than the model's context: the prompt was cut to its last tokens
    slices: NotRequired[dict[str, str]]
    canary: NotRequired[str]


Record = Union[ChoiceRecord, TargetRecord, GenerationRecord, PerplexityRecord]


def evaluate(backend: Backend, prepared: PreparedTask) -> list[Record]:
    """Run one task on one model and return per-example records with their metric values."""
    spec = prepared.task.spec
    insts = prepared.instances
    records: list[Record]
    if spec.output == "multiple_choice":
        results = iter(backend.loglikelihood([pair for i in insts for pair in i.requests]))
        records = []
        for i in insts:
            choices = list(i.choices or ())
            assert i.gold is not None  # every multiple-choice instance has one
            res = [next(results) for _ in choices]
            choice = ChoiceRecord(
                doc_id=i.doc_id, doc_hash=i.doc_hash, prompt=i.context, choices=choices, gold=i.gold,
                logprobs=[r.logprob for r in res], n_tokens=[r.n_tokens for r in res],
                is_greedy=[r.is_greedy for r in res], n_bytes=[len(c.encode("utf-8")) for c in choices], metrics={})
            if any(r.truncated for r in res):
                choice["truncated"] = True
            if i.choice_scores is not None:
                choice["choice_scores"] = list(i.choice_scores)
            if i.contexts is not None:
                choice["contexts"], choice["target"] = list(i.contexts), i.target or ""
            records.append(choice)
    elif spec.output in ("generate", "loglikelihood"):
        several = [list(i.references) if i.references and len(i.references) > 1 else [] for i in insts]
        lls = backend.loglikelihood([(i.context, i.delimiter + (i.target or "")) for i in insts]
                                    + [(i.context, i.delimiter + ref) for i, refs in zip(insts, several) for ref in refs])
        extra = iter(lls[len(insts):])
        scored = [TargetRecord(doc_id=i.doc_id, doc_hash=i.doc_hash, prompt=i.context, target=i.target or "", target_logprob=r.logprob,
                               target_tokens=r.n_tokens, is_greedy=r.is_greedy, token_greedy=list(r.token_greedy),
                               metrics={}) for i, r in zip(insts, lls)]
        for target, i, refs, r in zip(scored, insts, several, lls):
            if r.truncated or (spec.output == "generate" and _prompt_cut(backend, i.context,
                                                                         spec.generation.max_new_tokens)):
                target["truncated"] = True
            if i.references is not None:
                target["references"] = list(i.references)
            if refs:
                target["reference_logprobs"] = [next(extra).logprob for _ in refs]
        if spec.output == "generate":
            records = _generate(backend, prepared, scored, several)
        else:
            records = list(scored)
    else:  # perplexity
        lls = backend.loglikelihood_rolling([i.context for i in insts], spec.perplexity.window, spec.perplexity.stride)
        records = [PerplexityRecord(doc_id=i.doc_id, doc_hash=i.doc_hash, logprob=r.logprob, n_tokens=r.n_tokens,
                                    n_bytes=len(i.context.encode("utf-8")), n_words=len(re.split(r"\s+", i.context)),
                                    metrics={}) for i, r in zip(insts, lls)]
    for rec, inst in zip(records, insts):
        if inst.slices:
            rec["slices"] = dict(inst.slices)
        rec["metrics"] = {m.name: M.compute(m.name, rec, m.options) for m in spec.metrics}
        if spec.canary:
            rec["canary"] = spec.canary
    return records


def _generate(backend: Backend, prepared: PreparedTask, scored: list[TargetRecord],
              several: list[list[str]]) -> list[Record]:
    """Greedy generations for the scored targets, with the extracted answer when the task asks for one."""
    gen = prepared.task.spec.generation
    insts = prepared.instances
    texts = backend.generate([GenerationRequest(i.context, tuple(gen.until), gen.max_new_tokens) for i in insts])
    records: list[Record] = []
    for rec, i, text, refs in zip(scored, insts, texts, several):
        out = GenerationRecord(**rec, generation=text, generation_ids=backend.tokenize(text),
                               target_ids=backend.tokenize(i.delimiter + (i.target or "")))
        if gen.stop_string or gen.output_regex or gen.filters:
            out["answer"] = apply_filters(extract_answer(text, gen.stop_string, gen.output_regex), gen.filters)
            out["answer_ids"] = backend.tokenize(out["answer"])
        if refs:
            out["reference_ids"] = [backend.tokenize(i.delimiter + ref) for ref in refs]
        records.append(out)
    return records


def _prompt_cut(backend: Backend, context: str, new_tokens: int) -> bool:
    """Whether a generation prompt is cut to leave room for ``new_tokens``. Every token covers at least one UTF-8
    byte, so only a prompt near the limit in bytes is tokenized."""
    room = backend.max_length - new_tokens
    return len(context.encode("utf-8")) + 4 > room and len(backend.tokenize(context)) > room


def unrepresentable_documents(backend: Backend, prepared: PreparedTask) -> int:
    """How many documents contain text (context, choices or target) that the model's tokenizer maps to unknown
    or padding tokens: their scores say nothing about the task (e.g. letters on a digits-only vocabulary)."""
    per_doc = [[*(i.contexts or [i.context]), *i.continuations, i.delimiter + (i.target or "")] for i in prepared.instances]
    flags = iter(backend.unrepresentable([t for texts in per_doc for t in texts]))
    return sum(any([next(flags) for _ in texts]) for texts in per_doc)


def chance_levels(prepared: PreparedTask) -> dict[str, float]:
    """Chance per metric where it is known, or the task's ``chance``. Multiple choice: 1/choices; when every
    document has the same choices (a classification task), accuracy's chance is the majority-class rate."""
    spec = prepared.task.spec
    insts = prepared.instances
    out: dict[str, float] = {}
    if spec.output == "multiple_choice":
        uniform = float(np.mean([1.0 / len(i.choices or (0, 0)) for i in insts]))
        acc = uniform
        if len(insts) > 1 and len({tuple(i.choices or ()) for i in insts}) == 1:
            acc = max(sum(i.gold == g for i in insts) for g in {i.gold for i in insts}) / len(insts)
        out.update({"acc": acc, "acc_norm": acc, "p_correct": uniform})
        if all(i.choice_scores is not None for i in insts):  # a uniform guess's expected credit (BIG-bench's low score)
            out["multiple_choice_grade"] = float(np.mean([np.mean(i.choice_scores or (0.0,)) for i in insts]))
    if spec.chance is not None:
        out.update({m.name: spec.chance for m in spec.metrics if M.METRICS[m.name].kind == "discontinuous"})
    return {m.name: out[m.name] for m in spec.metrics if m.name in out}
