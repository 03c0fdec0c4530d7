"""lm-eval tasks scored by lm-eval, computed by this harness's engine: an adapter gives lm-eval's evaluator the
LM interface (``loglikelihood``, ``loglikelihood_rolling``, ``generate_until``) over a loaded backend, so its
batching, packing and shared-prefix reuse answer every request; lm-eval applies the task's filters,
``process_results``, metrics and aggregations. Records keep each document's requests, raw and filtered answers
and metric values, beside the continuous partners the requests allow (choice log-probs → ``p_correct``, Brier)."""

from __future__ import annotations

import contextlib
import functools
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

import numpy as np

from harness import metrics as M
from harness.errors import HarnessError
from harness.files import digest
from harness.models.backend import Backend, GenerationRequest, LogLikelihood, Sampling
from harness.outputs import LmEvalRecord, Output, output_type
from harness.tasks.sources.lm_eval import LmEvalTask

DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's HF backend default


def engine_lm(backend: Backend, chat_template: bool | str = False, seed: int = 1234) -> Any:
    """An ``lm_eval.api.model.LM`` whose answers come from ``backend``; ``.answers`` keeps each request's
    log-likelihood (token counts, truncation) by (document id, request index). ``chat_template``: the model's
    tokenizer's template (True) or one of its named templates formats chat prompts, as lm-eval's HF backend does.
    ``seed``: sampled requests draw from streams seeded by it, the task, the document, the request and the copy."""
    from lm_eval.api.model import LM

    class EngineLM(LM):
        def __init__(self) -> None:
            super().__init__()
            self.answers: dict[tuple[int, int], LogLikelihood] = {}

        @property
        def tokenizer_name(self) -> str:
            return str(getattr(getattr(backend, "tokenizer", None), "name_or_path", "")).replace("/", "__")

        def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
            tokenizer = getattr(backend, "tokenizer", None)
            named = {"chat_template": chat_template} if isinstance(chat_template, str) else {}
            if tokenizer is None or not (getattr(tokenizer, "chat_template", None) or named):
                raise HarnessError("this model's tokenizer has no chat template", where="apply_chat_template")
            return str(tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                     add_generation_prompt=add_generation_prompt,
                                                     continue_final_message=not add_generation_prompt, **named))

        def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            out = backend.loglikelihood([(str(r.args[0]), str(r.args[1])) for r in requests])
            for r, ll in zip(requests, out):
                self.answers[(r.doc_id, r.idx)] = ll
            return [(ll.logprob, ll.is_greedy) for ll in out]

        def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[float]:
            out = backend.loglikelihood_rolling([str(r.args[0]) for r in requests], None, None)
            for r, ll in zip(requests, out):
                self.answers[(r.doc_id, r.idx)] = ll
            return [ll.logprob for ll in out]

        def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
            from lm_eval.models.utils import normalize_gen_kwargs

            asks, seen = [], Counter[tuple[int, int]]()
            for r in requests:  # lm-eval repeats a request ``repeats`` times: each copy draws its own stream
                kwargs = normalize_gen_kwargs(dict(r.args[1] or {}), DEFAULT_MAX_GEN_TOKS)
                copy = seen[(r.doc_id, r.idx)]
                seen[(r.doc_id, r.idx)] += 1
                stream = digest([seed, r.task_name, r.doc_id, r.idx, copy])
                asks.append(GenerationRequest(str(r.args[0]), tuple(kwargs["until"]), int(kwargs["max_gen_toks"]),
                                              sampling(kwargs, int(stream[:15], 16))))
            return backend.generate(asks)

    return EngineLM()


GENERATION_KWARGS = {"until", "max_gen_toks", "do_sample", "temperature", "top_p", "top_k", "num_beams"}


def sampling(kwargs: Mapping[str, Any], seed: int) -> Optional[Sampling]:
    """How to decode one request, from lm-eval's normalized generation keyword arguments: greedy unless
    ``do_sample`` (temperature 1 where none is given, as Hugging Face's default; temperature 0 is greedy)."""
    unknown = sorted(set(kwargs) - GENERATION_KWARGS)
    if unknown:
        raise HarnessError(f"generation keyword(s) {', '.join(unknown)} not supported (the engine takes "
                           f"{', '.join(sorted(GENERATION_KWARGS))})", where="generation_kwargs")
    if int(kwargs.get("num_beams") or 1) != 1:
        raise HarnessError(f"beam search (num_beams={kwargs['num_beams']}) is not supported: the engine decodes "
                           "greedily or samples", where="generation_kwargs")
    temperature = float(kwargs["temperature"]) if kwargs.get("temperature") is not None else 1.0
    if not kwargs.get("do_sample") or temperature == 0.0:
        return None
    top_p, top_k = float(kwargs.get("top_p") or 1.0), int(kwargs.get("top_k") or 0)
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise HarnessError(f"sampling needs temperature >= 0, 0 < top_p <= 1, top_k >= 0 (got {temperature}, "
                           f"{top_p}, {top_k})", where="generation_kwargs")
    return Sampling(temperature, top_k, top_p, seed)


def evaluate_lm_eval(backend: Backend, task: LmEvalTask, limit: Optional[int] = None,
                     bootstrap_iters: int = 100_000) -> tuple[list[LmEvalRecord], dict[str, dict], dict[str, float]]:
    """Run one lm-eval task on a loaded model: per-document records, scores (every metric lm-eval reports, each
    filter as lm-eval names it, with its stderr, beside the continuous partners) and chance levels."""
    from lm_eval import evaluator

    settings = task.settings
    lm = engine_lm(backend, settings.apply_chat_template, settings.seed)
    built = task.build()
    with _lm_eval_context():
        out = evaluator.evaluate(lm=lm, task_dict={"tasks": {task.name: built}, "groups": {}, "group_map": {}},
                                 limit=limit, bootstrap_iters=bootstrap_iters, log_samples=True, verbosity="ERROR",
                                 apply_chat_template=settings.apply_chat_template,
                                 system_instruction=settings.system_instruction,
                                 fewshot_as_multiturn=settings.fewshot_as_multiturn)
    if out is None:
        raise HarnessError("lm-eval returned no results", source=task.source)
    kind = output_type(task.spec.output)
    records = _records(out["samples"][task.name], kind, lm.answers)
    scores = _scores(out, task.name, records, kind.partners)
    chance = kind.chance(records)
    return records, scores, {k: v for k, v in chance.items() if k in scores}


@contextlib.contextmanager
def _lm_eval_context() -> Iterator[None]:
    """lm-eval as the run needs it: its progress bar (building requests) and info logs off (the run shows its own
    progress), and each Jinja template compiled once instead of once per document (lm-eval's ``apply_template``
    compiles on every call; the environment and so every rendering are its own)."""
    import logging
    from unittest import mock

    from lm_eval import utils

    compiled = functools.lru_cache(maxsize=4096)(utils.env.from_string)
    log = logging.getLogger("lm_eval")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with mock.patch("lm_eval.api.task.tqdm", lambda items, **_: items), \
                mock.patch.object(utils, "apply_template", lambda template, doc: compiled(template).render(**doc)):
            yield
    finally:
        log.setLevel(level)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(float(value)):
        return float(value)
    return None


def _records(samples: list[dict], kind: Output, answers: dict[tuple[int, int], LogLikelihood]) -> list[LmEvalRecord]:
    """One record per document: its requests, raw answers, filtered answers per filter, and every numeric
    per-document metric value (``metric`` for lm-eval's ``none`` filter, ``metric,filter`` otherwise)."""
    by_doc: dict[int, LmEvalRecord] = {}
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        doc_id = int(s["doc_id"])
        rec = by_doc.setdefault(doc_id, LmEvalRecord(
            doc_id=doc_id, doc_hash=s.get("doc_hash"), target=s.get("target"),
            requests=[list(a) for a in s.get("arguments") or []], resps=s.get("resps"), filtered={}, metrics={}))
        filt = s.get("filter", "none")
        rec["filtered"][filt] = s.get("filtered_resps")
        for metric in s.get("metrics", []):
            value = _number(s.get(metric))
            if value is not None:
                rec["metrics"][metric if filt == "none" else f"{metric},{filt}"] = value
    records = list(by_doc.values())
    per_doc: dict[int, list[LogLikelihood]] = {}
    for (doc_id, _), ll in sorted(answers.items()):
        per_doc.setdefault(doc_id, []).append(ll)
    for rec in records:
        mine = per_doc.get(rec["doc_id"], [])
        if any(ll.truncated for ll in mine):
            rec["truncated"] = True
        kind.lm_eval_partners(rec, mine)
    return records


def _scores(out: dict, name: str, records: list[LmEvalRecord], partners: Sequence[str]) -> dict[str, dict]:
    """lm-eval's reported metrics with their stderr (and whether higher is better), then the partners."""
    res = out["results"][name]
    n = int(out.get("n-samples", {}).get(name, {}).get("effective") or len(records))
    better = out.get("higher_is_better", {}).get(name, {})
    scores: dict[str, dict] = {}
    for key, raw in res.items():
        metric, _, filt = key.partition(",")
        value = _number(raw)
        if not filt or metric.endswith("_stderr") or value is None:
            continue
        label = metric if filt == "none" else key
        se = _number(res.get(f"{metric}_stderr,{filt}"))
        values = [r["metrics"][label] for r in records if label in r["metrics"]]
        binary = bool(values) and set(values) <= {0.0, 1.0}
        scores[label] = {"metric": label, "value": value, "stderr": se, "n": n,
                         "kind": "discontinuous" if binary else "continuous",
                         "higher_is_better": bool(better.get(metric, True))}
    for partner in partners:
        vals = [r["metrics"][partner] for r in records if partner in r["metrics"]]
        if vals and partner not in scores:
            sc = M.aggregate(partner, [{"metrics": {partner: v}} for v in vals])
            scores[partner] = {"metric": partner, "value": sc.value, "stderr": sc.stderr, "n": sc.n,
                               "kind": M.METRICS[partner].kind, "higher_is_better": M.METRICS[partner].higher_is_better}
    return scores


def group_scores(task: LmEvalTask, per_task: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A group's scores as lm-eval computes them from its tasks' (``aggregate_metric_list``: the size-weighted
    mean with the pooled stderr, or the plain mean with the mean's stderr), one per metric and filter; none
    where the group names no aggregation (lm-eval reports none either)."""
    from lm_eval.api.metrics import aggregate_subtask_metrics, pooled_sample_stderr, unweighted_mean_stderr

    out = []
    for metric, filters, by_size in task.group_metrics:
        names = {label for scores in per_task for label in scores}
        wanted = [f"{metric}" if f == "none" else f"{metric},{f}" for f in filters] if filters else sorted(
            n for n in names if n == metric or n.startswith(f"{metric},"))
        for label in wanted:
            found = [scores[label] for scores in per_task if label in scores]
            if not found:
                continue
            values, sizes = [sc["value"] for sc in found], [sc["n"] for sc in found]
            errs = [sc["stderr"] for sc in found if sc.get("stderr") is not None and math.isfinite(sc["stderr"])]
            se = None
            if len(errs) == len(found):
                se = float(pooled_sample_stderr(errs, sizes) if by_size else unweighted_mean_stderr(errs))
            out.append({"metric": label, "value": float(aggregate_subtask_metrics(values, sizes, by_size)),
                        "stderr": se, "n": int(sum(sizes)), "aggregate": "micro" if by_size else "macro",
                        "kind": found[0].get("kind"), "higher_is_better": found[0].get("higher_is_better")})
    return out
