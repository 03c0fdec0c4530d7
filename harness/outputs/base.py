"""What an output type is: the rendered document it scores, the requests it asks of the engine, the record it
writes, the metrics it allows, its continuous partners and its chance levels. One subclass per output type,
registered by decorator (HELM's adapter per adaptation method); nothing else in the package branches on an
output type's name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Optional, Protocol, Union

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import NotRequired, TypedDict

from harness.errors import HarnessError
from harness.metrics import METRICS
from harness.models.backend import Backend, LogLikelihood


@dataclass(frozen=True)
class Instance:
    """One document as the model sees it. Continuations are ``delimiter + choice`` or ``delimiter + target``."""

    doc_id: int
    context: str
    delimiter: str
    target: Optional[str] = None
    choices: Optional[tuple[str, ...]] = None
    gold: Optional[int] = None
    doc_hash: str = ""  # the dataset row's digest: two runs pair a document only when it is the same row
    choice_scores: Optional[tuple[float, ...]] = None  # credit per choice (multiple_choice_grade)
    references: Optional[tuple[str, ...]] = None  # every acceptable answer (exact_str_match, bleu, rouge)
    slices: tuple[tuple[str, str], ...] = ()  # (slice, this document's value) for each slice the task declares
    contexts: Optional[tuple[str, ...]] = None  # multiple input: one context per choice, one shared target

    @property
    def continuations(self) -> list[str]:
        if self.contexts is not None:
            return [self.delimiter + (self.target or "")] * len(self.contexts)
        return [self.delimiter + c for c in self.choices or ()]

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Multiple choice: the (context, continuation) pair scored for each choice."""
        return list(zip(self.contexts or [self.context] * len(self.choices or ()), self.continuations))


@with_config(ConfigDict(extra="allow"))  # read back: a field of another version is kept, not dropped
class BaseRecord(TypedDict):
    """What every per-example record carries; each output type's record adds its raw quantities."""

    doc_id: int
    doc_hash: str
    metrics: dict[str, float]
    truncated: NotRequired[bool]  # longer than the model's context: the prompt was cut to its last tokens
    slices: NotRequired[dict[str, str]]  # the document's value of each slice the task declares
    canary: NotRequired[str]  # the benchmark's canary string, when the task has one (BIG-bench)


@with_config(ConfigDict(extra="allow"))
class LmEvalRecord(TypedDict):
    """A document of a task lm-eval scored: its requests, lm-eval's raw and filtered answers per filter, every
    per-document metric value, and the continuous partners the engine's answers allow."""

    doc_id: int
    doc_hash: Optional[str]
    target: Any
    requests: list[list[Any]]
    resps: Any
    filtered: dict[str, Any]
    metrics: dict[str, float]
    truncated: NotRequired[bool]
    logprobs: NotRequired[list[float]]  # multiple choice: each choice's log-prob ...
    gold: NotRequired[int]  # ... and the gold index
    target_logprob: NotRequired[float]  # loglikelihood: the target's log-prob


Record = Union[BaseRecord, LmEvalRecord]


class Settings(Protocol):
    """The parts of a task's spec an output type reads (its own settings block among them)."""

    @property
    def generation(self) -> Any: ...

    @property
    def perplexity(self) -> Any: ...


class Output(ABC):
    """An output type. Subclasses set the class attributes and implement ``evaluate``."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()  # the task fields it renders (choices, answer, target)
    record: ClassVar[type]  # its per-example record type
    continuation: ClassVar[bool] = True  # scores a continuation after the prompt (perplexity: the text itself)
    multiple_input: ClassVar[bool] = False  # may render one context per choice (Winogrande)
    partners: ClassVar[tuple[str, ...]] = ()  # continuous metrics beside its discontinuous ones (also lm-eval's)

    @abstractmethod
    def evaluate(self, backend: Backend, instances: Sequence[Instance], spec: Settings) -> list[BaseRecord]:
        """Ask the engine for this output's requests and return one record per instance (metrics not yet set)."""

    def new_tokens(self, spec: Settings) -> int:
        """Tokens the engine appends after the prompt (generation's room in the context)."""
        return 0

    def chance(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """Each metric's chance level that follows from the records alone (a uniform guess)."""
        return {}

    def lm_eval_partners(self, record: LmEvalRecord, answers: Sequence[LogLikelihood]) -> None:
        """Add the continuous partners to an lm-eval record from the engine's answers to its requests (by default
        none: an lm-eval generation's answers carry no log-probs)."""
        return

    @classmethod
    def allowed_metrics(cls) -> list[str]:
        """The metrics defined on this output's record (each metric names the outputs it reads)."""
        return sorted(k for k, m in METRICS.items() if cls.name in m.outputs)

    @classmethod
    def check_metric(cls, name: str, options: Mapping[str, Any], where: str = "metrics") -> None:
        """Raise a HarnessError if ``name`` is unknown, not defined for this output, or given unknown options."""
        m = METRICS.get(name)
        if m is None:
            raise HarnessError(f"unknown metric '{name}' (known: {', '.join(sorted(METRICS))})", where=where)
        if cls.name not in m.outputs:
            raise HarnessError(f"metric '{name}' is not defined for output '{cls.name}' (use: "
                               f"{', '.join(cls.allowed_metrics())})", where=where)
        unknown = set(options) - set(m.options)
        if unknown:
            raise HarnessError(f"metric '{name}' has no option(s) {sorted(unknown)} (known: "
                               f"{sorted(m.options) or 'none'})", where=where)

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> list[BaseRecord]:
        """Records read back (JSON) as this output's record type; a malformed one raises ValidationError."""
        return _adapter(cls.record).validate_python(raw)


@cache
def _adapter(record: type) -> TypeAdapter:
    return TypeAdapter(list[record])  # type: ignore[valid-type]


def parse_records(output: str, raw: Sequence[Any]) -> list[Record]:
    """Stored records as their type: an lm-eval task's (they carry lm-eval's requests) or the output type's. A
    field of the wrong type raises ValueError naming its row and field; fields an older version did not write yet
    are only absent (the records are returned as read, every field present checked)."""
    try:
        if raw and isinstance(raw[0], dict) and "requests" in raw[0]:
            return _adapter(LmEvalRecord).validate_python(raw)
        if output not in OUTPUTS:
            raise ValueError(f"unknown output type {output!r}")
        return list(OUTPUTS[output].parse(raw))
    except ValidationError as exc:
        wrong = [e for e in exc.errors() if e.get("type") != "missing"]
        if not wrong:
            return list(raw)
        loc = ".".join(str(p) for p in wrong[0].get("loc", ()))
        raise ValueError(f"row {loc}: {wrong[0].get('msg', 'invalid')}") from None


OUTPUTS: dict[str, Output] = {}


def register(cls: type[Output]) -> type[Output]:
    """Class decorator: the one place an output type becomes known (by its ``name``)."""
    if cls.name in OUTPUTS:
        raise ValueError(f"output type {cls.name!r} is registered twice")
    OUTPUTS[cls.name] = cls()
    return cls
