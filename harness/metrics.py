"""Metrics: per-example values computed from a record, then aggregated with a standard error.

Records keep the raw quantities (every choice's log-prob, token counts, the generation), so any
metric here can be recomputed later without running a model. Metrics register by decorator.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np
from rapidfuzz.distance import Levenshtein

from harness.errors import HarnessError
from harness.extraction import regex_sub

Record = Mapping[str, Any]  # a per-example record of any output type (see ``harness.outputs``), read by field
LN2 = math.log(2)


@dataclass(frozen=True)
class Metric:
    name: str
    outputs: tuple[str, ...]
    fn: Callable[[Record, dict], float]
    kind: Literal["discontinuous", "continuous"]
    higher_is_better: bool = True
    options: dict[str, Any] = field(default_factory=dict)  # allowed options with defaults
    # A corpus-level metric (bits per byte, BLEU) is a function of summed per-record statistics: ``stats(record)``
    # gives a record's, ``combine(sums)`` the value. None: the metric is the mean of per-record values.
    stats: Optional[Callable[[Record], Sequence[float]]] = None
    combine: Optional[Callable[[np.ndarray], float]] = None

    def corpus(self, records: Sequence[Record]) -> float:
        """The corpus-level value over ``records`` (summed statistics combined)."""
        assert self.stats is not None and self.combine is not None
        return self.combine(np.sum([self.stats(r) for r in records], axis=0))


METRICS: dict[str, Metric] = {}


def metric(name: str, outputs: tuple[str, ...], kind: str, *, higher_is_better: bool = True,
           options: Optional[dict] = None, stats: Optional[Callable] = None,
           combine: Optional[Callable] = None) -> Callable:
    """Register ``fn(record, options) -> float`` as a metric for the given output types."""

    def register(fn: Callable[[Record, dict], float]) -> Callable:
        METRICS[name] = Metric(name, outputs, fn, kind, higher_is_better, options or {}, stats, combine)  # type: ignore[arg-type]
        return fn

    return register


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
    """Accuracy after dividing each choice's log-prob by its length in characters (delimiter excluded), as
    lm-eval's ``acc_norm``."""
    lengths = np.array([len(c) for c in r["choices"]], dtype=np.float64)
    return float(int(np.argmax(np.asarray(r["logprobs"]) / np.maximum(lengths, 1.0))) == r["gold"])


@metric("acc_bytes", ("multiple_choice",), "discontinuous")
def acc_bytes(r: Record, _: dict) -> float:
    """Accuracy after dividing each choice's log-prob by its UTF-8 byte length (delimiter excluded), as lm-eval's
    ``acc_bytes``."""
    scores = np.asarray(r["logprobs"]) / np.maximum(np.asarray(r["n_bytes"], dtype=np.float64), 1.0)
    return float(int(np.argmax(scores)) == r["gold"])


@metric("multiple_choice_grade", ("multiple_choice",), "discontinuous")
def multiple_choice_grade(r: Record, _: dict) -> float:
    """BIG-bench's score: the credit (``choice_scores``) of the most likely choice; without credits, accuracy.
    Exact ties are broken as BIG-bench breaks them (its ``argmax``: a choice among the tied ones picked by the
    sha256 of the normalized log-probs)."""
    best = bigbench_argmax(r["logprobs"])
    return float(r["choice_scores"][best]) if "choice_scores" in r else float(best == r["gold"])


def bigbench_argmax(logprobs: Sequence[float]) -> int:
    """BIG-bench's ``task_metrics.argmax`` on the log-probs normalized over the choices (as ``json_task`` does)."""
    import hashlib

    from scipy.special import logsumexp

    x = np.asarray(logprobs, dtype=np.float64)
    x = x - logsumexp(x)
    tied = np.arange(len(x))[x == np.max(x)]
    return int(tied[int(hashlib.sha256(x.tobytes()).hexdigest(), 16) % len(tied)])


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


def _binary_counts(r: Record) -> list[float]:
    """[tp, fp, fn, tn] of one two-choice document, choice 1 the positive class (sklearn's default)."""
    if len(r["logprobs"]) != 2:
        raise HarnessError(f"f1 and mcc are binary: this document has {len(r['logprobs'])} choices")
    pred, gold = int(np.argmax(r["logprobs"])), r["gold"]
    return [float(pred == 1 and gold == 1), float(pred == 1 and gold == 0), float(pred == 0 and gold == 1),
            float(pred == 0 and gold == 0)]


def _f1(s: np.ndarray) -> float:
    tp, fp, fn = s[0], s[1], s[2]
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0


def _mcc(s: np.ndarray) -> float:
    tp, fp, fn, tn = s
    den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / den) if den else 0.0


@metric("f1", ("multiple_choice",), "discontinuous", stats=_binary_counts, combine=_f1)
def f1(r: Record, _: dict) -> float:
    """Binary F1 over the corpus (positive class: choice 1), as lm-eval's ``f1`` (sklearn ``f1_score``)."""
    return _f1(np.asarray(_binary_counts(r)))


@metric("mcc", ("multiple_choice",), "discontinuous", stats=_binary_counts, combine=_mcc)
def mcc(r: Record, _: dict) -> float:
    """Matthews correlation over the corpus of a two-choice task, as lm-eval's ``mcc``."""
    return _mcc(np.asarray(_binary_counts(r)))


# ---------------------------------------------------------------- generation

def answer(r: Record) -> str:
    """The text generation metrics score: the generation after the task's answer extraction (``answer``, see
    ``extract_answer``), else the generation itself."""
    return str(r.get("answer", r["generation"]))


def references(r: Record) -> list[str]:
    """Every acceptable answer: the task's ``references``, else the target."""
    return list(r.get("references") or [r["target"]])


def normalize_answer(text: str, options: dict) -> str:
    """``regexes_to_ignore`` removed first, then case and punctuation, then whitespace collapsed (``strip``), in
    lm-eval's order."""
    for pattern in options.get("regexes_to_ignore") or []:
        text = regex_sub(str(pattern), "", text)
    if options.get("ignore_case"):
        text = text.lower()
    if options.get("ignore_punctuation"):
        text = text.translate(str.maketrans("", "", string.punctuation))
    if options.get("strip", True):
        text = " ".join(text.split())
    return text


@metric("exact_match", ("generate",), "discontinuous",
        options={"ignore_case": False, "ignore_punctuation": False, "strip": True, "regexes_to_ignore": []})
def exact_match(r: Record, o: dict) -> float:
    """1 when the answer equals the target (or any of the task's references) after the options' normalization."""
    got = normalize_answer(answer(r), o)
    return float(any(got == normalize_answer(ref, o) for ref in references(r)))


@metric("exact_str_match", ("generate",), "discontinuous")
def exact_str_match(r: Record, _: dict) -> float:
    """BIG-bench's exact match: the answer equals one of the references, as is."""
    return float(answer(r) in references(r))


@metric("case_insensitive_str_match", ("generate",), "discontinuous")
def case_insensitive_str_match(r: Record, _: dict) -> float:
    """BIG-bench's: the answer, stripped and lower-cased, equals a reference stripped and lower-cased."""
    return float(answer(r).strip().lower() in [t.strip().lower() for t in references(r)])


@metric("numeric_match_with_0_1_relative_error", ("generate",), "discontinuous")
def numeric_match(r: Record, _: dict) -> float:
    """BIG-bench's: the answer is a number within 10% of the (single) reference, absolute error when it is 0."""
    try:
        target, value = float(references(r)[0]), float(answer(r))
    except ValueError:
        return 0.0
    return float(abs(value - target) / (target if target != 0 else 1) <= 0.1)


@metric("sequence_f1", ("generate",), "discontinuous")
def sequence_f1(r: Record, _: dict) -> float:
    """BIG-bench's (despite the name, t5's ``sequence_accuracy`` over labels, × 100): the answer's space-separated
    labels, trimmed or padded with "O" to the first reference's length, the share equal to the reference's."""
    target = references(r)[0].split(" ")
    predicted = (answer(r).split(" ") + ["O"] * len(target))[: len(target)]
    return 100.0 * float(np.mean([p == t for p, t in zip(predicted, target)]))


def _bleu_stats(r: Record) -> list[float]:
    """sacrebleu's sufficient statistics (hypothesis and closest reference lengths, matched and total n-grams for
    n = 1..4) as t5's ``bleu`` (BIG-bench's) sets it up: 'intl' tokenizer, case kept."""
    return [float(x) for x in _BLEU()._extract_corpus_statistics([answer(r)], [[t] for t in references(r)])[0]]


def _bleu_combine(s: np.ndarray) -> float:
    from sacrebleu.metrics import BLEU

    counts = [int(x) for x in s]
    return float(BLEU.compute_bleu(counts[2:6], counts[6:10], counts[0], counts[1], smooth_method="exp",
                                   smooth_value=0.0, effective_order=False).score)


def _BLEU() -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize="intl", smooth_method="exp", smooth_value=0.0, effective_order=False, lowercase=False)


@metric("bleu", ("generate",), "continuous", stats=_bleu_stats, combine=_bleu_combine)
def bleu(r: Record, _: dict) -> float:
    """Corpus BLEU (0–100) over the answers against every reference, exactly ``sacrebleu.corpus_bleu`` as t5 and
    BIG-bench call it; per example, the same on one sentence."""
    return _bleu_combine(np.asarray(_bleu_stats(r)))


def _rouge(kind: str) -> Callable[[Record, dict], float]:
    def fn(r: Record, _: dict) -> float:
        """ROUGE F-measure × 100 against the best reference (BIG-bench's ``rouge_fn`` via t5's ``rouge``: the
        rouge_score package, default tokenizer, no stemming, " . " as a sentence break for rougeLsum)."""
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer([kind])
        pred = answer(r).replace(" . ", " .\n")
        return max(100.0 * scorer.score(target=t.replace(" . ", " .\n"), prediction=pred)[kind].fmeasure
                   for t in references(r))
    return fn


for _kind in ("rouge1", "rouge2", "rougeLsum"):
    metric(_kind, ("generate",), "continuous")(_rouge(_kind))


@metric("char_edit_distance", ("generate",), "continuous", higher_is_better=False)
def char_edit_distance(r: Record, _: dict) -> float:
    """Levenshtein distance in characters from the answer to the closest reference (both stripped)."""
    return float(min(Levenshtein.distance(answer(r).strip(), t.strip()) for t in references(r)))


@metric("token_edit_distance", ("generate",), "continuous", higher_is_better=False)
def token_edit_distance(r: Record, _: dict) -> float:
    """Levenshtein distance between the answer's and the closest reference's token ids (the model's tokenizer)."""
    candidates = r.get("reference_ids") or [r["target_ids"]]
    return float(min(Levenshtein.distance(r.get("answer_ids", r["generation_ids"]), t) for t in candidates))


@metric("target_logprob", ("multiple_choice", "generate", "loglikelihood"), "continuous")
def target_logprob(r: Record, _: dict) -> float:
    """Log-prob (nats) of the gold continuation: the gold choice, or the teacher-forced target (the best of the
    references when the task lists several)."""
    if "logprobs" in r:
        return float(r["logprobs"][r["gold"]])
    return float(max(r.get("reference_logprobs") or [r["target_logprob"]]))


@metric("target_logprob_per_token", ("multiple_choice", "generate", "loglikelihood"), "continuous")
def target_logprob_per_token(r: Record, _: dict) -> float:
    if "logprobs" in r:
        return float(r["logprobs"][r["gold"]] / max(r["n_tokens"][r["gold"]], 1))
    return float(r["target_logprob"] / max(r["target_tokens"], 1))


@metric("token_accuracy", ("generate", "loglikelihood"), "continuous")
def token_accuracy(r: Record, _: dict) -> float:
    """The share of target tokens that are the model's argmax given the true prefix (teacher forcing): the
    answer's steps scored separately; exact match needs them all."""
    steps = r.get("token_greedy") or [r["is_greedy"]]
    return float(np.mean(steps))


@metric("is_greedy", ("loglikelihood",), "discontinuous")
def is_greedy(r: Record, _: dict) -> float:
    return float(r["is_greedy"])


# ---------------------------------------------------------------- perplexity (corpus-level)

def _bpb(s: np.ndarray) -> float:  # statistics: log-prob, bytes
    return float(-s[0] / (LN2 * max(s[1], 1)))


def _ppl(s: np.ndarray) -> float:  # statistics: log-prob, tokens or words
    return float(math.exp(-s[0] / max(s[1], 1)))


def _register_perplexity(name: str, unit: str, combine: Callable[[np.ndarray], float]) -> None:
    def stats(r: Record) -> list[float]:
        return [r["logprob"], r[unit]]

    def per_record(r: Record, _: dict) -> float:
        return combine(np.asarray(stats(r), dtype=np.float64))

    metric(name, ("perplexity",), "continuous", higher_is_better=False, stats=stats, combine=combine)(per_record)


_register_perplexity("bits_per_byte", "n_bytes", _bpb)
_register_perplexity("token_perplexity", "n_tokens", _ppl)
_register_perplexity("word_perplexity", "n_words", _ppl)
_register_perplexity("byte_perplexity", "n_bytes", _ppl)


def _target_stats(r: Record) -> list[float]:
    return [r["target_logprob"], 1.0]


@metric("target_perplexity", ("loglikelihood",), "continuous", higher_is_better=False, stats=_target_stats,
        combine=_ppl)
def target_perplexity(r: Record, _: dict) -> float:
    """exp(−mean target log-prob) over documents: lm-eval's ``perplexity`` of a loglikelihood task (LAMBADA)."""
    return _ppl(np.asarray(_target_stats(r)))


# ---------------------------------------------------------------- aggregation

@dataclass(frozen=True)
class Score:
    metric: str
    value: float
    stderr: float
    n: int


def aggregate(name: str, records: Sequence[Record], *, bootstrap: int = 1000, seed: int = 0) -> Score:
    """Mean with its closed-form standard error, or a corpus-level value with a bootstrap one (resampling the
    records' summed statistics)."""
    m = METRICS[name]
    n = len(records)
    if n == 0:
        return Score(name, float("nan"), float("nan"), 0)
    if m.stats is None or m.combine is None:
        values = np.array([r["metrics"][name] for r in records], dtype=np.float64)
        stderr = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
        return Score(name, float(values.mean()), stderr, n)
    stats = np.asarray([m.stats(r) for r in records], dtype=np.float64)
    value = m.combine(stats.sum(axis=0))
    rng = np.random.default_rng(seed)
    reps = [m.combine(stats[rng.integers(0, n, n)].sum(axis=0)) for _ in range(bootstrap)] if n > 1 else []
    return Score(name, value, float(np.std(reps, ddof=1)) if reps else float("nan"), n)
