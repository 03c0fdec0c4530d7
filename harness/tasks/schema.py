"""Task YAML schema: one validated ``TaskSpec`` per (sub)task; unknown fields are errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import HarnessError, pydantic_error
from harness.files import digest
from harness.outputs import OUTPUTS, output_type

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HFDataset(_Strict):
    path: str
    name: Optional[str] = None
    split: str = "test"
    revision: Optional[str] = None


def _renamed(data: Any, old: str, new: str, said: str = "") -> Any:
    """Accept a field's older name (the shots were ``fewshot.k`` and ``shots`` before they were ``num_fewshot``)."""
    if isinstance(data, dict) and old in data:
        if new in data:
            raise ValueError(f"give '{new}' only ('{said or old}' is its older name)")
        data = {**{k: v for k, v in data.items() if k != old}, new: data[old]}
    return data


class BigBenchRef(_Strict):
    """A BIG-bench JSON task (or one subtask), formatted as BIG-bench formats it, with its own n-shot contexts."""

    task: str = Field(pattern=NAME_PATTERN)
    subtask: Optional[str] = None
    num_fewshot: int = Field(default=0, ge=0, le=5)  # BIG-bench's standard settings are 0, 1, 2 and 3

    @model_validator(mode="before")
    @classmethod
    def _older_name(cls, data: Any) -> Any:
        return _renamed(data, "shots", "num_fewshot")


class DatasetSpec(_Strict):
    """Exactly one source: a local file, a ``datasets`` dataset, a built-in generator, or a BIG-bench task."""

    path: Optional[str] = None
    hf: Optional[HFDataset] = None
    generator: Optional[str] = None
    bigbench: Optional[BigBenchRef] = None
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        given = [k for k in ("path", "hf", "generator", "bigbench") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of path, hf, generator, bigbench (got {given or 'none'})")
        if self.args and self.generator is None:
            raise ValueError("args is only for generator datasets")
        return self


class FilterStep(_Strict):
    """One step of lm-eval's answer filters (see ``extraction.apply_filters``)."""

    function: Literal["take_first", "regex", "remove_whitespace", "lowercase", "uppercase"]
    regex_pattern: str = Field(default=r"#### (\-?[0-9\.\,]+)", max_length=10_000)
    group_select: int = 0
    fallback: str = "[invalid]"

    @field_validator("regex_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        return GenerationSpec._compiles(value) or value


class GenerationSpec(_Strict):
    """Greedy decoding up to a stop sequence, then (optionally) BIG-bench's answer extraction (the text up to and
    including ``stop_string``, then the first match of ``output_regex``) and lm-eval's ``filters``. Metrics score
    the extracted answer."""

    until: list[str] = Field(default_factory=lambda: ["\n\n"])
    max_new_tokens: int = Field(default=32, ge=1, le=4096)
    stop_string: Optional[str] = None
    output_regex: Optional[str] = Field(default=None, max_length=100_000)  # BIG-bench has ~2,000-character ones
    filters: list[FilterStep] = Field(default_factory=list, max_length=16)

    @field_validator("output_regex")
    @classmethod
    def _compiles(cls, value: Optional[str]) -> Optional[str]:
        import regex

        if value is not None:
            try:
                regex.compile(value)
            except regex.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class FewshotSpec(_Strict):
    """Where the shots (``num_fewshot`` of them) come from and how they are joined."""

    split: Optional[str] = None  # None: sample from the evaluated split, never the document itself
    seed: int = 1234
    delimiter: str = "\n\n"


class PerplexitySpec(_Strict):
    window: Optional[int] = Field(default=None, ge=2)  # None: the model's maximum length
    stride: Optional[int] = Field(default=None, ge=1)  # None: the window (disjoint windows)


class MetricSpec(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class TaskSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    version: Union[int, str] = 1
    description: str = ""
    keywords: list[str] = Field(default_factory=list)  # e.g. BIG-bench's; `harness classify --by keyword` groups by them
    dataset: DatasetSpec
    prompt: str
    target: Optional[str] = None
    choices: Optional[Union[str, list[str]]] = None
    answer: Optional[Union[str, int]] = None
    answer_is: Optional[Literal["index", "text"]] = None  # None: an int is an index, a string a choice's text or index
    choice_scores: Optional[str] = None  # multiple choice: a list of numbers, the credit for picking each choice
    references: Optional[str] = None  # generate: a list of every acceptable answer (default: the target)
    output: str  # a registered output type (harness.outputs)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    num_fewshot: int = Field(default=0, ge=0, le=64)  # shots before each document (as lm-eval's YAML names it)
    fewshot: FewshotSpec = Field(default_factory=FewshotSpec)
    perplexity: PerplexitySpec = Field(default_factory=PerplexitySpec)
    metrics: list[MetricSpec]
    # named subsets of the documents: a template per slice, rendered per document (a field, or a sandboxed
    # expression such as "{{ (a|int % 10 + b|int % 10) >= 10 }}"); `harness decompose` scores each value apart
    slices: dict[str, str] = Field(default_factory=dict, max_length=16)
    preferred_metric: Optional[str] = None  # the task's headline score (BIG-bench's preferred_score); one of metrics
    canary: Optional[str] = Field(default=None, max_length=1000)  # a benchmark's canary string: repeated in records
    target_delimiter: str = " "
    # multiple choice with the choices in the context (Winogrande): the prompt is rendered once per choice (with
    # ``choice`` and ``choice_index`` set) and the shared ``target`` is the continuation scored after each
    multiple_input: bool = False
    chance: Optional[float] = Field(default=None, ge=0, le=1, allow_inf_nan=False)  # a rate: override `classify`'s

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_entries(cls, value: Any) -> Any:
        """Accept ``[acc, {name: exact_match, ignore_case: true}]``."""
        if not isinstance(value, list) or not value:
            raise ValueError("must be a non-empty list")
        out: list[dict[str, Any]] = []
        for entry in value:
            if isinstance(entry, str):
                out.append({"name": entry})
            elif isinstance(entry, dict) and "name" in entry:
                out.append({"name": entry["name"], "options": {k: v for k, v in entry.items() if k != "name"}})
            else:
                raise ValueError(f"each metric is a name or a mapping with 'name' (got {entry!r})")
        return out

    @model_validator(mode="before")
    @classmethod
    def _older_name(cls, data: Any) -> Any:
        """``fewshot: {k: N}`` reads as ``num_fewshot: N``."""
        if isinstance(data, dict) and isinstance(data.get("fewshot"), dict) and "k" in data["fewshot"]:
            fewshot = dict(data["fewshot"])
            data = _renamed({**data, "k": fewshot.pop("k"), "fewshot": fewshot}, "k", "num_fewshot", "fewshot.k")
        return data

    @field_validator("output")
    @classmethod
    def _known_output(cls, value: str) -> str:
        if value not in OUTPUTS:
            raise ValueError(f"unknown output type {value!r} (known: {', '.join(sorted(OUTPUTS))})")
        return value

    @model_validator(mode="after")
    def _fields_for_output(self) -> TaskSpec:
        kind = output_type(self.output)
        needs = kind.needs
        if self.multiple_input:
            if not kind.multiple_input:
                raise ValueError(f"multiple_input is a kind of multiple choice (output '{self.output}' has one "
                                 "context per document)")
            needs += ("target",)
        for f in needs:
            if getattr(self, f) is None:
                raise ValueError(f"output '{self.output}' needs the field '{f}'")
        for i, m in enumerate(self.metrics):
            kind.check_metric(m.name, m.options, where=f"metrics.{i}")
        if self.preferred_metric is not None and self.preferred_metric not in [m.name for m in self.metrics]:
            raise ValueError(f"preferred_metric '{self.preferred_metric}' is not one of the task's metrics")
        return self


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Task:
    """A validated task with where it came from: its file, its group, and a content hash."""

    def __init__(self, spec: TaskSpec, source: Path, group: Optional[str] = None):
        self.spec = spec
        self.source = source
        self.group = group

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def hash(self) -> str:
        """Hash of the resolved spec (the task file's content as it applies to this task)."""
        return digest(self.spec.model_dump(mode="json"))

    def __repr__(self) -> str:
        return f"Task({self.name!r}, source={str(self.source)!r}, group={self.group!r})"


def parse_task_dict(raw: Any, source: Path) -> list[Task]:
    """Validate one task file's content: a single task, or a group with ``subtasks``."""
    if not isinstance(raw, dict):
        raise HarnessError("a task file must be a mapping of fields", source=source)
    if "subtasks" not in raw:
        return [Task(_validate(raw, source, prefix=""), source)]
    subtasks = raw["subtasks"]
    group = raw.get("name")
    if not isinstance(group, str):
        raise HarnessError("a task group needs a 'name'", source=source, where="name")
    if not isinstance(subtasks, list) or not subtasks:
        raise HarnessError("must be a non-empty list of subtask mappings", source=source, where="subtasks")
    parent = {k: v for k, v in raw.items() if k != "subtasks"}
    tasks = []
    for i, sub in enumerate(subtasks):
        if not isinstance(sub, dict) or "name" not in sub:
            raise HarnessError("each subtask is a mapping with a 'name'", source=source, where=f"subtasks.{i}")
        tasks.append(Task(_validate(_deep_merge(parent, sub), source, prefix=f"subtasks.{i}."), source, group))
    names = [t.name for t in tasks]
    if len(set(names)) != len(names) or group in names:
        raise HarnessError("subtask names must be unique and differ from the group name", source=source, where="subtasks")
    return tasks


def _validate(raw: dict, source: Path, prefix: str) -> TaskSpec:
    try:
        return TaskSpec.model_validate(raw)
    except ValidationError as exc:
        err = pydantic_error(exc, source, TaskSpec)
        err.where = prefix + str(err.where or "")
        raise err from None
    except HarnessError as err:  # raised by a metric check inside a validator
        err.source, err.where = source, prefix + str(err.where or "")
        raise
