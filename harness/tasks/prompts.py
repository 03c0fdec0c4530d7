"""Render documents into model inputs: sandboxed Jinja2 templates, few-shot contexts, choices, answers.

Everything the model will see is decided here, once per task, and reused for every model.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from typing import Any, Optional

from jinja2 import TemplateError, Undefined
from jinja2.sandbox import SecurityError

from harness.errors import HarnessError
from harness.files import digest
from harness.outputs import Instance, output_type
from harness.tasks.datasets import Document
from harness.tasks.sandbox import LimitedEnvironment, TemplateLimit, bounded_join, limited
from harness.tasks.schema import Task

_ENV = LimitedEnvironment()
_SINGLE_EXPR = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)


class Templates:
    """The compiled templates of one task; every error names the task file, the field and the row."""

    def __init__(self, task: Task):
        self.task = task
        spec = task.spec
        self._prompt = self._compile(spec.prompt, "prompt")
        self._target = self._compile(spec.target, "target") if spec.target is not None else None
        self._choices: Any = None
        if isinstance(spec.choices, list):
            self._choices = [self._compile(c, f"choices.{i}") for i, c in enumerate(spec.choices)]
        elif spec.choices is not None:
            self._choices = self._compile(spec.choices, "choices", native=True)
        self._answer: Any = spec.answer
        if isinstance(spec.answer, str):
            self._answer = self._compile(spec.answer, "answer", native=True)
        self._scores = self._compile(spec.choice_scores, "choice_scores", native=True) if spec.choice_scores else None
        self._references = self._compile(spec.references, "references", native=True) if spec.references else None
        self._slices = {name: self._compile(t, f"slices.{name}") for name, t in spec.slices.items()}

    def _compile(self, text: str, field: str, native: bool = False) -> Callable[[Document], Any]:
        """A template renders to a string; with ``native``, a lone ``{{ expr }}`` keeps its Python type."""
        try:
            m = _SINGLE_EXPR.match(text) if native else None
            if m and "}}" not in m.group(1):
                expr = _ENV.compile_expression(m.group(1), undefined_to_none=False)
                return lambda doc: expr(**doc)
            tmpl = _ENV.from_string(text)
            return lambda doc: bounded_join(tmpl.generate(**doc))
        except TemplateError as exc:
            raise HarnessError(f"invalid template: {exc}", source=self.task.source, where=f"{self._where()}{field}") from None

    def _where(self) -> str:
        return f"task {self.task.name}: " if self.task.group else ""

    def _render(self, fn: Callable[[Document], Any], doc: Document, field: str, row: int) -> Any:
        try:
            value = limited(lambda: fn(doc))
            if isinstance(value, Undefined):
                str(value)  # StrictUndefined raises with the missing name
            return value
        except SecurityError as exc:
            raise HarnessError(f"template blocked by the sandbox: {exc}", source=self.task.source, where=f"{self._where()}{field}: row {row}") from None
        except TemplateLimit as exc:
            raise HarnessError(f"template limit: {exc}", source=self.task.source, where=f"{self._where()}{field}: row {row}") from None
        except RecursionError:
            raise HarnessError("cannot render: recursion too deep", source=self.task.source, where=f"{self._where()}{field}: row {row}") from None
        except Exception as exc:  # UndefinedError, TypeError in a filter, ...
            reason = str(exc) or type(exc).__name__
            raise HarnessError(f"cannot render: {reason}", source=self.task.source, where=f"{self._where()}{field}: row {row}") from None

    def prompt(self, doc: Document, row: int, choice: Optional[tuple[int, str]] = None) -> str:
        """The prompt; with ``choice`` (multiple input), rendered with ``choice_index`` and ``choice`` set."""
        if choice is not None:
            doc = {**doc, "choice_index": choice[0], "choice": choice[1]}
        return str(self._render(self._prompt, doc, "prompt", row))

    def target(self, doc: Document, row: int) -> str:
        assert self._target is not None
        text = str(self._render(self._target, doc, "target", row))
        if not text.strip() and "target" in output_type(self.task.spec.output).needs:
            raise HarnessError("the target renders to an empty string: there is nothing to score",
                               source=self.task.source, where=f"{self._where()}target: row {row}")
        return text

    def choices(self, doc: Document, row: int) -> list[str]:
        if isinstance(self._choices, list):
            value: Any = [str(self._render(c, doc, f"choices.{i}", row)) for i, c in enumerate(self._choices)]
        else:
            value = self._render(self._choices, doc, "choices", row)
        if not isinstance(value, (list, tuple)) or len(value) < 2:  # one choice is always right: no measurement
            raise HarnessError(f"choices must render to a list of at least 2 items (got {value!r:.80})",
                               source=self.task.source, where=f"{self._where()}choices: row {row}")
        texts = [str(c) for c in value]
        if len(set(texts)) == 1:
            raise HarnessError(f"every choice is the same text ({texts[0]!r:.40}): no choice can be told from another",
                               source=self.task.source, where=f"{self._where()}choices: row {row}")
        return texts

    def answer(self, doc: Document, row: int, choices: Sequence[str]) -> int:
        """The gold index: an int, a digit string, or the text of one of the choices. ``answer_is`` says which a
        string is; without it, a string that is both a choice's text and another choice's index is refused."""
        value = self._answer if isinstance(self._answer, int) else self._render(self._answer, doc, "answer", row)
        mode = self.task.spec.answer_is
        where = f"{self._where()}answer: row {row}"
        if mode == "text":
            value = str(value)
        if isinstance(value, str) and mode != "index" and value in choices:
            text_index = list(choices).index(value)
            if list(choices).count(value) > 1:
                raise HarnessError(f"answer {value!r} is the text of {list(choices).count(value)} choices: which one is "
                                   "gold is ambiguous", source=self.task.source, where=where)
            if mode is None and re.fullmatch(r"[0-9]+", value) and int(value) != text_index:
                raise HarnessError(f"answer {value!r} is ambiguous: choice {int(value)} by index, choice {text_index} "
                                   "by text; set answer_is: index or answer_is: text", source=self.task.source, where=where)
            value = text_index
        elif isinstance(value, str) and mode != "text" and re.fullmatch(r"-?[0-9]+", value.strip()):  # ASCII only
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(choices):
            expected = {"index": f"a choice index in 0..{len(choices) - 1}", "text": "the text of a choice"}.get(
                str(mode), f"a choice index in 0..{len(choices) - 1} nor a choice's text")
            raise HarnessError(f"answer {value!r} is not {expected}", source=self.task.source, where=where)
        return value

    def choice_scores(self, doc: Document, row: int, n: int) -> Optional[tuple[float, ...]]:
        """The credit for each of the ``n`` choices, when the task gives it."""
        if self._scores is None:
            return None
        value = self._render(self._scores, doc, "choice_scores", row)
        try:
            scores = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            scores = ()
        if len(scores) != n or not all(math.isfinite(s) for s in scores):
            raise HarnessError(f"choice_scores must render to {n} finite numbers, one per choice (got {value!r:.80})",
                               source=self.task.source, where=f"{self._where()}choice_scores: row {row}")
        return scores

    def references(self, doc: Document, row: int) -> Optional[tuple[str, ...]]:
        """Every acceptable answer, when the task lists them."""
        if self._references is None:
            return None
        value = self._render(self._references, doc, "references", row)
        if not isinstance(value, (list, tuple)) or not value:
            raise HarnessError(f"references must render to a non-empty list (got {value!r:.80})",
                               source=self.task.source, where=f"{self._where()}references: row {row}")
        return tuple(str(v) for v in value)

    def slices(self, doc: Document, row: int) -> tuple[tuple[str, str], ...]:
        """This document's value of each declared slice (rendered text, at most 100 characters)."""
        out = []
        for name, fn in self._slices.items():
            value = str(self._render(fn, doc, f"slices.{name}", row)).strip()
            if len(value) > 100:
                raise HarnessError(f"a slice value is a label: at most 100 characters (got {len(value)})",
                                   source=self.task.source, where=f"{self._where()}slices.{name}: row {row}")
            out.append((name, value))
        return tuple(out)

    def shot(self, doc: Document, row: int) -> str:
        """A few-shot example: its prompt (multiple input: with the gold choice), the delimiter, its answer."""
        spec = self.task.spec
        if spec.multiple_input:
            choices = self.choices(doc, row)
            gold = self.answer(doc, row, choices)
            return self.prompt(doc, row, (gold, choices[gold])) + spec.target_delimiter + self.target(doc, row)
        return self.prompt(doc, row) + spec.target_delimiter + self.answer_text(doc, row)

    def answer_text(self, doc: Document, row: int) -> str:
        """The text a few-shot example shows after its prompt."""
        if "choices" in output_type(self.task.spec.output).needs:
            choices = self.choices(doc, row)
            return choices[self.answer(doc, row, choices)]
        return self.target(doc, row)


def build_instances(task: Task, docs: Sequence[Document], fewshot_pool: Optional[Sequence[Document]] = None,
                    same_split: Optional[bool] = None) -> list[Instance]:
    """Render every document. ``fewshot_pool=None`` samples shots from ``docs``. ``same_split``: the pool is the
    evaluated split (``docs`` is its first rows), so document ``i`` is never its own shot (default: when no pool
    is given)."""
    spec = task.spec
    kind = output_type(spec.output)
    tmpl = Templates(task)
    shots_cfg = spec.fewshot
    same_split = fewshot_pool is None if same_split is None else same_split
    pool = docs if fewshot_pool is None else fewshot_pool
    num_fewshot = spec.num_fewshot
    if num_fewshot and len(pool) - (1 if same_split else 0) < num_fewshot:
        raise HarnessError(f"num_fewshot={num_fewshot} but the pool has only {len(pool)} documents",
                           source=task.source, where="num_fewshot")
    shot_text: dict[int, str] = {}

    def shot(i: int) -> str:
        if i not in shot_text:
            shot_text[i] = tmpl.shot(pool[i], i)
        return shot_text[i]

    out = []
    for row, doc in enumerate(docs):
        prefix = ""
        doc_hash = digest(doc)
        if num_fewshot:
            rng = random.Random(f"{shots_cfg.seed}:{row}")
            candidates = rng.sample(range(len(pool)), num_fewshot + (1 if same_split else 0))
            picked = [i for i in candidates if not (same_split and i == row)][:num_fewshot]
            prefix = "".join(shot(i) + shots_cfg.delimiter for i in picked)
        slices = tmpl.slices(doc, row)
        if spec.multiple_input:
            choices = tmpl.choices(doc, row)
            contexts = tuple(prefix + tmpl.prompt(doc, row, (k, c)) for k, c in enumerate(choices))
            gold = tmpl.answer(doc, row, choices)
            out.append(Instance(row, contexts[gold], spec.target_delimiter, target=tmpl.target(doc, row),
                                choices=tuple(choices), gold=gold, doc_hash=doc_hash, slices=slices, contexts=contexts))
            continue
        prompt = prefix + tmpl.prompt(doc, row)
        delimiter = spec.target_delimiter if kind.continuation else ""
        if "choices" in kind.needs:
            choices = tmpl.choices(doc, row)
            out.append(Instance(row, prompt, delimiter, choices=tuple(choices), gold=tmpl.answer(doc, row, choices),
                                doc_hash=doc_hash, choice_scores=tmpl.choice_scores(doc, row, len(choices)),
                                slices=slices))
        elif "target" in kind.needs:
            out.append(Instance(row, prompt, delimiter, target=tmpl.target(doc, row), doc_hash=doc_hash,
                                references=tmpl.references(doc, row), slices=slices))
        else:
            out.append(Instance(row, prompt, delimiter, doc_hash=doc_hash, slices=slices))
    return out
