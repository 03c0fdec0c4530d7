"""The Ray executor on a local CPU cluster (num_cpus=2): the same bytes as the local executor, a worker SIGKILLed
mid-model retried, the driver killed mid-run then resumed, a model that fails to load failing alone; and the
arithmetic that sizes workers, with cluster shapes this machine does not have."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from collections import Counter
from pathlib import Path

import pytest
import ray  # the `ray` extra (CI installs it)

from harness.config import load_config
from harness.errors import HarnessError
from harness.models.suite import ModelSpec
from harness.runner import LocalExecutor, Reporter, run
from harness.runner.cluster import RayExecutor
from harness.runner.placement import GIB, Resources, check_placeable, unit_resources
from harness.testing import KillOnce, build_tiny_model, write_config, write_toy_tasks

TASKS = ["toy_mc", "toy_add"]


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for this module's in-process runs (starting one takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def four_models(tiny_models, tmp_path_factory) -> list[Path]:
    extra = build_tiny_model(tmp_path_factory.mktemp("models") / "llama48", "llama", hidden=48, seed=5)
    return [tiny_models["gpt2"], tiny_models["neox"], tiny_models["llama"], extra]


def snapshot(out: Path) -> dict[str, bytes]:
    """Records and scores: what a run commits (summaries hold timings, the manifest the executor)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and (p.suffix == ".jsonl" or p.name == "scores.csv")}


@pytest.fixture(scope="module")
def local_bytes(four_models, tmp_path_factory) -> dict[str, bytes]:
    """The suite run by the local executor, in a project folder of its own."""
    work = tmp_path_factory.mktemp("local")
    write_toy_tasks(work / "tasks")
    with pytest.MonkeyPatch.context() as mp_:
        mp_.chdir(work)
        mp_.setenv("HARNESS_CACHE", str(work / "cache"))
        result = run(load_config(write_config(work, four_models, TASKS), {"output": str(work / "out")}),
                     executor=LocalExecutor())
    assert result.computed == 8 and not result.failures
    snap = snapshot(work / "out")
    assert len(snap) == 9  # 4 models × 2 tasks, and scores.csv
    return snap


class Log(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message):
        self.lines.append(message)

    def loads(self) -> list[tuple[str, str]]:
        """(model, worker process) of every "loaded" line."""
        return [(line.split()[1], line.rsplit(" pid ", 1)[1]) for line in self.lines if line.startswith("loaded ")]


def test_ray_writes_the_bytes_the_local_executor_writes(cluster, workdir, four_models, local_bytes):
    cfg = write_config(workdir, four_models, TASKS)
    log = Log()
    result = run(load_config(cfg, {"output": str(workdir / "ray"), "executor": "ray"}), log)
    assert result.computed == 8 and not result.failures
    assert snapshot(workdir / "ray") == local_bytes
    loads = log.loads()
    assert sorted(m for m, _ in loads) == sorted(m.name for m in four_models)
    assert len({pid for _, pid in loads}) == 2  # two workers (2 CPUs), each taking the next model when done
    import json

    manifest = json.loads((workdir / "ray" / "manifest.json").read_text())
    assert manifest["config"]["run"]["executor"] == "ray"


def test_a_worker_killed_mid_model_is_retried_and_the_bytes_are_the_same(cluster, workdir, four_models, local_bytes):
    marker = workdir / "killed"
    victim = four_models[2].name  # killed while scoring its second task, after its first was returned
    cfg = write_config(workdir, four_models, TASKS)
    result = run(load_config(cfg, {"output": str(workdir / "ray"), "executor": "ray"}),
                 backend_factory=KillOnce(victim, marker))
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker died, not this driver
    assert result.computed == 8 and not result.failures
    assert snapshot(workdir / "ray") == local_bytes


def test_replicas_of_one_model_share_its_tasks_and_the_bytes_are_the_same(cluster, workdir, four_models,
                                                                          local_bytes):
    cfg = write_config(workdir, four_models, TASKS, ray={"replicas": 2})
    log = Log()
    result = run(load_config(cfg, {"output": str(workdir / "ray"), "executor": "ray"}), log)
    assert result.computed == 8 and not result.failures
    # Both workers start on the first model's two replicas; a later model's second replica is skipped when the first
    # has already taken all its tasks (which one depends on timing), so each model is loaded once or twice.
    loaded = Counter(m for m, _ in log.loads())
    assert set(loaded) == {m.name for m in four_models} and set(loaded.values()) <= {1, 2} and 2 in loaded.values()
    assert snapshot(workdir / "ray") == local_bytes


def test_a_worker_lost_more_often_than_restarts_allow_fails_its_model_only(cluster, workdir, four_models):
    victim = four_models[1].name
    cfg = write_config(workdir, four_models, TASKS, ray={"max_restarts": 0})
    result = run(load_config(cfg, {"output": str(workdir / "ray"), "executor": "ray"}),
                 backend_factory=KillOnce(victim, workdir / "killed"))
    (failure,) = result.failures
    assert failure.model == victim and failure.task is None and "its worker was lost (0 restart(s) tried)" in failure.error
    assert result.computed == 7  # the victim's first task was committed before its worker died


class _DieAfterFirstCommit(Reporter):
    def task_done(self, model, name, summary):
        os.kill(os.getpid(), signal.SIGKILL)


def _driver(cfg: str, out: str, cwd: str) -> None:
    os.chdir(cwd)
    run(load_config(Path(cfg), {"output": out, "executor": "ray"}), _DieAfterFirstCommit())


def test_a_driver_killed_mid_run_resumes_from_what_it_committed(cluster, workdir, four_models, local_bytes):
    cfg = write_config(workdir, four_models, TASKS)
    out = workdir / "ray"
    child = mp.get_context("spawn").Process(target=_driver, args=(str(cfg), str(out), str(workdir)))
    child.start()
    child.join(300)
    assert child.exitcode == -signal.SIGKILL
    committed = sorted(p.relative_to(out) for p in out.rglob("*.json"))
    assert len(committed) == 1 and not (out / "scores.csv").exists()  # one pair, committed whole
    result = run(load_config(cfg, {"output": str(out), "executor": "ray"}))
    assert result.skipped == 1 and result.computed == 7 and not result.failures
    assert snapshot(out) == local_bytes


def test_a_model_that_fails_to_load_fails_only_its_own_units(cluster, workdir, four_models, tmp_path, capsys):
    from harness.cli import main

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{")
    cfg = write_config(workdir, [four_models[0], broken, four_models[2]], TASKS)
    assert main(["run", str(cfg), "--executor", "ray", "--output", str(workdir / "ray")]) == 1
    err = capsys.readouterr().err
    assert "FAILED broken: " in err and "could not load model" in err and "docs," in err  # progress: docs and rate
    assert len(list((workdir / "ray" / "models").rglob("*.jsonl"))) == 4  # the other two models' pairs
    with pytest.raises(HarnessError, match="broken: .*could not load model"):
        run(load_config(cfg, {"output": str(workdir / "stop"), "executor": "ray", "on_error": "stop"}))


def test_a_gpu_run_on_a_cluster_without_gpus_is_refused_in_one_line(cluster, workdir, four_models):
    cfg = write_config(workdir, four_models[:1], TASKS)
    with pytest.raises(HarnessError, match="the Ray cluster has no GPUs"):
        run(load_config(cfg, {"output": str(workdir / "ray"), "executor": "ray", "device": "cuda"}))
    assert not (workdir / "ray").exists()
    with pytest.raises(HarnessError, match="cuda:1.*Ray chooses"):
        RayExecutor().prepare("cuda:1", 1)


# ---------------------------------------------------------------- sizing workers (no cluster needed)

H100 = 80 * GIB


@pytest.mark.parametrize("params, share", [(70e6, 0.25), (1e9, 0.25), (6.9e9, 0.5), (12e9, 0.5), (20e9, 0.75)])
def test_small_models_take_a_share_of_one_gpu(params, share):
    need = unit_resources(ModelSpec(model="m"), int(params * 2), "cuda", H100, 1)
    assert need == Resources(1, share, int(params * 2) + GIB // 2)


def test_large_models_span_whole_gpus_and_an_entry_can_say_how_many():
    assert unit_resources(ModelSpec(model="m"), int(70e9 * 2), "cuda", H100, 2).num_gpus == 3  # 175 GB / 72 GB
    assert unit_resources(ModelSpec(model="m", gpus=4), int(70e9 * 2), "cuda", H100, 1).num_gpus == 4
    assert unit_resources(ModelSpec(model="m", gpus=4), 10, "cpu", 0, 3) == Resources(3, 0.0, 10 + GIB // 2)


def test_replicas_follow_the_work_each_model_has():
    """Pythia 70M…12B × 50 tasks of 1,000 documents on 64 GPUs: the large models get the replicas."""
    from harness.runner.placement import replica_counts
    from harness.runner.plan import Unit

    class Task:
        def __init__(self, n):
            self.instances = [None] * n

    params = [70e6, 160e6, 410e6, 1e9, 1.4e9, 2.8e9, 6.9e9, 12e9]
    units = [Unit(ModelSpec(model=f"p{i}"), "cuda", "bfloat16", tuple(Task(1000) for _ in range(50))) for i in params]
    needs = [unit_resources(u.spec, int(p * 2), "cuda", H100, 1) for u, p in zip(units, params)]
    counts = replica_counts(units, needs, 64, True, [int(p * 2) for p in params])
    assert counts == [1, 1, 4, 10, 14, 28, 35, 50]  # 57 of 64 GPUs: 12B stops at one replica per task
    assert sum(c * n.num_gpus for c, n in zip(counts, needs)) == 57
    assert replica_counts(units[:2], needs[:2], 2, False, [10, 10]) == [1, 1]  # CPUs: one worker each


def test_a_worker_no_node_can_hold_is_refused_naming_the_model():
    nodes = [{"CPU": 16.0, "GPU": 4.0, "memory": 500 * GIB}, {"CPU": 16.0, "GPU": 8.0, "memory": 900 * GIB}]
    check_placeable("pythia-12b", Resources(1, 8.0, 30 * GIB), nodes)
    with pytest.raises(HarnessError, match=r"model llama-405b needs 16 GPU\(s\).*largest node .* has 8 GPU\(s\)"):
        check_placeable("llama-405b", Resources(1, 16.0, 30 * GIB), nodes)
    with pytest.raises(HarnessError, match="needs 1 GPU"):
        check_placeable("m", Resources(1, 1.0, GIB), [{"CPU": 2.0, "memory": 8 * GIB}])


def test_weights_are_sized_from_the_config_alone(tiny_models):
    from harness.models.causal import CausalBackend
    from harness.runner.placement import estimate_weight_bytes

    spec = ModelSpec(model=str(tiny_models["neox"]))
    params = CausalBackend(spec).parameter_counts()[0]
    assert estimate_weight_bytes(spec, "float32") == 4 * params
    assert estimate_weight_bytes(spec, "bfloat16") == 2 * params
    assert estimate_weight_bytes(ModelSpec(model="/nonexistent/model"), "float32") == 0  # its worker says why
