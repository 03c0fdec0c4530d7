"""Execute units of work. ``run_unit`` is the unit: a plain function of (unit, run settings, backend factory)
that loads the model once, scores its tasks and yields the results as data; it writes nothing (only the
driver writes the results folder). An executor runs many units: ``LocalExecutor`` one after another here;
another executor (e.g. on a cluster) runs the same function elsewhere and yields the same events."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Union

from harness import metrics as M
from harness.config import RunSettings
from harness.errors import HarnessError
from harness.files import cache_dir
from harness.models.adapters import adapter_hash
from harness.models.backend import Backend, BackendFactory, resolve_device
from harness.models.suite import ModelMeta, model_metadata
from harness.outputs import BaseRecord, Record, output_type
from harness.runner.plan import Unit
from harness.scoring import chance_levels, evaluate, unrepresentable_documents
from harness.scoring_lm_eval import evaluate_lm_eval
from harness.store import PairSummary, ScoreDict
from harness.tasks.prepared import LmEvalPrepared, PreparedTask


@dataclass(frozen=True)
class Loaded:
    """The unit's model is loaded."""

    model: str
    meta: ModelMeta
    seconds: float
    description: str  # how the backend scores, for the run log
    worker: str = ""  # where it was loaded (another executor's worker: host and process), for the run log


@dataclass(frozen=True)
class TaskStarted:
    model: str
    task: str
    n: int
    reused: int = 0  # documents in chunks an interrupted run finished
    chunks: tuple[int, int] = (0, 1)  # (chunks reused, chunks in all)


@dataclass(frozen=True)
class ChunkResult:
    """One finished chunk of a long task's documents, committed by the driver so a stopped run resumes after it."""

    model: str
    task: str
    key: str
    size: int
    index: int
    records: Sequence[Record]


@dataclass(frozen=True)
class PairResult:
    """One (model, task) computed: its per-example records and summary, to be committed by the driver."""

    model: str
    task: str
    records: Sequence[Record]
    summary: PairSummary


@dataclass(frozen=True)
class Failure:
    """A model (``task`` None: it could not be loaded or evaluated) or one task that failed."""

    model: str
    task: Optional[str]
    error: str


Event = Union[Loaded, TaskStarted, ChunkResult, PairResult, Failure]


def run_unit(unit: Unit, settings: RunSettings, factory: BackendFactory) -> Iterator[Event]:
    """Load the unit's model once and score its tasks, yielding each result as it is ready. With
    ``on_error: stop`` the first failure raises; otherwise it is yielded and the unit goes on (a task that
    fails) or ends (a model that fails to load)."""
    stop = settings.on_error == "stop"
    try:
        backend, loaded = open_unit(unit, settings, factory)
    except HarnessError as err:
        if stop:
            raise
        yield Failure(unit.spec.name, None, str(err))
        return
    try:
        yield loaded
        for p in unit.tasks:
            yield from score_task(unit, p, backend, loaded.meta, stop)
    finally:
        backend.close()


def open_unit(unit: Unit, settings: RunSettings, factory: BackendFactory, worker: str = "") -> tuple[Backend, Loaded]:
    """The unit's model loaded (the run's seed set first) and its ``Loaded`` event; raises HarnessError."""
    import torch

    torch.manual_seed(settings.seed)
    t0 = time.perf_counter()
    _reset_peak_memory(unit.device)
    backend = factory(unit.spec, device=unit.device, dtype=unit.dtype, batch_size=settings.batch_size,
                      token_budget=settings.token_budget)
    try:
        meta = model_metadata(unit.spec, backend.parameter_counts(), unit.dtype, backend.arch, backend.weight_bytes,
                              backend.model_type, adapter_hash(unit.spec, cache_dir()))
    except BaseException:
        backend.close()
        raise
    return backend, Loaded(unit.spec.name, meta, time.perf_counter() - t0, backend.describe(), worker)


def score_task(unit: Unit, p: PreparedTask | LmEvalPrepared, backend: Backend, meta: ModelMeta, stop: bool = False
               ) -> Iterator[Event]:
    """One task on the loaded model: TaskStarted, a ChunkResult per chunk computed (long tasks), then PairResult or
    Failure (the unit goes on with its other tasks). Documents are scored chunk by chunk, whether or not a run
    resumes, so the bytes never depend on where a run stopped. With ``stop`` a failure raises instead."""
    if isinstance(p, LmEvalPrepared):
        yield from _score_lm_eval(unit, p, backend, meta, stop)
        return
    name, task = unit.spec.name, p.task.name
    size = unit.chunk_size
    n_chunks = max(1, -(-len(p.instances) // size))
    resumed = unit.resumed.get(task, {})
    yield TaskStarted(name, task, len(p.instances), sum(len(r) for r in resumed.values()), (len(resumed), n_chunks))
    t0 = time.perf_counter()
    records: list[BaseRecord] = []
    try:
        _check_fits(p, backend.max_length)
        for i in range(n_chunks):
            if i in resumed:
                records += resumed[i]
                continue
            chunk = evaluate(backend, PreparedTask(p.task, p.instances[i * size:(i + 1) * size]))
            if n_chunks > 1:
                yield ChunkResult(name, task, unit.keys[task], size, i, chunk)
            records += chunk
    except Exception as exc:  # bad input found while scoring (an output regex that times out): this task only
        yield _failure(exc, name, task, p.task.source, stop)
        return
    scores = {}
    for m in p.task.spec.metrics:
        sc = M.aggregate(m.name, records)
        scores[m.name] = ScoreDict(metric=sc.metric, value=sc.value, stderr=sc.stderr, n=sc.n)
    summary = PairSummary(key=unit.keys[task], model=name, task=task, group=p.task.group,
                          output=p.task.spec.output, n=len(records), model_meta=meta,
                          seconds=round(time.perf_counter() - t0, 3), chance=chance_levels(p, records), scores=scores)
    if (peak := _peak_memory(unit.device)) is not None:
        summary["peak_memory_bytes"] = peak
    notes = []
    unknown = unrepresentable_documents(backend, p)
    if unknown:
        notes.append(f"{unknown} of {len(records)} documents ({unknown / len(records):.0%}) contain text the "
                     "tokenizer maps to unknown or padding tokens: the model never sees it, so these scores say "
                     "nothing about the task")
    tops: list[list[float]] = [list(r.get("logprobs") or []) for r in records]  # type: ignore[call-overload]
    tied = sum(1 for lp in tops if len(lp) > 1 and lp.count(max(lp)) > 1)
    if tied:
        notes.append(f"{tied} of {len(records)} documents have an exact tie for the highest choice log-prob: acc takes "
                     "the first of the tied choices (as lm-eval does)")
    notes += _truncated(records)
    if notes:
        summary["notes"] = notes
    yield PairResult(name, task, records, summary)


def _failure(exc: Exception, model: str, task: str, source: Path, stop: bool) -> Failure:
    """A task that failed while scoring (the unit goes on with its other tasks), or, with ``stop``, the error
    raised again; a one-line error names the task's file."""
    if isinstance(exc, HarnessError) and exc.source is None:
        exc.source = source
    if stop:
        raise exc
    return Failure(model, task, str(exc) if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}")


def _truncated(records: Sequence[Record]) -> list[str]:
    """A note when documents were longer than the model's context."""
    cut = sum(1 for r in records if r.get("truncated"))
    return [f"{cut} of {len(records)} documents are longer than the model's context: their prompts were cut to the "
            "last tokens (records: truncated)"] if cut else []


def _score_lm_eval(unit: Unit, p: LmEvalPrepared, backend: Backend, meta: ModelMeta, stop: bool) -> Iterator[Event]:
    """An lm-eval task: lm-eval builds the requests and scores them, the engine answers them; one chunk."""
    name, task = unit.spec.name, p.task.name
    yield TaskStarted(name, task, len(p.instances))
    t0 = time.perf_counter()
    try:
        records, scores, chance = evaluate_lm_eval(backend, p.task, p.limit)
    except Exception as exc:
        yield _failure(exc, name, task, p.task.source, stop)
        return
    summary = PairSummary(key=unit.keys[task], model=name, task=task, group=p.task.group, output=p.task.spec.output,
                          n=len(records), model_meta=meta, seconds=round(time.perf_counter() - t0, 3), chance=chance,
                          scores={k: ScoreDict(**v) for k, v in scores.items()})  # type: ignore[typeddict-item]
    if (peak := _peak_memory(unit.device)) is not None:
        summary["peak_memory_bytes"] = peak
    if notes := _truncated(records):
        summary["notes"] = notes
    yield PairResult(name, task, records, summary)


def _reset_peak_memory(device: str) -> None:
    """Start a model's peak-memory count: CUDA's allocator statistics, or (Linux) the process's peak RSS."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as fh:  # "5" resets the peak resident set size (VmHWM)
            fh.write("5")
    except OSError:
        pass


def _peak_memory(device: str) -> Optional[int]:
    """Bytes at the peak since ``_reset_peak_memory``: GPU memory allocated, or the process's resident set."""
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def _check_fits(p: PreparedTask, max_length: int) -> None:
    """Generation needs room for a prompt: longer prompts are cut from the left to ``max_length -
    max_new_tokens`` tokens (as lm-eval does), so ``max_new_tokens`` must be below the model's context."""
    new = output_type(p.task.spec.output).new_tokens(p.task.spec)
    if new and new >= max_length:
        raise HarnessError(f"max_new_tokens {new} leaves no room for a prompt in this model's "
                           f"context of {max_length} tokens", source=p.task.source, where="generation.max_new_tokens")


class Executor(Protocol):
    """Runs units and yields their events. Events of one unit come in order; units may interleave."""

    def prepare(self, device: str, n_models: int) -> str:
        """Get ready for up to ``n_models`` units (start workers, say); the run's device (``auto``, ``cpu``,
        ``cuda``, ``cuda:N``) as the units will run on it."""
        ...

    def execute(self, units: Sequence[Unit], settings: RunSettings, factory: BackendFactory) -> Iterator[Event]: ...


class LocalExecutor:
    """Every unit in this process, one after another, in suite order."""

    def prepare(self, device: str, n_models: int) -> str:
        return resolve_device(device)

    def execute(self, units: Sequence[Unit], settings: RunSettings, factory: BackendFactory) -> Iterator[Event]:
        for unit in units:
            yield from run_unit(unit, settings, factory)
