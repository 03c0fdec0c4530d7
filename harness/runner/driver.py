"""The run: prepare every task once, plan the (model, task) pairs still to compute, hand the units to an
executor, and commit each result as it arrives. Only this driver writes the results folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from harness.config import ExperimentConfig
from harness.models.backend import BackendFactory
from harness.models.suite import ModelMeta
from harness.runner.execute import Executor, Failure, Loaded, LocalExecutor, PairResult, TaskStarted
from harness.runner.plan import duplicate_weights, plan, resolve_suite
from harness.runner.progress import Reporter
from harness.runner.provenance import manifest
from harness.runner.tabulate import score_rows
from harness.store import PairSummary, RunStore, ScoreRow
from harness.tasks import prepare, resolve_tasks


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
    store.check_writable()
    tasks = resolve_tasks(config.tasks, Path.cwd(), config.data, config.run.num_fewshot)
    roots = [Path(r) for r in config.data_roots]
    prepared = [prepare(t, config.run.limit, roots) for t in tasks]  # every input error surfaces before any write
    suite = resolve_suite(config, rep)
    store.clean_tmp()
    if backend_factory is None:
        from harness.models.seq2seq import load_backend

        backend_factory = load_backend  # decoder-only or encoder-decoder, from each model's config
    plans = plan(store, suite, prepared, config.run)
    result = RunResult(config.output_dir, [])
    duplicates = duplicate_weights(plans)
    for names in duplicates:
        result.warnings.append(f"identical weights: {', '.join(names)} (same files; their scores are one model's)")
        rep.log(f"WARNING identical weights: {', '.join(names)}")
    summaries: dict[tuple[str, str], PairSummary] = {}
    metas: dict[str, ModelMeta] = {}
    for mp in plans:
        name = mp.unit.spec.name
        summaries.update({(name, t): s for t, s in mp.done.items()})
        result.skipped += len(mp.done)
        if mp.done:
            metas[name] = next(iter(mp.done.values()))["model_meta"]
    rep.start(len(plans))
    units = [mp.unit for mp in plans if mp.unit.tasks]
    for mp in plans:  # models with nothing left to compute
        if not mp.unit.tasks:
            rep.model(mp.unit.spec.name, 0, len(mp.done))
    n_todo = {u.spec.name: len(u.tasks) for u in units}
    n_done = {mp.unit.spec.name: len(mp.done) for mp in plans}
    current = None
    for event in (executor or LocalExecutor()).execute(units, config.run, backend_factory):
        if event.model != current:  # the first event of the next model
            current = event.model
            rep.model(current, n_todo[current], n_done[current])
        if isinstance(event, Loaded):
            metas[event.model] = event.meta
            m = event.meta
            rep.log(f"loaded {event.model} ({m['params']:,} parameters, {m['dtype']}, {event.description}) "
                    f"in {event.seconds:.1f}s")
        elif isinstance(event, TaskStarted):
            rep.task(event.task, event.n)
        elif isinstance(event, PairResult):
            store.write(event.model, event.task, event.records, event.summary)
            summaries[(event.model, event.task)] = event.summary
            result.computed += 1
            rep.task_done(event.task, event.summary)
            for note in event.summary.get("notes", []):
                result.warnings.append(f"{event.model} / {event.task}: {note}")
                rep.log(f"warning: {event.model} / {event.task}: {note}")
        elif isinstance(event, Failure):
            result.failures.append(event)
            rep.log(f"failed {event.model}" + (f" / {event.task}" if event.task else "") + f": {event.error}")
    result.rows = score_rows(store, suite, prepared, summaries)
    if summaries:  # nothing at all is written for a run that produced nothing
        store.write_scores(result.rows)
        models = [metas[s.name] for s in suite if s.name in metas]
        store.write_manifest(manifest(config, suite, prepared, models, result.failures, plans[0].unit.device,
                                      duplicates))
    rep.finish()
    return result
