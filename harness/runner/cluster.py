"""The Ray executor: every unit (one model and its tasks) runs in a Ray actor that loads the model once and scores
one task per call; the driver takes the results as they arrive and commits them (only it writes). Small models
share a GPU (a fraction of it each), large ones span several; a worker lost mid-task is restarted and the task
retried, so nothing partial reaches the driver."""

from __future__ import annotations

import logging
import math
import os
import socket
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from harness.config import RaySettings, RunSettings
from harness.errors import HarnessError
from harness.models.backend import Backend, BackendFactory
from harness.models.suite import ModelSpec
from harness.runner.execute import Event, Failure, Loaded, TaskStarted, open_unit, score_task
from harness.runner.plan import Unit

GIB = 1 << 30
MIN_GPU_SHARE = 0.25  # at most four models share a GPU
GPU_HEADROOM = 1.25  # a GPU share holds the weights × this, plus activations (ACTIVATION_BYTES)
ACTIVATION_BYTES = 4 * GIB
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class Resources:
    """What one model's worker asks of the cluster: Ray's scheduling resources."""

    num_cpus: int
    num_gpus: float
    memory: int  # bytes of host memory, for placement


def estimate_weight_bytes(spec: ModelSpec, dtype: str) -> int:
    """The model's weights in memory, counted from its config on PyTorch's meta device (no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    try:
        config = AutoConfig.from_pretrained(spec.model, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
        auto: Any = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        with torch.device("meta"):
            model = auto.from_config(config, trust_remote_code=spec.trust_remote_code)
        params = sum(p.numel() for p in model.parameters())
    except Exception as exc:  # the worker will say why it cannot load; size it as a small model meanwhile
        del exc
        return 0
    per_param = spec.quantization.bits / 8 if spec.quantization else BYTES[dtype]
    return int(params * per_param)


def unit_resources(spec: ModelSpec, weight_bytes: int, device: str, gpu_memory: int, cpus_per_worker: int) -> Resources:
    """A model's worker: ``cpus_per_worker`` CPUs; on GPU the entry's ``gpus``, else the share of one GPU that holds
    its weights with headroom (in quarters, at least a quarter), else the whole GPUs that hold them."""
    memory = weight_bytes + GIB // 2
    if not device.startswith("cuda"):
        return Resources(cpus_per_worker, 0.0, memory)
    if spec.gpus is not None:
        return Resources(cpus_per_worker, spec.gpus, memory)
    need = weight_bytes * GPU_HEADROOM + ACTIVATION_BYTES
    if need <= gpu_memory:
        return Resources(cpus_per_worker, max(MIN_GPU_SHARE, math.ceil(need / gpu_memory * 4) / 4), memory)
    return Resources(cpus_per_worker, float(math.ceil(weight_bytes * GPU_HEADROOM / (0.9 * gpu_memory))), memory)


def check_placeable(name: str, need: Resources, nodes: list[dict[str, float]]) -> None:
    """Ray never schedules a worker no node can hold (it waits for ever): refuse it here, in one line."""
    if any(n.get("CPU", 0) >= need.num_cpus and n.get("GPU", 0) >= need.num_gpus and n.get("memory", 0) >= need.memory
           for n in nodes):
        return
    largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    raise HarnessError(f"model {name} needs {need.num_gpus:g} GPU(s), {need.num_cpus} CPU(s) and "
                       f"{need.memory / GIB:.1f} GiB of memory on one node; the largest node of the Ray cluster has "
                       f"{largest.get('GPU', 0):g} GPU(s), {largest.get('CPU', 0):g} CPU(s), "
                       f"{largest.get('memory', 0) / GIB:.1f} GiB (set the entry's `gpus:`, run.ray.cpus_per_worker, "
                       "or add nodes)", where="run.executor")


class ScoreWorker:
    """A Ray actor's body: loads one unit's model when created (again if Ray restarts it), then scores one task
    per ``score`` call. It returns events as data and writes nothing."""

    def __init__(self, unit: Unit, settings: RunSettings, factory: BackendFactory, threads: int, gpu_share: float):
        import torch

        logging.getLogger("torchao").setLevel(logging.ERROR)  # optional kernels it cannot load: noise in every worker
        torch.set_num_threads(threads)
        if unit.device.startswith("cuda") and gpu_share < 1:  # stay inside this worker's share: OOM halves the batch
            torch.cuda.set_per_process_memory_fraction(gpu_share)
        self.unit = unit
        self.backend: Optional[Backend] = None
        worker = f"{socket.gethostname()} pid {os.getpid()}"
        try:
            self.backend, loaded = open_unit(unit, settings, factory, worker)
            self.first: Event = loaded
        except HarnessError as err:
            self.first = Failure(unit.spec.name, None, str(err))

    def loaded(self) -> Event:
        return self.first

    def score(self, index: int) -> list[Event]:
        """Task ``index`` of the unit: its result or failure (the driver announced it started)."""
        assert self.backend is not None and isinstance(self.first, Loaded)
        return [e for e in score_task(self.unit, self.unit.tasks[index], self.backend, self.first.meta)
                if not isinstance(e, TaskStarted)]

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


@dataclass
class _Model:
    """A unit in flight on the driver: the tasks not yet handed to a replica, and the replicas' actors."""

    unit: Unit
    queue: deque[int]
    actors: list[Any] = field(default_factory=list)
    loaded: bool = False


def replica_counts(units: Sequence[Unit], needs: Sequence[Resources], capacity: float, gpu: bool,
                   sizes: Sequence[int]) -> list[int]:
    """Replicas per unit, so that the cluster's ``capacity`` (GPUs, or CPUs) is split by each unit's work (weight
    bytes × documents): one replica for a small share, more for the models that dominate, never more than the
    unit has tasks (a task runs whole on one replica)."""
    work = [max(size, 1) * sum(len(p.instances) for p in u.tasks) for u, size in zip(units, sizes)]
    total = sum(work) or 1
    out = []
    for u, need, w in zip(units, needs, work):
        per = need.num_gpus if gpu else need.num_cpus
        out.append(max(1, min(len(u.tasks), int(capacity * w / total / per))))
    return out


class RayExecutor:
    """Units as Ray actors on a cluster (``address``), or on one started on this machine when there is none."""

    def __init__(self, settings: Optional[RaySettings] = None):
        self.settings = settings or RaySettings()
        self.started_here = False

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

    def resolve_device(self, requested: str) -> str:
        """``auto``: ``cuda`` when the cluster has GPUs, else ``cpu``. Ray places each worker on its GPUs, so a
        numbered device (``cuda:1``) means nothing here."""
        ray = self.connect()
        gpus = ray.cluster_resources().get("GPU", 0)
        if requested == "auto":
            return "cuda" if gpus else "cpu"
        if requested == "cuda" and not gpus:
            raise HarnessError("device 'cuda': the Ray cluster has no GPUs (use auto or cpu, or add GPU nodes)",
                               where="run.device")
        if requested != "cpu" and requested != "cuda":
            raise HarnessError(f"device {requested!r}: with the Ray executor use auto, cpu or cuda (Ray chooses each "
                               "worker's GPUs)", where="run.device")
        return requested

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
        """Start every unit's replicas (Ray queues those the cluster cannot hold yet); hand each loaded replica the
        unit's next task (largest first) until none is left; yield events as they come back."""
        from ray.exceptions import RayError

        worker_cls = ray.remote(ScoreWorker)
        retries = self.settings.max_restarts
        inner = settings.model_copy(update={"on_error": "continue"})  # the driver stops the run, workers report
        calls: dict[Any, tuple[_Model, Any, int]] = {}  # in flight: (unit, replica, task index; -1: loading)
        models: list[_Model] = []

        def drop(m: _Model) -> None:  # the unit is over: its replicas go, their calls are forgotten
            for ref in [ref for ref, (mm, _, _) in calls.items() if mm is m]:
                del calls[ref]
            for actor in m.actors:
                ray.kill(actor, no_restart=True)
            m.actors.clear()

        def hand_out(m: _Model, actor: Any) -> Iterator[Event]:
            if not m.queue:
                m.actors.remove(actor)
                ray.kill(actor, no_restart=True)
                return
            i = m.queue.popleft()
            task = m.unit.tasks[i]
            yield TaskStarted(m.unit.spec.name, task.task.name, len(task.instances))
            calls[actor.score.remote(i)] = (m, actor, i)

        try:
            needs, replicas = self.resources(units)
            for unit, need, n in zip(units, needs, replicas):
                share = need.num_gpus if need.num_gpus < 1 else 1.0
                unit_settings = inner
                if unit.device.startswith("cuda") and share < 1 and settings.token_budget is None:
                    from harness.models.hf import GPU_TOKEN_BUDGET  # a share of the GPU: that share of the budget

                    unit_settings = inner.model_copy(update={"token_budget": int(GPU_TOKEN_BUDGET * share)})
                order = sorted(range(len(unit.tasks)), key=lambda i: -len(unit.tasks[i].instances))
                m = _Model(unit, deque(order))
                models.append(m)
                for _ in range(n):
                    actor = worker_cls.options(num_cpus=need.num_cpus, num_gpus=need.num_gpus, memory=need.memory,
                                               max_restarts=retries, max_task_retries=retries).remote(
                        unit, unit_settings, factory, need.num_cpus, share)
                    m.actors.append(actor)
                    calls[actor.loaded.remote()] = (m, actor, -1)
            while calls:
                (ref,), _ = ray.wait(list(calls), num_returns=1)
                m, actor, index = calls.pop(ref)
                name = m.unit.spec.name
                try:
                    got = ray.get(ref)
                    events: list[Event] = [got] if index < 0 else got
                except RayError as exc:
                    reason = " ".join(str(exc).split())[:300]
                    events = [Failure(name, None, f"its worker was lost ({retries} restart(s) tried): {reason}")]
                if any(isinstance(e, Failure) and e.task is None for e in events):  # the model is out: say so once
                    drop(m)
                    events = [next(e for e in events if isinstance(e, Failure) and e.task is None)]
                for e in events:
                    if isinstance(e, Failure) and settings.on_error == "stop":
                        raise HarnessError(f"{name}" + (f" / {e.task}" if e.task else "") + f": {e.error}")
                    yield e
                if actor in m.actors:
                    yield from hand_out(m, actor)
        finally:  # done, or the driver stops: no worker outlives the run
            for m in models:
                drop(m)


def _gpu_memory(ray: Any) -> int:
    """Bytes of memory of the cluster's GPUs (the smallest, asked of one GPU worker)."""

    def total() -> int:
        import torch

        return min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))

    return int(ray.get(ray.remote(num_gpus=0.01)(total).remote()))
