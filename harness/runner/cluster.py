"""The Ray executor: a pool of Ray actors (workers), each loading one model at a time and scoring one task per
call; the driver hands out the work, takes the results as they arrive and commits them (only it writes). Workers
are sized from each model's weights (small models share a GPU, large ones span several), a model may have several
replicas sharing its tasks, and a worker lost mid-task is restarted and the task retried, so nothing partial
reaches the driver."""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional

from harness.config import RaySettings, RunSettings
from harness.errors import HarnessError
from harness.models.backend import Backend, BackendFactory
from harness.runner.execute import Event, Failure, Loaded, TaskStarted, open_unit, score_task
from harness.runner.placement import (
    Resources,
    check_placeable,
    estimate_weight_bytes,
    replica_counts,
    unit_resources,
)
from harness.runner.plan import Unit


@dataclass(frozen=True)
class Job:
    """What a worker needs to serve a unit: the unit without its tasks and each task, as object-store references
    (every task is stored once however many models score it; boxed in lists so that Ray passes the references and a
    worker fetches what it uses), the settings, and its share of the worker."""

    unit: list[Any]  # [ObjectRef of the Unit, tasks left out]
    tasks: list[Any]  # ObjectRefs of the unit's PreparedTasks, in its order
    factory: BackendFactory
    settings: RunSettings
    threads: int
    gpu_share: float


class ScoreWorker:
    """A Ray actor's body: a process of the cluster that loads one model at a time (the model of the job it is
    given, if not loaded already) and scores one task per call. Every call carries its job, so a worker Ray
    restarted after losing it reloads the model and retries the call by itself. It returns events as data and
    writes nothing."""

    def __init__(self) -> None:
        logging.getLogger("torchao").setLevel(logging.ERROR)  # optional kernels it cannot load: noise in every worker
        self.job_id = ""
        self.unit: Optional[Unit] = None
        self.backend: Optional[Backend] = None
        self.loaded: Optional[Event] = None

    def _open(self, job: Job) -> Optional[Event]:
        """Load the job's model unless it is the one loaded: its Loaded or Failure event (None: already loaded)."""
        import ray
        import torch

        (ref,) = job.unit
        if ref.hex() == self.job_id:
            return None
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        unit = self.unit = ray.get(ref)
        self.job_id = ref.hex()
        torch.set_num_threads(job.threads)
        if unit.device.startswith("cuda"):  # stay inside this worker's share: OOM halves the batch
            torch.cuda.set_per_process_memory_fraction(job.gpu_share)
        try:
            self.backend, self.loaded = open_unit(unit, job.settings, job.factory,
                                                  f"{socket.gethostname()} pid {os.getpid()}")
        except HarnessError as err:
            self.loaded = Failure(unit.spec.name, None, str(err))
        return self.loaded

    def warm_up(self) -> None:
        """The imports every model needs (seconds of a fresh process), done while the driver still plans."""
        import transformers  # noqa: F401

        from harness.models.loading import load_backend  # noqa: F401

    def score(self, job: Job, index: int) -> list[Event]:
        """Task ``index`` of the job's unit (-1: only load the model): a Loaded (or Failure) event if the model had to
        be loaded, then the task's result or failure (the driver announced it started)."""
        loaded = self._open(job)
        events = [loaded] if loaded is not None else []
        if index < 0 or not isinstance(self.loaded, Loaded):
            return events
        import ray

        assert self.unit is not None and self.backend is not None
        task = ray.get(job.tasks[index])
        return events + [e for e in score_task(self.unit, task, self.backend, self.loaded.meta)
                         if not isinstance(e, TaskStarted)]


@dataclass(eq=False)  # compared by identity: a unit's replicas share one _Model
class _Model:
    """A unit in flight on the driver: its job, the tasks not yet handed out, whether it failed."""

    unit: Unit
    job: Job
    need: Resources
    queue: deque[int]
    failed: bool = False


@dataclass(eq=False)
class _Worker:
    """An actor of the pool, with the resources it holds and the model it serves (None: idle)."""

    actor: Any
    need: Resources
    model: Optional[_Model] = None

    def fits(self, need: Resources) -> bool:
        """Same CPUs and GPUs, and memory enough (a worker started before sizing, memory 0, reserved none)."""
        return ((self.need.num_cpus, self.need.num_gpus) == (need.num_cpus, need.num_gpus)
                and (self.need.memory == 0 or need.memory <= self.need.memory))


class RayExecutor:
    """Units as Ray actors on a cluster (``address``), or on one started on this machine when there is none."""

    def __init__(self, settings: Optional[RaySettings] = None):
        self.settings = settings or RaySettings()
        self.started_here = False
        self.warm: list[_Worker] = []  # workers started by `prepare`, for the pool

    def connect(self) -> Any:
        """Ray, connected: to ``address``, to the cluster this process already joined, or a new local one."""
        try:
            import ray
        except ImportError:
            raise HarnessError("the Ray executor needs Ray: pip install -e '.[ray]' (or pip install 'ray[default]')",
                               where="run.executor") from None
        if ray.is_initialized():
            return ray
        s = self.settings
        try:
            if s.address is None:
                ray.init(num_cpus=s.num_cpus, include_dashboard=False, logging_level=logging.ERROR)
                self.started_here = True
            else:
                ray.init(address=s.address, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise HarnessError(f"could not {'start' if s.address is None else 'join'} a Ray cluster"
                               + (f" at {s.address}" if s.address else "") + f": {' '.join(str(exc).split())[:300]}",
                               where="run.ray.address") from None
        return ray

    def prepare(self, device: str, n_models: int) -> str:
        """Connect, and resolve the device: ``auto`` is ``cuda`` when the cluster has GPUs, else ``cpu`` (Ray places
        each worker on its GPUs, so a numbered device such as ``cuda:1`` means nothing here). On CPUs the pool's
        first workers (one per model, as many as the cluster holds) start now, so that their imports overlap the
        driver's planning."""
        ray = self.connect()
        gpus = ray.cluster_resources().get("GPU", 0)
        if device == "auto":
            device = "cuda" if gpus else "cpu"
        elif device == "cuda" and not gpus:
            raise HarnessError("device 'cuda': the Ray cluster has no GPUs (use auto or cpu, or add GPU nodes)",
                               where="run.device")
        elif device not in ("cpu", "cuda"):
            raise HarnessError(f"device {device!r}: with the Ray executor use auto, cpu or cuda (Ray chooses each "
                               "worker's GPUs)", where="run.device")
        if device == "cpu" and not self.warm:
            cpus = self.settings.cpus_per_worker
            n = min(n_models, int(ray.cluster_resources().get("CPU", 0) // cpus))
            cls = ray.remote(ScoreWorker)
            for _ in range(n):
                actor = cls.options(num_cpus=cpus, max_restarts=self.settings.max_restarts,
                                    max_task_retries=self.settings.max_restarts).remote()
                actor.warm_up.remote()
                self.warm.append(_Worker(actor, Resources(cpus, 0.0, 0)))
        return device

    def resources(self, units: Sequence[Unit]) -> tuple[list[Resources], list[int]]:
        """Each unit's worker, checked against the cluster's nodes (one line naming the model if none fits), and
        how many replicas of it to start (``run.ray.replicas``, or split by work: ``replica_counts``)."""
        ray = self.connect()
        gpu = any(u.device.startswith("cuda") for u in units)
        gpu_memory = _gpu_memory(ray) if gpu else 0
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        needs, sizes = [], []
        for u in units:
            sizes.append(estimate_weight_bytes(u.spec, u.dtype))
            needs.append(unit_resources(u.spec, sizes[-1], u.device, gpu_memory, self.settings.cpus_per_worker))
            check_placeable(u.spec.name, needs[-1], nodes)
        wanted = self.settings.replicas
        if wanted == "auto":
            capacity = ray.cluster_resources().get("GPU" if gpu else "CPU", 1)
            return needs, replica_counts(units, needs, capacity, gpu, sizes)
        return needs, [min(wanted, len(u.tasks)) for u in units]

    def execute(self, units: Sequence[Unit], settings: RunSettings, factory: BackendFactory) -> Iterator[Event]:
        ray = self.connect()
        try:
            yield from self._execute(ray, units, settings, factory)
        finally:
            if self.started_here:
                ray.shutdown()
                self.started_here = False

    def _execute(self, ray: Any, units: Sequence[Unit], settings: RunSettings, factory: BackendFactory
                 ) -> Iterator[Event]:
        """A pool of workers: each replica of a unit (the largest units first) goes to an idle worker of its shape,
        or to a new one while the cluster has room; a worker with a model hands out its tasks (largest first) one by
        one until none is left, then takes the next replica. Events are yielded as they come back."""
        pool = _Pool(ray, self.settings.max_restarts, self.warm)
        self.warm = []
        needs, replicas = self.resources(units)
        inner = settings.model_copy(update={"on_error": "continue"})  # the driver stops the run, workers report
        for unit, need, n in sorted(zip(units, needs, replicas), key=lambda x: -x[1].num_gpus * 1e9 - x[1].memory):
            pool.add(unit, need, n, factory, inner, settings.token_budget)
        try:
            pool.fill()
            while pool.calls:
                w, model, events = pool.next_result()
                name = model.unit.spec.name
                for e in events:
                    if isinstance(e, Failure) and settings.on_error == "stop":
                        raise HarnessError(f"{name}" + (f" / {e.task}" if e.task else "") + f": {e.error}")
                    yield e
                if w in pool.workers:
                    if model.queue and not model.failed:
                        i = model.queue.popleft()
                        task = model.unit.tasks[i]
                        yield TaskStarted(name, task.task.name, len(task.instances))
                        pool.send(w, i)
                    else:
                        w.model = None
                pool.fill()
        finally:  # done, or the driver stops: no worker outlives the run
            for w in list(pool.workers):
                pool.retire(w)


class _Pool:
    """One run's workers, the replicas still to start (``slots``), the calls in flight, the free CPUs and GPUs."""

    def __init__(self, ray: Any, retries: int, warm: list[_Worker]):
        self.ray, self.retries = ray, retries
        self.worker_cls = ray.remote(ScoreWorker)
        total = ray.cluster_resources()
        self.free = {"CPU": total.get("CPU", 0.0), "GPU": total.get("GPU", 0.0)}
        self.calls: dict[Any, tuple[_Worker, int]] = {}  # in flight: (worker, task index; -1: loading)
        self.workers = list(warm)  # started by ``prepare``: their CPUs are taken
        for w in self.workers:
            self.free["CPU"] -= w.need.num_cpus
        self.slots: deque[_Model] = deque()  # one per replica to start
        self.stored: dict[int, Any] = {}  # each prepared task in the object store once

    def add(self, unit: Unit, need: Resources, replicas: int, factory: BackendFactory, settings: RunSettings,
            token_budget: Optional[int]) -> None:
        """A unit's job (tasks in the object store once) and its ``replicas`` slots; a GPU share: that much budget."""
        share = need.num_gpus if need.num_gpus < 1 else 1.0
        if unit.device.startswith("cuda") and share < 1 and token_budget is None:
            from harness.models.base import GPU_TOKEN_BUDGET

            settings = settings.model_copy(update={"token_budget": int(GPU_TOKEN_BUDGET * share)})
        order = sorted(range(len(unit.tasks)), key=lambda i: -len(unit.tasks[i].instances))
        for p in unit.tasks:
            if id(p) not in self.stored:
                self.stored[id(p)] = self.ray.put(p)
        refs = [self.stored[id(p)] for p in unit.tasks]
        spec = unit.spec.model_copy(update={"gpus": need.num_gpus}) if need.num_gpus > 1 else unit.spec
        job = Job([self.ray.put(replace(unit, spec=spec, tasks=()))], refs, factory, settings, need.num_cpus, share)
        self.slots.extend([_Model(unit, job, need, deque(order))] * replicas)

    def send(self, w: _Worker, index: int) -> None:
        assert w.model is not None
        self.calls[w.actor.score.remote(w.model.job, index)] = (w, index)

    def retire(self, w: _Worker) -> None:
        self.workers.remove(w)
        self.free["CPU"] += w.need.num_cpus
        self.free["GPU"] += w.need.num_gpus
        self.ray.kill(w.actor, no_restart=True)

    def _next_slot(self, w: _Worker) -> Optional[_Model]:
        for m in list(self.slots):
            if not m.queue or m.failed:
                self.slots.remove(m)  # its tasks were all handed out already
            elif w.fits(m.need):
                self.slots.remove(m)
                return m
        return None

    def fill(self) -> None:
        """Idle workers take the next replica of their shape (or go); new workers start while there is room."""
        for w in [w for w in self.workers if w.model is None]:
            w.model = self._next_slot(w)
            if w.model is None:
                self.retire(w)
            else:
                self.send(w, -1)
        while self.slots:
            m = self.slots[0]
            if not m.queue or m.failed:
                self.slots.popleft()
                continue
            fits = self.free["CPU"] >= m.need.num_cpus and self.free["GPU"] >= m.need.num_gpus - 1e-9
            if not fits and self.workers:
                break  # wait for a worker to finish (Ray would queue it anyway)
            self.slots.popleft()
            actor = self.worker_cls.options(num_cpus=m.need.num_cpus, num_gpus=m.need.num_gpus, memory=m.need.memory,
                                            max_restarts=self.retries, max_task_retries=self.retries).remote()
            w = _Worker(actor, m.need, m)
            self.workers.append(w)
            self.free["CPU"] -= m.need.num_cpus
            self.free["GPU"] -= m.need.num_gpus
            self.send(w, -1)

    def next_result(self) -> tuple[_Worker, _Model, list[Event]]:
        """The next call to come back: its worker, model and events (a worker that failed: the model's failure, the
        worker retired; a model already out: nothing more of it)."""
        from ray.exceptions import RayError, RayTaskError
        (ref,), _ = self.ray.wait(list(self.calls), num_returns=1)
        w, _index = self.calls.pop(ref)
        model = w.model
        assert model is not None
        name = model.unit.spec.name
        try:
            events: list[Event] = self.ray.get(ref)
        except RayTaskError as exc:  # the worker's code raised (scoring errors come back as events)
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            events = [Failure(name, None, f"its worker failed: {type(cause).__name__}: {_one_line(cause)}")]
            self.retire(w)
            w.model = None
        except RayError as exc:  # the worker's process died more often than it may be restarted
            events = [Failure(name, None, f"its worker was lost ({self.retries} restart(s) tried): {_one_line(exc)}")]
            self.retire(w)
            w.model = None
        if model.failed:
            events = []  # its failure was reported; what other replicas still return is dropped
        elif any(isinstance(e, Failure) and e.task is None for e in events):  # the model is out
            model.failed = True
            events = [next(e for e in events if isinstance(e, Failure) and e.task is None)]
        return w, model, events


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, without terminal colours, cut at 300 characters."""
    import re

    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())[:300]


def _gpu_memory(ray: Any) -> int:
    """Bytes of memory of the cluster's GPUs (the smallest, asked of one GPU worker)."""

    def total() -> int:
        import torch

        return min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))

    return int(ray.get(ray.remote(num_gpus=0.01)(total).remote()))

