"""The executor seam: a unit of work is plain, picklable data; run_unit writes nothing; any executor that
yields the same events leaves the same bytes on disk, because only the driver writes."""

from __future__ import annotations

import multiprocessing as mp
import pickle
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from harness.config import load_config
from harness.models.causal import CausalBackend
from harness.runner import Event, Failure, Loaded, LocalExecutor, PairResult, TaskStarted, Unit, plan, run, run_unit
from harness.store import RunStore
from harness.tasks import prepare, resolve_tasks
from harness.testing import write_config


def _unit_events(unit: Unit, settings) -> list[Event]:
    return list(run_unit(unit, settings, CausalBackend))


class ProcessExecutor(LocalExecutor):
    """Each unit in a fresh spawned process, the last model first: the shape a cluster executor has."""

    def execute(self, units: Sequence[Unit], settings, factory) -> Iterator[Event]:
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            for events in pool.map(_unit_events, list(reversed(units)), [settings] * len(units)):
                yield from events


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and (p.suffix == ".jsonl" or p.name == "scores.csv")}


def test_another_executor_gives_byte_identical_results(workdir, tiny_models):
    cfg = write_config(workdir, [tiny_models["llama"], tiny_models["gpt2"]], ["toy_mc", "toy_add"])
    local = run(load_config(cfg, {"output": str(workdir / "local")}), executor=LocalExecutor())
    other = run(load_config(cfg, {"output": str(workdir / "other")}), executor=ProcessExecutor())
    assert local.computed == other.computed == 4 and not local.failures and not other.failures
    assert snapshot(workdir / "local") == snapshot(workdir / "other") and len(snapshot(workdir / "local")) == 5


def test_a_unit_is_plain_data_and_writes_nothing(workdir, tiny_models):
    config = load_config(write_config(workdir, [tiny_models["llama"]], ["toy_mc", "toy_add"]))
    prepared = [prepare(t) for t in resolve_tasks(config.tasks, workdir)]
    (mp_,) = plan(RunStore(config.output_dir), list(config.suite), prepared, config.run)
    unit = mp_.unit
    assert unit.device == "cpu" and unit.dtype == "float32" and [p.task.name for p in unit.tasks] == ["toy_mc", "toy_add"]
    assert pickle.loads(pickle.dumps(unit)).keys == unit.keys
    events = list(run_unit(unit, config.run, CausalBackend))
    assert [type(e) for e in events] == [Loaded, TaskStarted, PairResult, TaskStarted, PairResult]
    result = events[2]
    assert isinstance(result, PairResult) and result.summary["key"] == unit.keys["toy_mc"]
    assert len(result.records) == 8 and result.summary["n"] == 8
    assert not config.output_dir.exists()  # nothing written: committing is the driver's job


def test_a_model_that_fails_to_load_is_one_failure_event(workdir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{")
    config = load_config(write_config(workdir, [broken], ["toy_mc"]))
    prepared = [prepare(t) for t in resolve_tasks(config.tasks, workdir)]
    (mp_,) = plan(RunStore(config.output_dir), list(config.suite), prepared, config.run)
    (event,) = list(run_unit(mp_.unit, config.run, CausalBackend))
    assert isinstance(event, Failure) and event.task is None and "could not load model" in event.error
