"""Metrics: per-example values computed from a record, then aggregated with a standard error.

Records keep the raw quantities (every choice's log-prob, token counts, the generation), so any
metric here can be recomputed later without running a model. Metrics register by decorator.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np
from rapidfuzz.distance import Levenshtein

from harness.errors import HarnessError

Record = Mapping[str, Any]  # a per-example record (see ``scoring``), read by field
LN2 = math.log(2)


@dataclass(frozen=True)
class Metric:
    name: str
    outputs: tuple[str, ...]
    fn: Callable[[Record, dict], float]
    kind: Literal["discontinuous", "continuous"]
    higher_is_better: bool = True
    options: dict[str, Any] = field(default_factory=dict)  # allowed options with defaults
    # Corpus-level aggregate from all records (e.g. bits per byte); None means the mean.
    corpus: Optional[Callable[[Sequence[Record]], float]] = None


METRICS: dict[str, Metric] = {}


def metric(name: str, outputs: tuple[str, ...], kind: str, *, higher_is_better: bool = True,
           options: Optional[dict] = None, corpus: Optional[Callable] = None) -> Callable:
    """Register ``fn(record, options) -> float`` as a metric for the given output types."""

    def register(fn: Callable[[Record, dict], float]) -> Callable:
        METRICS[name] = Metric(name, outputs, fn, kind, higher_is_better, options or {}, corpus)  # type: ignore[arg-type]
        return fn

    return register


def check_metric(name: str, output: str, options: dict, where: str = "metrics") -> None:
    """Raise a HarnessError if ``name`` is unknown, not defined for ``output``, or given unknown options."""
    m = METRICS.get(name)
    if m is None:
        raise HarnessError(f"unknown metric '{name}' (known: {', '.join(sorted(METRICS))})", where=where)
    if output not in m.outputs:
        ok = sorted(k for k, v in METRICS.items() if output in v.outputs)
        raise HarnessError(f"metric '{name}' is not defined for output '{output}' (use: {', '.join(ok)})", where=where)
    unknown = set(options) - set(m.options)
    if unknown:
        raise HarnessError(f"metric '{name}' has no option(s) {sorted(unknown)} (known: {sorted(m.options) or 'none'})", where=where)


def compute(name: str, record: Record, options: Optional[dict] = None) -> float:
    m = METRICS[name]
    return float(m.fn(record, {**m.options, **(options or {})}))


# ---------------------------------------------------------------- multiple choice

def _softmax(logprobs: Sequence[float]) -> np.ndarray:
    x = np.asarray(logprobs, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


@metric("acc", ("multiple_choice",), "discontinuous")
def acc(r: Record, _: dict) -> float:
    return float(int(np.argmax(r["logprobs"])) == r["gold"])


@metric("acc_norm", ("multiple_choice",), "discontinuous")
def acc_norm(r: Record, _: dict) -> float:
    """Accuracy after dividing each choice's log-prob by its UTF-8 byte length (delimiter excluded)."""
    scores = np.asarray(r["logprobs"]) / np.maximum(np.asarray(r["n_bytes"], dtype=np.float64), 1.0)
    return float(int(np.argmax(scores)) == r["gold"])


@metric("multiple_choice_grade", ("multiple_choice",), "discontinuous")
def multiple_choice_grade(r: Record, _: dict) -> float:
    """BIG-bench's score: the credit (``choice_scores``) of the most likely choice, the first on ties; without
    credits, accuracy."""
    best = int(np.argmax(r["logprobs"]))
    return float(r["choice_scores"][best]) if "choice_scores" in r else float(best == r["gold"])


@metric("p_correct", ("multiple_choice",), "continuous")
def p_correct(r: Record, _: dict) -> float:
    return float(_softmax(r["logprobs"])[r["gold"]])


@metric("brier", ("multiple_choice",), "continuous", higher_is_better=False)
def brier(r: Record, _: dict) -> float:
    """Multi-class Brier score: sum over choices of (p_i - 1[i = gold])^2."""
    p = _softmax(r["logprobs"])
    onehot = np.zeros_like(p)
    onehot[r["gold"]] = 1.0
    return float(((p - onehot) ** 2).sum())


@metric("gold_rank", ("multiple_choice",), "continuous", higher_is_better=False)
def gold_rank(r: Record, _: dict) -> float:
    """1 when the gold choice has the highest log-prob; ties count against the gold choice."""
    lp = r["logprobs"]
    return float(1 + sum(1 for i, x in enumerate(lp) if i != r["gold"] and x >= lp[r["gold"]]))


# ---------------------------------------------------------------- generation

def normalize_answer(text: str, options: dict) -> str:
    if options.get("ignore_case"):
        text = text.lower()
    if options.get("ignore_punctuation"):
        text = text.translate(str.maketrans("", "", string.punctuation))
    if options.get("strip", True):
        text = " ".join(text.split())
    return text


@metric("exact_match", ("generate",), "discontinuous",
        options={"ignore_case": False, "ignore_punctuation": False, "strip": True})
def exact_match(r: Record, o: dict) -> float:
    return float(normalize_answer(r["generation"], o) == normalize_answer(r["target"], o))


BIGBENCH_OUTPUT_REGEX = r"[^\.\?\!\;\n]+"  # BIG-bench's default answer cut


def bigbench_postprocess(text: str, stop_string: Optional[str], output_regex: Optional[str]) -> str:
    """BIG-bench's ``postprocess_output``: keep the text up to and including the first ``stop_string`` (unless it
    starts the text), then the first match of ``output_regex`` ('' when none)."""
    if stop_string:
        index = text.find(stop_string)
        if index > 0:
            text = text[: index + len(stop_string)]
    if output_regex:
        text = next(iter(re.findall(output_regex, text)), "")
    return text


@metric("exact_str_match", ("generate",), "discontinuous", options={"stop_string": None, "output_regex": None})
def exact_str_match(r: Record, o: dict) -> float:
    """BIG-bench's exact match: the post-processed generation equals one of the references (default: the target).
    Without a stop string or regex, BIG-bench's default regex applies."""
    regex = o["output_regex"] if o["output_regex"] or o["stop_string"] else BIGBENCH_OUTPUT_REGEX
    answer = bigbench_postprocess(r["generation"], o["stop_string"], regex)
    return float(answer in r.get("references", [r["target"]]))


@metric("char_edit_distance", ("generate",), "continuous", higher_is_better=False)
def char_edit_distance(r: Record, _: dict) -> float:
    return float(Levenshtein.distance(r["generation"].strip(), r["target"].strip()))


@metric("token_edit_distance", ("generate",), "continuous", higher_is_better=False)
def token_edit_distance(r: Record, _: dict) -> float:
    """Levenshtein distance between the generated and target token ids (the model's tokenizer)."""
    return float(Levenshtein.distance(r["generation_ids"], r["target_ids"]))


@metric("target_logprob", ("multiple_choice", "generate", "loglikelihood"), "continuous")
def target_logprob(r: Record, _: dict) -> float:
    """Log-prob (nats) of the gold continuation: the gold choice, or the teacher-forced target."""
    if "logprobs" in r:
        return float(r["logprobs"][r["gold"]])
    return float(r["target_logprob"])


@metric("target_logprob_per_token", ("multiple_choice", "generate", "loglikelihood"), "continuous")
def target_logprob_per_token(r: Record, _: dict) -> float:
    if "logprobs" in r:
        return float(r["logprobs"][r["gold"]] / max(r["n_tokens"][r["gold"]], 1))
    return float(r["target_logprob"] / max(r["target_tokens"], 1))


@metric("is_greedy", ("loglikelihood",), "discontinuous")
def is_greedy(r: Record, _: dict) -> float:
    return float(r["is_greedy"])


# ---------------------------------------------------------------- perplexity (corpus-level)

def _bpb(rs: Sequence[Record]) -> float:
    return -sum(r["logprob"] for r in rs) / (LN2 * max(sum(r["n_bytes"] for r in rs), 1))


def _ppl(rs: Sequence[Record], unit: str) -> float:
    return math.exp(-sum(r["logprob"] for r in rs) / max(sum(r[unit] for r in rs), 1))


@metric("bits_per_byte", ("perplexity",), "continuous", higher_is_better=False, corpus=_bpb)
def bits_per_byte(r: Record, _: dict) -> float:
    return _bpb([r])


@metric("token_perplexity", ("perplexity",), "continuous", higher_is_better=False,
        corpus=lambda rs: _ppl(rs, "n_tokens"))
def token_perplexity(r: Record, _: dict) -> float:
    return _ppl([r], "n_tokens")


@metric("word_perplexity", ("perplexity",), "continuous", higher_is_better=False,
        corpus=lambda rs: _ppl(rs, "n_words"))
def word_perplexity(r: Record, _: dict) -> float:
    return _ppl([r], "n_words")


# ---------------------------------------------------------------- aggregation

@dataclass(frozen=True)
class Score:
    metric: str
    value: float
    stderr: float
    n: int


def aggregate(name: str, records: Sequence[Record], *, bootstrap: int = 1000, seed: int = 0) -> Score:
    """Mean with its closed-form standard error, or a corpus-level value with a bootstrap one."""
    m = METRICS[name]
    n = len(records)
    if n == 0:
        return Score(name, float("nan"), float("nan"), 0)
    if m.corpus is None:
        values = np.array([r["metrics"][name] for r in records], dtype=np.float64)
        stderr = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
        return Score(name, float(values.mean()), stderr, n)
    value = float(m.corpus(records))
    rng = np.random.default_rng(seed)
    reps = [m.corpus([records[i] for i in rng.integers(0, n, n)]) for _ in range(bootstrap)] if n > 1 else []
    return Score(name, value, float(np.std(reps, ddof=1)) if reps else float("nan"), n)
