"""The run: prepare every task once, plan the (model, task) pairs still to compute, hand the units to an
executor, and commit each result as it arrives. Only this driver writes the results folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from harness.config import ExperimentConfig
from harness.models import adapters
from harness.models.backend import BackendFactory
from harness.models.suite import ModelMeta, refresh_metadata
from harness.runner.cluster import RayExecutor
from harness.runner.execute import ChunkResult, Event, Executor, Failure, Loaded, LocalExecutor, PairResult, TaskStarted
from harness.runner.plan import ModelPlan, duplicate_weights, plan, resolve_suite
from harness.runner.progress import Reporter
from harness.runner.provenance import manifest
from harness.runner.tabulate import score_rows
from harness.store import PairSummary, RunStore, ScoreRow
from harness.tasks import prepare, resolve_tasks
from harness.tasks.prepared import AnyPrepared
from harness.tasks.sources.lm_eval import LmEvalSettings, TaskUnavailable


@dataclass
class RunResult:
    output: Path
    rows: list[ScoreRow]
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # about results computed in this run
    computed: int = 0
    skipped: int = 0


def run(config: ExperimentConfig, reporter: Optional[Reporter] = None,
        backend_factory: Optional[BackendFactory] = None, executor: Optional[Executor] = None) -> RunResult:
    """Evaluate the suite on the tasks, resuming whatever is already stored under the same key."""
    rep = reporter or Reporter()
    store = RunStore(config.output_dir)
    store.check_ours()
    store.check_writable()
    prepared, unavailable = _prepare_tasks(config, rep)
    suite = resolve_suite(config, rep)
    store.clean_tmp()
    for spec in suite:
        if spec.trust_remote_code:
            rep.log(f"WARNING {spec.name}: trust_remote_code is on: Python files of {spec.model} run in this process")
    if backend_factory is None:
        from harness.models.loading import load_backend

        backend_factory = load_backend  # decoder-only or encoder-decoder, from each model's config
    if executor is None:
        executor = RayExecutor(config.run.ray) if config.run.executor == "ray" else LocalExecutor()
    plans = plan(store, suite, prepared, config.run, executor.prepare(config.run.device, len(suite)))
    result = RunResult(config.output_dir, [], failures=list(unavailable))
    for problem in store.damaged:
        result.warnings.append(problem)
        rep.log(f"WARNING {problem}")
    duplicates = duplicate_weights(plans)
    for names in duplicates:
        result.warnings.append(f"identical weights: {', '.join(names)} (same files; their scores are one model's)")
        rep.log(f"WARNING identical weights: {', '.join(names)}")
    commit = _Commit(store, rep, result, plans)
    units = [mp.unit for mp in plans if mp.unit.tasks]
    try:
        for event in executor.execute(units, config.run, backend_factory):
            commit.take(event)
    finally:
        adapters.release()  # an adapter's base kept for a next entry: none is left after the run
    result.rows = score_rows(store, suite, prepared, commit.summaries)
    if commit.summaries:  # nothing at all is written for a run that produced nothing
        kept = store.other_rows({s.name for s in suite}, {n for p in prepared for n in (p.task.name, p.task.group) if n})
        if kept:
            rep.log(f"kept {len(kept)} row(s) of scores.csv for models or tasks outside this config")
        store.write_scores([*result.rows, *kept])
        models = [commit.metas[s.name] for s in suite if s.name in commit.metas]
        store.write_manifest(manifest(config, suite, prepared, models, result.failures, plans[0].unit.device,
                                      duplicates))
    rep.finish()
    return result


def _prepare_tasks(config: ExperimentConfig, rep: Reporter) -> tuple[list[AnyPrepared], list[Failure]]:
    """Every task resolved and prepared before anything is written (input errors surface here); an lm-eval task
    whose package or data cannot be had fails alone (unless ``on_error: stop``)."""
    r = config.run
    tasks = resolve_tasks(config.tasks, Path.cwd(), config.data, lm_eval=LmEvalSettings(
        num_fewshot=r.num_fewshot, trust_task_code=r.trust_task_code, apply_chat_template=r.apply_chat_template,
        system_instruction=r.system_instruction, fewshot_as_multiturn=r.fewshot_as_multiturn, seed=r.seed))
    roots = [Path(root) for root in config.data_roots]
    prepared: list[AnyPrepared] = []
    unavailable: list[Failure] = []
    for task in tasks:
        try:
            prepared.append(prepare(task, r.limit, roots))
        except TaskUnavailable as err:
            if r.on_error == "stop":
                raise
            unavailable.append(Failure("", task.name, str(err)))
            rep.log(f"failed {task.name}: {err}")
    return prepared, unavailable


class _Commit:
    """The driver's side of a run: each event from the executor committed (results written, progress shown, the
    log kept), with what it needs to know across events: the summaries and model metadata for scores.csv and the
    manifest, the tasks each model has left, and which models' bars are open, finished, and described."""

    def __init__(self, store: RunStore, rep: Reporter, result: RunResult, plans: list[ModelPlan]):
        self.store, self.rep, self.result = store, rep, result
        self.summaries: dict[tuple[str, str], PairSummary] = {}
        self.metas: dict[str, ModelMeta] = {}
        for mp in plans:  # what is stored already, its metadata (tokens, step, ...) as configured now
            name = mp.unit.spec.name
            for t, s in mp.done.items():
                self.summaries[(name, t)] = {**s, "model_meta": refresh_metadata(mp.unit.spec, s["model_meta"])}
            result.skipped += len(mp.done)
            if mp.done:
                self.metas[name] = self.summaries[(name, next(iter(mp.done)))]["model_meta"]
        rep.start(len(plans))
        for mp in plans:  # models with nothing left to compute
            if not mp.unit.tasks:
                rep.model(mp.unit.spec.name, 0, len(mp.done))
                rep.model_done(mp.unit.spec.name)
        self.left = {mp.unit.spec.name: len(mp.unit.tasks) for mp in plans if mp.unit.tasks}  # tasks not answered
        self.n_done = {mp.unit.spec.name: len(mp.done) for mp in plans}
        self.shown: set[str] = set()  # models whose progress bar is open
        self.finished: set[str] = set()
        self.described: set[str] = set()  # how the engine scores, as already said in the log

    def take(self, event: Event) -> None:
        name = event.model
        if isinstance(event, Loaded):
            self._loaded(event)
        elif isinstance(event, TaskStarted):
            self._started(event)
        elif isinstance(event, ChunkResult):
            self.store.write_chunk(name, event.task, event.key, event.size, event.index, event.records)
        elif isinstance(event, PairResult):
            self._pair(event)
        elif isinstance(event, Failure):
            self.result.failures.append(event)
            self.left[name] = 0 if event.task is None else self.left[name] - 1
            self.rep.log(f"failed {name}" + (f" / {event.task}" if event.task else "") + f": {event.error}")
        if self.left[name] == 0 and name not in self.finished:
            self.finished.add(name)
            self.rep.model_done(name)

    def _loaded(self, event: Loaded) -> None:
        name, m = event.model, event.meta
        if name not in self.shown:  # its first replica loaded
            self.shown.add(name)
            self.rep.model(name, self.left[name], self.n_done[name])
        self.metas[name] = m
        how = "" if event.description in self.described else f", {event.description}"  # said once per run
        self.described.add(event.description)
        self.rep.log(f"loaded {name} ({m['params']:,} parameters, {m['dtype']}{how}) in "
                     f"{event.seconds:.1f}s" + (f" on {event.worker}" if event.worker else ""))

    def _started(self, event: TaskStarted) -> None:
        self.rep.task(event.model, event.task, event.n, event.reused)
        if event.reused:
            self.rep.log(f"{event.model} / {event.task}: {event.chunks[0]} of {event.chunks[1]} chunks "
                         f"({event.reused:,} of {event.n:,} documents) reused from an interrupted run; computing the "
                         f"other {event.chunks[1] - event.chunks[0]}")

    def _pair(self, event: PairResult) -> None:
        name = event.model
        self.store.write(name, event.task, event.records, event.summary)
        self.store.drop_chunks(name, event.task)
        self.summaries[(name, event.task)] = event.summary
        self.result.computed += 1
        self.left[name] -= 1
        self.rep.task_done(name, event.task, event.summary)
        for note in event.summary.get("notes", []):
            self.result.warnings.append(f"{name} / {event.task}: {note}")
            self.rep.log(f"warning: {name} / {event.task}: {note}")
