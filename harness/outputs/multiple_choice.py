"""``multiple_choice``: every choice scored as a continuation of the prompt; the record keeps each choice's
log-prob and lengths, so accuracy and its continuous partners (p_correct, Brier) come from the same numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from typing_extensions import NotRequired

from harness import metrics as M
from harness.models.backend import Backend, LogLikelihood
from harness.outputs.base import BaseRecord, Instance, LmEvalRecord, Output, Settings, register


class ChoiceRecord(BaseRecord):
    """Every choice's summed log-prob, token and byte lengths, and the gold index."""

    prompt: str
    choices: list[str]
    gold: int
    logprobs: list[float]
    n_tokens: list[int]
    is_greedy: list[bool]
    n_bytes: list[int]
    choice_scores: NotRequired[list[float]]  # credit per choice, when the task gives it (multiple_choice_grade)
    contexts: NotRequired[list[str]]  # multiple input: each choice's context (``prompt`` is the gold one's) ...
    target: NotRequired[str]  # ... and the continuation scored after each


@register
class MultipleChoice(Output):
    name = "multiple_choice"
    needs = ("choices", "answer")
    record = ChoiceRecord
    multiple_input = True
    partners = ("p_correct", "brier", "target_logprob")

    def evaluate(self, backend: Backend, instances: Sequence[Instance], spec: Settings) -> list[BaseRecord]:
        results = iter(backend.loglikelihood([pair for i in instances for pair in i.requests]))
        records: list[BaseRecord] = []
        for i in instances:
            choices = list(i.choices or ())
            assert i.gold is not None  # every multiple-choice instance has one
            res = [next(results) for _ in choices]
            rec = ChoiceRecord(
                doc_id=i.doc_id, doc_hash=i.doc_hash, prompt=i.context, choices=choices, gold=i.gold,
                logprobs=[r.logprob for r in res], n_tokens=[r.n_tokens for r in res],
                is_greedy=[r.is_greedy for r in res], n_bytes=[len(c.encode("utf-8")) for c in choices], metrics={})
            if any(r.truncated for r in res):
                rec["truncated"] = True
            if i.choice_scores is not None:
                rec["choice_scores"] = list(i.choice_scores)
            if i.contexts is not None:
                rec["contexts"], rec["target"] = list(i.contexts), i.target or ""
            records.append(rec)
        return records

    def chance(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """1/choices per document; where every document has the same choices (a classification task), accuracy's
        chance is the majority-class rate; with credit per choice, a uniform guess's expected credit (BIG-bench's
        low score)."""
        scored = [r for r in records if "logprobs" in r and "gold" in r]
        if not scored:
            return {}
        uniform = float(np.mean([1.0 / len(r["logprobs"]) for r in scored]))
        acc = uniform
        # lm-eval's records name their choices by the requests' continuations
        choices = {tuple(r["choices"]) if "choices" in r else tuple(str(q[-1]) for q in r.get("requests") or [])
                   for r in scored}
        if len(scored) > 1 and len(choices) == 1:
            golds = [r["gold"] for r in scored]
            acc = max(golds.count(g) for g in set(golds)) / len(golds)
        out = {"acc": acc, "acc_norm": acc, "p_correct": uniform}
        if all("choice_scores" in r for r in scored):
            out["multiple_choice_grade"] = float(np.mean([np.mean(r["choice_scores"] or (0.0,)) for r in scored]))
        return out

    def lm_eval_partners(self, record: LmEvalRecord, answers: Sequence[LogLikelihood]) -> None:
        """The choices' log-probs (lm-eval's own results), and from them p_correct, Brier and the gold's log-prob."""
        logprobs = [float(r[0][0]) for r in record.get("resps") or []]
        gold = record.get("target")
        if not logprobs or isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(logprobs):
            return
        record["logprobs"], record["gold"] = logprobs, gold
        record["metrics"].update({name: M.compute(name, record) for name in self.partners})
