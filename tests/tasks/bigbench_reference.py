"""BIG-bench's own functions, verbatim from the ``bigbench==1.0.0`` sdist (Copyright 2021 Google LLC, Apache
License 2.0), as the reference this harness is tested against: formatting (``bigbench/api/json_task.py``), the
multiple-choice grade with its tie-breaking ``argmax``, and the generative metrics (``bigbench/api/task_metrics.py``),
output post-processing (``bigbench/models/model_utils.py``), and t5's ``bleu`` and ``rouge`` that BIG-bench calls
(``t5/evaluation/metrics.py``, Copyright 2022 The T5 Authors, Apache License 2.0; logging dropped). They need
numpy, sacrebleu and rouge_score, not TensorFlow."""

# flake8: noqa
# ruff: noqa
import copy
import re
from typing import Any, Dict, List, Optional

import numpy as np
import hashlib


def default_format_fn(
    sample: Dict[str, Any],
    input_prefix: str,
    output_prefix: str,
    choice_prefix: str,
    random_seed: int,
    append_choices_to_input: bool = True,
) -> Dict[str, Any]:
    """Default format for tasks.

    Args:
      sample: Dictionary with an 'input' entry and a 'target' or 'target_scores
        entry (or both), describing a single example.
      input_prefix: input prefix, prepended to all inputs.
      output_prefix: output prefix, prepended to outputs and choices (if present).
      choice_prefix: prefix prepended to each choice in a multiple-choice question.
      random_seed: random number generator seed
      append_choices_to_input: append choices to input for multiple choice.

    Returns:
      sample: Formatted dictionary, with 'choice' key added if present in input.
    Raises:
      Exception: If output not in choices.
    """

    def input_format(text):
        return input_prefix + text

    rng = np.random.RandomState(seed=random_seed)

    if "target_scores" in sample:
        choice_dic = sample["target_scores"]
        if append_choices_to_input:
            permuted_choices = rng.permutation(sorted(list(choice_dic.keys())))
            sample["input"] = (
                sample["input"] + choice_prefix + choice_prefix.join(permuted_choices)
            )
        if "target" not in sample:
            max_score = max(choice_dic.values())  # type: ignore
            min_score = min(choice_dic.values())
            if (len(choice_dic) == 1 and max_score == 0) or (
                len(choice_dic) > 1 and max_score <= min_score
            ):  # Correct choices should have higher score.
                raise ValueError(f"No correct choice provided in example: {sample}")
            # Target corresponds to maximum score.
            # If multiple choices have same score it will chose the first one.
            sample["target"] = [k for k, v in choice_dic.items() if v == max_score][
                0
            ]  # type: ignore
        sample["choice"] = list(sample["target_scores"].keys())

    sample["input"] = input_format(sample["input"]) + output_prefix
    if not isinstance(sample["target"], list):
        sample["target"] = [sample["target"]]
    return sample

def make_nshot_dataset(
    samples: List[Dict[str, Any]],
    shots: int,
    random_seed: int,
    repeat_samples: int = 1,
    separator: str = " ",
    max_examples: Optional[int] = None,
) -> List[Dict[str, Any]]:
    """Formats samples into n-shot formatting.

    Args:
      samples: List of dictionaries with samples.
      shots: number of shots to format.
      random_seed: random number generator seed
      repeat_samples: Number of times the original samples are used  as queries
        (with different prefixes).
      max_examples: maximum number of examples to return, None = no limit

    Returns:
      Formatted dictionary of samples.

    Raises:
      ValueError: If not enough examples for the number of shots.
    """
    rng = np.random.RandomState(seed=random_seed)

    samples = copy.deepcopy(samples)

    if shots == 0:
        if max_examples and max_examples < len(samples):
            return rng.choice(samples, max_examples, replace=False).tolist()
        else:
            return samples

    if len(samples) < shots + 1:
        raise ValueError("Do not have enough examples for the number of shots")

    if repeat_samples != 1:
        samples = samples * repeat_samples

    fewshot_samples = []

    if max_examples is not None:
        query_samples = rng.choice(samples, max_examples, replace=False)
    else:
        query_samples = samples

    for sample in query_samples:
        validation_example = copy.deepcopy(sample)
        valid_samples = [x for x in samples if x != sample]
        shot_examples = list(rng.choice(valid_samples, shots, replace=False))

        context = separator.join(
            [
                example["input"] + rng.choice(example["target"])
                for example in shot_examples
            ]
        )
        validation_example["input"] = context + separator + validation_example["input"]

        fewshot_samples.append(validation_example)

    return fewshot_samples


def measure_multiple_choice_grade(samples):
    """Scoring based on argmax of `log_prob`.

    Args:
      samples: List of dictionaries with 'target_scores' field.

    Returns:
      Average score on task.
    """
    count = 0

    for sample in samples:
        choice = sample["choice"][argmax(sample["log_prob"])]
        count += sample["target_scores"][choice]

    return count / len(samples)

def exact_str_match_fn(targets: List[str], responses: List[str]) -> Dict[str, Any]:
    """Exact match between targets and responses."""
    # aitor: might want to use these metrics after removing irrelevant words.
    # they do something like this in see t5.data.postprocessors.wsc_simple
    count = 0

    for target, response in zip(targets, responses):
        if not isinstance(target, list):
            target = [target]
        if response in target:
            count += 1

    return {"exact_str_match": count / len(targets)}

def postprocess_output(text, max_length, stop_string, output_regex):
    """
    Modify model output to satisfy stop_string and output_regex keywords.

    Args:
      text: A string or list of strings containing model outputs.
      max_length: Model output will be truncated to be at most this length.
      stop_string: Model output will be truncated to the shortest string
        which includes stop_string. If None, no truncation will be performed.
        e.g. if stop_string='.', the model output "The apple is on the
        ground. What is" will be truncated to "The apple is on the ground."
        before being returned.
      output_regex: Rather than returning the full output, return the first
        match to the python regular expression output_regex in the output
        string. If there is no match, an empty string will be returned. If
        output_regex=None, no regular expression matching will be performed.
        e.g. if output_regex=r"\\d+", and the model output is "= 42. 7*7 =
        49. 7*8 =", then "42" will be returned.

    Returns: A string or list of strings, all processed as described for each
      argument.
    """

    if isinstance(text, list):
        return [
            postprocess_output(mo, max_length, stop_string, output_regex) for mo in text
        ]

    # Ensure it is a string (will convert from bytes, ... as needed)
    if not isinstance(text, str):
        text = str(text, "utf-8")

    # truncate at max_length
    if max_length:
        text = text[:max_length]

    # Remove all text after any stop_string
    if stop_string:
        index = text.find(stop_string)
        if index > 0:
            text = text[: index + len(stop_string)]

    # extract substring matching regex (empty string for no match)
    if output_regex:
        _text = text
        text = next(iter(re.findall(output_regex, text)), "")
        assert (
            not type(text) is tuple
        ), f'Regex {output_regex} returned multiple matching groups when applied to string {_text}. Try using non-capturing groups, by starting regex groups with ?: (e.g. "(stuff)" -> "(?:stuff)").'

    return text


# ---- bigbench/api/task_metrics.py

def argmax(array):
    """argmax with deterministic pseudorandom tie breaking."""
    max_indices = np.arange(len(array))[array == np.max(array)]
    idx = int(hashlib.sha256(np.asarray(array).tobytes()).hexdigest(), 16) % len(
        max_indices
    )
    return max_indices[idx]

def case_insensitive_str_match_fn(
    targets: List[str], responses: List[str]
) -> Dict[str, Any]:
    """Case insensitive string match between targets and responses.

    Both target and response strings are lower-cased and stripped of leading
    and trailing spaces.
    """
    count = 0

    for target, response in zip(targets, responses):
        if not isinstance(target, list):
            target = [target]
        target = [ex.strip().lower() for ex in target]
        if response.strip().lower() in target:
            count += 1

    return {"case_insensitive_str_match": count / len(targets)}


def rouge_fn(targets: List[List[str]], responses: List[str]) -> Dict[str, float]:
    """Computes ROUGE by taking the max ROUGE-N per reference and N."""
    # Following strategy from https://www.aclweb.org/anthology/W04-1013/.
    # Identify best reference per response and ROUGE type.
    rouge_types = ["rouge1", "rouge2", "rougeLsum"]
    max_references = {rouge_type: [] for rouge_type in rouge_types}
    for targ_for_resp, resp in zip(targets, responses):
        # Compute individual scores per example/ref pair.
        resp_scores = [metrics.rouge([t], [resp]) for t in targ_for_resp]
        # Find best scoring references for generated output and ROUGE type.
        for rouge_type in rouge_types:
            best_score_index = max(
                range(len(resp_scores)), key=lambda x: resp_scores[x][rouge_type]
            )
            best_ref = targ_for_resp[best_score_index]
            # Add the reference to the new reference list.
            max_references[rouge_type].append(best_ref)
    # Compute metric for each of the reference lists for a ref type.
    results = {}
    for rouge_type in rouge_types:
        results[rouge_type] = metrics.rouge(max_references[rouge_type], responses)[
            rouge_type
        ]
    return results


def bleu_fn(targets: List[List[str]], responses: List[str]) -> Dict[str, float]:
    max_refs = max([len(target) for target in targets])
    new_targets = copy.deepcopy(targets)
    if len(list(set([len(target) for target in targets]))) > 1:
        # Padding needed for sacrebleu.
        for target in new_targets:
            if len(target) < max_refs:
                target += [target[0]] * (max_refs - len(target))

    new_targets = [[target[i] for target in new_targets] for i in range(max_refs)]
    return metrics.bleu(new_targets, responses)


def sequence_f1_fn(targets: List[List[str]], responses: List[str]) -> Dict[str, float]:
    f1s = []
    for (t, p) in zip(targets, responses):
        # pad or trim to size of target
        predicted_labels = p.split(" ")
        target_labels = t[0].split(" ")
        if len(predicted_labels) > len(target_labels):
            predicted_labels = predicted_labels[: len(target_labels)]
        elif len(predicted_labels) < len(target_labels):
            predicted_labels.extend(
                ["O"] * (len(target_labels) - len(predicted_labels))
            )
        f1s.append(
            metrics.sequence_accuracy(target_labels, predicted_labels)[
                "sequence_accuracy"
            ]
        )
    return {"sequence_f1": np.mean(np.array(f1s))}


def check_if_numeric_value_is_within_relative_error(
    value: str, target: List[str], rel_error: float
) -> bool:
    """Calculates the relative error between `value` and `target`. If `target`
    is zero reverts to the absolute error.

    Returns: True if the relative/absolute error is <= `rel_error`
    """

    # If target cannot be converted, this will raise a ValueError. This is
    # intentional: the task should supply valid targets.
    assert isinstance(target, list)
    assert len(target) == 1
    try:
        ftarget = float(target[0])
    except ValueError:
        return False

    # We try to convert the model's response, a string, to a floating-point
    # number. If we fail, the model has not returned a numeric value and
    # therefore has not succeeded in getting close to the target.
    try:
        fvalue = float(value)
    except ValueError:
        return False

    calculated_relative_error = abs(fvalue - ftarget) / (ftarget if ftarget != 0 else 1)
    return calculated_relative_error <= rel_error


def numeric_match_with_0_1_relative_error_fn(
    targets: List[List[str]], responses: List[str], rel_error: float = 0.1
) -> Dict[str, float]:
    assert len(targets) == len(responses)

    good = 0
    for target, response in zip(targets, responses):
        good += check_if_numeric_value_is_within_relative_error(
            value=response, target=target, rel_error=rel_error
        )

    return {"numeric_match_with_0_1_relative_error": good / len(targets)}


# ---- t5/evaluation/metrics.py (as ``metrics.bleu``, ``metrics.rouge``, ``metrics.sequence_accuracy``)


class metrics:
    @staticmethod
    def bleu(targets, predictions, tokenizer="intl"):
        import sacrebleu

        if isinstance(targets[0], list):
            targets = [[x for x in target] for target in targets]
        else:
            # Need to wrap targets in another list for corpus_bleu.
            targets = [targets]

        bleu_score = sacrebleu.corpus_bleu(predictions, targets,
                                           smooth_method="exp",
                                           smooth_value=0.0,
                                           force=False,
                                           lowercase=False,
                                           tokenize=tokenizer,
                                           use_effective_order=False)
        return {"bleu": bleu_score.score}

    @staticmethod
    def rouge(targets, predictions, score_keys=None, tokenizer=None):
        from rouge_score import rouge_scorer, scoring

        if score_keys is None:
            score_keys = ["rouge1", "rouge2", "rougeLsum"]
        scorer = rouge_scorer.RougeScorer(score_keys, tokenizer=tokenizer)
        aggregator = scoring.BootstrapAggregator()

        def _prepare_summary(summary):
            # Make sure the summary is not bytes-type
            # Add newlines between sentences so that rougeLsum is computed correctly.
            summary = summary.replace(" . ", " .\n")
            return summary

        for prediction, target in zip(predictions, targets):
            target = _prepare_summary(target)
            prediction = _prepare_summary(prediction)
            aggregator.add_scores(scorer.score(target=target, prediction=prediction))
        result = aggregator.aggregate()
        return {key: result[key].mid.fmeasure*100 for key in score_keys}

    @staticmethod
    def sequence_accuracy(targets, predictions):
        assert len(targets) == len(predictions)
        seq_acc = 100 * np.mean([p == t for p, t in zip(predictions, targets)])
        return {"sequence_accuracy": seq_acc}
