"""``generate``: the target's teacher-forced log-prob (the continuous partner) and the model's own continuation up
to a stop sequence, with the answer extracted from it when the task asks; both token sequences are kept so edit
distances and exact match come from the same record."""

from __future__ import annotations

from collections.abc import Sequence

from typing_extensions import NotRequired

from harness.extraction import apply_filters, extract_answer
from harness.models.backend import Backend, GenerationRequest
from harness.outputs.base import BaseRecord, Instance, Output, Settings, register
from harness.outputs.loglikelihood import TargetRecord, score_targets, several_references


class GenerationRecord(TargetRecord):
    """The target's log-prob, plus the generated text and both token sequences; with an answer extraction
    (``generation.stop_string``/``output_regex``/``filters``) the extracted ``answer`` that metrics score."""

    generation: str
    generation_ids: list[int]
    target_ids: list[int]
    answer: NotRequired[str]
    answer_ids: NotRequired[list[int]]
    reference_ids: NotRequired[list[list[int]]]  # each reference's token ids, when there are several


def prompt_cut(backend: Backend, context: str, new_tokens: int) -> bool:
    """Whether a generation prompt is cut to leave room for ``new_tokens``. Every token covers at least one UTF-8
    byte, so only a prompt near the limit in bytes is tokenized."""
    room = backend.max_length - new_tokens
    return len(context.encode("utf-8")) + 4 > room and len(backend.tokenize(context)) > room


@register
class Generate(Output):
    name = "generate"
    needs = ("target",)
    record = GenerationRecord
    partners = ("target_logprob", "token_accuracy", "char_edit_distance")

    def new_tokens(self, spec: Settings) -> int:
        return int(spec.generation.max_new_tokens)

    def evaluate(self, backend: Backend, instances: Sequence[Instance], spec: Settings) -> list[BaseRecord]:
        gen = spec.generation
        cut = [prompt_cut(backend, i.context, gen.max_new_tokens) for i in instances]
        scored = score_targets(backend, instances, cut)
        texts = backend.generate([GenerationRequest(i.context, tuple(gen.until), gen.max_new_tokens) for i in instances])
        records: list[BaseRecord] = []
        for rec, i, text, refs in zip(scored, instances, texts, several_references(instances)):
            out = GenerationRecord(**rec, generation=text, generation_ids=backend.tokenize(text),
                                   target_ids=backend.tokenize(i.delimiter + (i.target or "")))
            if gen.stop_string or gen.output_regex or gen.filters:
                out["answer"] = apply_filters(extract_answer(text, gen.stop_string, gen.output_regex), gen.filters)
                out["answer_ids"] = backend.tokenize(out["answer"])
            if refs:
                out["reference_ids"] = [backend.tokenize(i.delimiter + ref) for ref in refs]
            records.append(out)
        return records
