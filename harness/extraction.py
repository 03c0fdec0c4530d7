"""Answer extraction from a generation, before metrics score it: BIG-bench's post-processing (stop string, then
output regex) and lm-eval's answer filters. Patterns are data from task files, so every regex runs with a
timeout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from harness.errors import HarnessError

BIGBENCH_OUTPUT_REGEX = r"[^\.\?\!\;\n]+"  # BIG-bench's answer cut when a task gives no stop string or regex
REGEX_TIMEOUT_S = 1.0  # an output regex is data: catastrophic backtracking must not hang a run


def extract_answer(text: str, stop_string: Optional[str], output_regex: Optional[str]) -> str:
    """BIG-bench's ``postprocess_output``: keep the text up to and including the first ``stop_string`` (unless it
    starts the text), then the first match of ``output_regex`` ('' when none)."""
    import regex  # re's superset with a timeout (a dependency of transformers)

    if stop_string:
        index = text.find(stop_string)
        if index > 0:
            text = text[: index + len(stop_string)]
    if output_regex:
        try:
            text = next(iter(regex.findall(output_regex, text, timeout=REGEX_TIMEOUT_S)), "")
        except TimeoutError:
            raise HarnessError(f"output_regex {output_regex!r} took over {REGEX_TIMEOUT_S:g} s on one generation",
                               where="generation.output_regex") from None
    return text


def regex_sub(pattern: str, repl: str, text: str, count: int = 0) -> str:
    """``re.sub`` with a timeout (lm-eval's ``regex_replace`` filter, ``regexes_to_ignore``)."""
    import regex

    try:
        return str(regex.sub(pattern, repl, text, count=count, timeout=REGEX_TIMEOUT_S))
    except TimeoutError:
        raise HarnessError(f"regular expression {pattern!r} took over {REGEX_TIMEOUT_S:g} s on one text") from None
    except regex.error as exc:
        raise HarnessError(f"invalid regular expression {pattern!r}: {exc}") from None


def apply_filters(text: str, steps: Sequence[Any]) -> str:
    """lm-eval's answer filters, in order: ``take_first`` (one generation per document here: no-op), ``regex``
    (its ``findall``, ``group_select``-th match, first non-empty group, stripped; else ``fallback``),
    ``remove_whitespace`` (strip), ``lowercase``, ``uppercase``. Each step has ``function`` and its arguments."""
    import regex

    for step in steps:
        fn = step.function
        if fn == "regex":
            try:
                found = regex.findall(step.regex_pattern, text, timeout=REGEX_TIMEOUT_S)
            except TimeoutError:
                raise HarnessError(f"filter regex {step.regex_pattern!r} took over {REGEX_TIMEOUT_S:g} s on one "
                                   "generation", where="generation.filters") from None
            if found:
                match = found[step.group_select] if -len(found) <= step.group_select < len(found) else found[0]
                if isinstance(match, tuple):
                    match = next((m for m in match if m), step.fallback)
                text = match.strip()
            else:
                text = step.fallback
        elif fn == "remove_whitespace":
            text = text.strip()
        elif fn == "lowercase":
            text = text.lower()
        elif fn == "uppercase":
            text = text.upper()
    return text
