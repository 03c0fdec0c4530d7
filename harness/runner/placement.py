"""Sizing the Ray executor's workers: each model's weights estimated from its config (no weights read), the CPUs,
GPU share and memory its worker asks for, whether any node can hold it, and how many replicas each model gets."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.models.suite import ModelSpec
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
    """The model's weights in memory, counted from its config on PyTorch's meta device (no weights read; once per
    distinct config, so 154 checkpoints of one model cost one count)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(spec.model, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
        params = _count_on_meta(config.to_json_string(), spec.model if spec.trust_remote_code else "")
    except Exception as exc:  # the worker will say why it cannot load; size it as a small model meanwhile
        del exc
        return 0
    per_param = spec.quantization.bits / 8 if spec.quantization else BYTES[dtype]
    return int(params * per_param)


@functools.lru_cache(maxsize=256)
def _count_on_meta(config_json: str, remote_code_from: str) -> int:
    """Parameters of the model a config describes, instantiated on the meta device."""
    import json

    import torch
    import transformers
    from transformers import AutoConfig

    from harness.models.loading import BACKENDS, architecture

    if remote_code_from:
        config = AutoConfig.from_pretrained(remote_code_from, trust_remote_code=True)
    else:
        raw = json.loads(config_json)
        config = AutoConfig.for_model(raw.pop("model_type"), **raw)
    auto: Any = getattr(transformers, BACKENDS[architecture(config)].auto_class)
    with torch.device("meta"):
        model = auto.from_config(config, trust_remote_code=bool(remote_code_from))
    return sum(p.numel() for p in model.parameters())


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
