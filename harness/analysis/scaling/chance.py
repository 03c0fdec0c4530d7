"""What the classifier needs to know about a metric and a task it did not compute itself: direction,
bounds, kind (discontinuous or continuous), and the chance level of common lm-evaluation-harness tasks.

Chance is the score of a model that ignores the input: 1/choices for multiple choice with balanced
answers, the majority-class rate for classification sets with skewed labels (BoolQ, RTE, MRPC, ...),
and 0 for open generation scored by exact match. A task not listed here has unknown chance, and the
classifier says so instead of guessing; ``--chance TASK=VALUE`` supplies one.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Optional

from harness import metrics as M


@dataclass(frozen=True)
class MetricInfo:
    higher_is_better: bool
    kind: Optional[str]  # "discontinuous" | "continuous" | None when unknown
    lower: Optional[float] = None  # bounds of the metric's range, when it has them
    upper: Optional[float] = None

    @property
    def ceiling(self) -> Optional[float]:
        """The best possible value."""
        return self.upper if self.higher_is_better else self.lower


_ACCURACY = MetricInfo(True, "discontinuous", 0.0, 1.0)
# Names used by this harness and by lm-eval for metrics that are not in this harness's registry.
_OTHER: dict[str, MetricInfo] = {
    "exact_match": _ACCURACY, "em": _ACCURACY, "mc1": _ACCURACY, "mcc": MetricInfo(True, "discontinuous", -1.0, 1.0),
    "f1": MetricInfo(True, "discontinuous", 0.0, 1.0), "contains": _ACCURACY, "bleu": MetricInfo(True, "continuous", 0.0, 100.0),
    "mc2": MetricInfo(True, "continuous", 0.0, 1.0), "brier_score": MetricInfo(False, "continuous", 0.0, 2.0),
    "perplexity": MetricInfo(False, "continuous", 1.0, None), "ppl": MetricInfo(False, "continuous", 1.0, None),
    "word_perplexity": MetricInfo(False, "continuous", 1.0, None), "byte_perplexity": MetricInfo(False, "continuous", 1.0, None),
    "bits_per_byte": MetricInfo(False, "continuous", 0.0, None), "acc_mutual_info": _ACCURACY,
}
_BOUNDS = {"acc": (0.0, 1.0), "acc_norm": (0.0, 1.0), "p_correct": (0.0, 1.0), "brier": (0.0, 2.0), "exact_match": (0.0, 1.0),
           "is_greedy": (0.0, 1.0), "target_logprob": (None, 0.0), "target_logprob_per_token": (None, 0.0),
           "char_edit_distance": (0.0, None), "token_edit_distance": (0.0, None), "gold_rank": (1.0, None),
           "bits_per_byte": (0.0, None), "token_perplexity": (1.0, None), "word_perplexity": (1.0, None),
           "multiple_choice_grade": (0.0, 1.0), "exact_str_match": (0.0, 1.0), "case_insensitive_str_match": (0.0, 1.0),
           "numeric_match_with_0_1_relative_error": (0.0, 1.0), "token_accuracy": (0.0, 1.0), "bleu": (0.0, 100.0),
           "rouge1": (0.0, 100.0), "rouge2": (0.0, 100.0), "rougeLsum": (0.0, 100.0), "sequence_f1": (0.0, 100.0)}


def metric_info(name: str) -> MetricInfo:
    """Direction, kind and bounds of a metric by name; unknown names are taken as higher-is-better, kind unknown."""
    base = name.split(",")[0]  # lm-eval 0.4 writes "acc,none"
    if base in M.METRICS:
        m = M.METRICS[base]
        lo, hi = _BOUNDS.get(base, (None, None))
        return MetricInfo(m.higher_is_better, m.kind, lo, hi)
    if base in _OTHER:
        return _OTHER[base]
    return MetricInfo(True, None)


# Accuracy-type chance for lm-eval task names (globs; first match wins). Majority-class rates are for
# the splits lm-eval scores (validation sets of SuperGLUE/GLUE).
CHANCE: list[tuple[str, float]] = [
    ("mmlu*", 0.25), ("arc_easy", 0.25), ("arc_challenge", 0.25), ("hellaswag", 0.25), ("piqa", 0.5),
    ("winogrande", 0.5), ("sciq", 0.25), ("logiqa*", 0.25), ("wsc273", 0.5), ("copa", 0.5),
    ("openbookqa", 0.25), ("boolq", 0.622), ("rte", 0.527), ("cb", 0.5), ("wic", 0.5), ("mrpc", 0.684),
    ("qnli", 0.505), ("sst2", 0.509), ("mnli*", 0.354), ("anli*", 1 / 3), ("race", 0.25), ("mathqa", 0.2),
    ("commonsense_qa", 0.2), ("social_iqa", 1 / 3), ("siqa", 1 / 3), ("xcopa*", 0.5), ("xwinograd*", 0.5),
    ("xstorycloze*", 0.5), ("storycloze*", 0.5), ("headqa*", 0.25), ("medmcqa", 0.25), ("medqa*", 0.25),
    ("prost", 0.25), ("swag", 0.25), ("gpqa*", 0.25), ("agieval*", 0.25), ("cmmlu*", 0.25), ("ceval*", 0.25),
    ("lambada*", 0.0), ("gsm8k*", 0.0), ("triviaqa", 0.0), ("nq_open", 0.0), ("squad*", 0.0), ("drop", 0.0),
]
CHANCE_METRICS = {"acc", "acc_norm", "exact_match", "em", "acc_mutual_info", "contains", "mc1"}


def known_chance(task: str, metric: str) -> Optional[float]:
    """The shipped chance level of an lm-eval task for accuracy-type metrics, or None when unknown."""
    if metric.split(",")[0] not in CHANCE_METRICS:
        return None
    for pattern, value in CHANCE:
        if fnmatch.fnmatchcase(task.lower(), pattern):
            return value
    return None
