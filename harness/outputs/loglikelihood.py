"""``loglikelihood``: the teacher-forced log-prob of the target after the prompt (LAMBADA-style), with each
target token's greedy flag: the answer's steps that exact match needs all of."""

from __future__ import annotations

from collections.abc import Sequence

from typing_extensions import NotRequired

from harness.models.backend import Backend, LogLikelihood
from harness.outputs.base import BaseRecord, Instance, LmEvalRecord, Output, Settings, register


class TargetRecord(BaseRecord):
    """The teacher-forced log-prob of the target."""

    prompt: str
    target: str
    target_logprob: float
    target_tokens: int
    is_greedy: bool
    token_greedy: list[bool]  # per target token under teacher forcing: is it the argmax (the answer's steps)
    references: NotRequired[list[str]]  # every acceptable answer, when the task lists them
    reference_logprobs: NotRequired[list[float]]  # each reference's log-prob, when there are several


def several_references(instances: Sequence[Instance]) -> list[list[str]]:
    """Each instance's references when it lists more than one (each is scored too), else none."""
    return [list(i.references) if i.references and len(i.references) > 1 else [] for i in instances]


def score_targets(backend: Backend, instances: Sequence[Instance], cut: Sequence[bool] = ()) -> list[TargetRecord]:
    """The target's (and each listed reference's) log-prob after the prompt; ``cut``: prompts known to be cut."""
    several = several_references(instances)
    lls = backend.loglikelihood([(i.context, i.delimiter + (i.target or "")) for i in instances]
                                + [(i.context, i.delimiter + ref) for i, refs in zip(instances, several) for ref in refs])
    extra = iter(lls[len(instances):])
    records = []
    for k, (i, refs, r) in enumerate(zip(instances, several, lls)):
        rec = TargetRecord(doc_id=i.doc_id, doc_hash=i.doc_hash, prompt=i.context, target=i.target or "",
                           target_logprob=r.logprob, target_tokens=r.n_tokens, is_greedy=r.is_greedy,
                           token_greedy=list(r.token_greedy), metrics={})
        if r.truncated or (cut and cut[k]):
            rec["truncated"] = True
        if i.references is not None:
            rec["references"] = list(i.references)
        if refs:
            rec["reference_logprobs"] = [next(extra).logprob for _ in refs]
        records.append(rec)
    return records


@register
class Loglikelihood(Output):
    name = "loglikelihood"
    needs = ("target",)
    record = TargetRecord
    partners = ("target_logprob", "token_accuracy")

    def evaluate(self, backend: Backend, instances: Sequence[Instance], spec: Settings) -> list[BaseRecord]:
        return list(score_targets(backend, instances))

    def lm_eval_partners(self, record: LmEvalRecord, answers: Sequence[LogLikelihood]) -> None:
        if answers:
            record["target_logprob"] = answers[0].logprob
            record["metrics"]["target_logprob"] = answers[0].logprob
