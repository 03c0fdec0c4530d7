import math

import numpy as np
import pytest

from harness import metrics as M
from harness.errors import HarnessError


def mc(logprobs, gold, n_bytes=None, choices=None):
    """A choice record; by default each choice is ASCII, as many characters as bytes."""
    n_bytes = n_bytes or [1] * len(logprobs)
    choices = choices or ["x" * n for n in n_bytes]
    return {"logprobs": logprobs, "gold": gold, "n_bytes": n_bytes, "n_tokens": [2] * len(logprobs), "choices": choices}


def test_multiple_choice_metrics_by_hand():
    r = mc([-1.0, -2.0, -3.0], gold=1, n_bytes=[10, 1, 10])
    assert M.compute("acc", r) == 0.0
    assert M.compute("acc_norm", r) == 0.0  # per byte -0.1, -2.0, -0.3: choice 0
    p = np.exp([-1.0, -2.0, -3.0]) / np.exp([-1.0, -2.0, -3.0]).sum()
    assert M.compute("p_correct", r) == pytest.approx(p[1])
    assert M.compute("brier", r) == pytest.approx(p[0] ** 2 + (p[1] - 1) ** 2 + p[2] ** 2)
    assert M.compute("target_logprob", r) == -2.0
    assert M.compute("target_logprob_per_token", r) == -1.0
    assert M.compute("gold_rank", r) == 2.0


def test_acc_norm_divides_by_characters_acc_bytes_by_bytes():
    """lm-eval's definitions: they differ once a choice is not ASCII."""
    r = mc([-3.3, -2.0], gold=0, n_bytes=[6, 2], choices=["ééé", "ab"])  # 3 characters in 6 bytes; 2 in 2
    assert M.compute("acc_norm", r) == 0.0  # per character: -1.1 vs -1.0, choice 1
    assert M.compute("acc_bytes", r) == 1.0  # per byte: -0.55 vs -1.0, choice 0


def test_acc_norm_divides_by_length():
    # per byte: -1/10=-0.1, -2/1=-2, -3/10=-0.3: choice 0 wins
    assert M.compute("acc_norm", mc([-1.0, -2.0, -3.0], gold=0, n_bytes=[10, 1, 10])) == 1.0
    assert M.compute("acc_norm", mc([-1.0, -2.0, -3.0], gold=1, n_bytes=[10, 1, 10])) == 0.0
    # unnormalised prefers the short choice, normalised the long one
    r = mc([-4.0, -3.0], gold=0, n_bytes=[8, 2])
    assert M.compute("acc", r) == 0.0 and M.compute("acc_norm", r) == 1.0


def test_ties_go_to_the_first_choice_like_argmax():
    assert M.compute("acc", mc([-1.0, -1.0], gold=0)) == 1.0
    assert M.compute("acc", mc([-1.0, -1.0], gold=1)) == 0.0
    assert M.compute("gold_rank", mc([-1.0, -1.0], gold=0)) == 2.0


def test_generation_metrics_by_hand():
    r = {"generation": " 1234 ", "target": "1243", "generation_ids": [1, 2, 3, 4], "target_ids": [1, 2, 4],
         "target_logprob": -6.0, "target_tokens": 3}
    assert M.compute("exact_match", r) == 0.0
    assert M.compute("char_edit_distance", r) == 2.0  # swap = 2 edits
    assert M.compute("token_edit_distance", r) == 1.0  # delete 3
    assert M.compute("target_logprob", r) == -6.0
    assert M.compute("target_logprob_per_token", r) == -2.0
    r2 = {**r, "generation": "  Hello, World ", "target": "hello world"}
    assert M.compute("exact_match", r2) == 0.0
    assert M.compute("exact_match", r2, {"ignore_case": True, "ignore_punctuation": True}) == 1.0


def test_perplexity_metrics_are_corpus_level():
    rs = [{"logprob": -math.log(2) * 8, "n_bytes": 4, "n_tokens": 2, "n_words": 1},
          {"logprob": -math.log(2) * 4, "n_bytes": 8, "n_tokens": 2, "n_words": 1}]
    for r in rs:
        r["metrics"] = {"bits_per_byte": M.compute("bits_per_byte", r)}
    s = M.aggregate("bits_per_byte", rs)
    assert s.value == pytest.approx(12 / 12)  # 12 bits over 12 bytes, not the mean of 2.0 and 0.5
    assert s.n == 2 and s.stderr > 0
    assert M.METRICS["token_perplexity"].corpus(rs) == pytest.approx(math.exp(12 * math.log(2) / 4))


def test_mean_aggregate_and_stderr():
    rs = [{"metrics": {"acc": v}} for v in (1, 0, 1, 1)]
    s = M.aggregate("acc", rs)
    assert s.value == 0.75 and s.n == 4
    assert s.stderr == pytest.approx(np.std([1, 0, 1, 1], ddof=1) / 2)


@pytest.mark.parametrize("name,output,opts,msg", [
    ("accuracy", "multiple_choice", {}, "unknown metric"),
    ("exact_match", "multiple_choice", {}, "not defined for output"),
    ("acc", "multiple_choice", {"ignore_case": True}, "has no option"),
])
def test_check_metric_errors(name, output, opts, msg):
    from harness.outputs import output_type

    with pytest.raises(HarnessError, match=msg):
        output_type(output).check_metric(name, opts)
