"""Plan a run: which (model, task) pairs are already stored under the same key, and which units of work
remain. A unit is one model with the tasks still to compute on it: plain, picklable data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from harness.config import ExperimentConfig, RunSettings
from harness.files import cache_dir, digest
from harness.ladder import ensure_ladder
from harness.models.adapters import adapter_hash
from harness.models.backend import resolve_device, resolve_dtype
from harness.models.hub import hub_weights_hash
from harness.models.suite import ModelSpec, weights_hash
from harness.runner.progress import Reporter
from harness.store import SCORING_VERSION, PairSummary, RunStore
from harness.tasks.prepared import AnyPrepared


@dataclass(frozen=True)
class Unit:
    """One model's share of the work: load it once on ``device`` in ``dtype``, score ``tasks``."""

    spec: ModelSpec
    device: str
    dtype: str
    tasks: tuple[AnyPrepared, ...]
    keys: dict[str, str] = field(default_factory=dict)  # task name -> result key
    chunk_size: int = 1000  # documents scored and committed together
    resumed: dict[str, dict[int, list]] = field(default_factory=dict)  # task -> finished chunks' records, by index


@dataclass
class ModelPlan:
    """A suite entry: its unit (possibly with no tasks left) and the pairs reused from earlier runs."""

    unit: Unit
    done: dict[str, PairSummary]
    weights: str = ""  # the weights' hash (see ``weights_hash``)


def resolve_suite(config: ExperimentConfig, reporter: Optional[Reporter] = None) -> list[ModelSpec]:
    """The config's models; a ladder reference is built on first use (with progress)."""
    q = config.run.quantization if not isinstance(config.run.quantization, list) else None
    if isinstance(config.suite, list):
        suite = config.suite
    else:
        rep = reporter or Reporter()
        suite = ensure_ladder(config.suite.ladder, log=rep.log, progress=rep.building)
    return [s.model_copy(update={"quantization": s.quantization or q}) for s in suite]


def pair_key(spec: ModelSpec, dtype: str, whash: str, prepared: AnyPrepared) -> str:
    """Everything that changes a (model, task) result; batch size and device order do not."""
    return digest({"scoring": SCORING_VERSION, "model": spec.model, "revision": spec.revision, "dtype": dtype,
                   "weights": whash, "tokenizer": spec.tokenizer, "max_length": spec.max_length,
                   "task": prepared.task.hash, "prompts": prepared.prompt_hash,
                   **({"quantization": spec.quantization.model_dump()} if spec.quantization else {})})


def plan(store: RunStore, suite: list[ModelSpec], prepared: list[AnyPrepared], settings: RunSettings,
         device: Optional[str] = None) -> list[ModelPlan]:
    """One ModelPlan per suite entry, in suite order: the device (``device``: as an executor resolved it) and dtype
    resolved once, every pair's key, the pairs already stored under that key, and the tasks still to compute."""
    device = device or resolve_device(settings.device)
    out = []
    for spec in suite:
        dtype = resolve_dtype(spec, settings.dtype, device)
        whash = weights_hash(spec, cache_dir()) if spec.is_local else hub_weights_hash(spec)
        if spec.adapter:  # the base's weights and the adapter's files
            whash = digest([whash, adapter_hash(spec, cache_dir())])
        keys = {p.task.name: pair_key(spec, dtype, whash, p) for p in prepared}
        done = {p.task.name: s for p in prepared if (s := store.summary(spec.name, p.task.name, keys[p.task.name]))}
        todo = tuple(p for p in prepared if p.task.name not in done)
        resumed = {p.task.name: c for p in todo if (c := _resumable(store, spec.name, p, keys[p.task.name],
                                                                    settings.chunk_size))}
        out.append(ModelPlan(Unit(spec, device, dtype, todo, keys, settings.chunk_size, resumed), done, whash))
    return out


def _resumable(store: RunStore, model: str, p: AnyPrepared, key: str, size: int) -> dict[int, list]:
    """Chunks an interrupted run finished for this pair: same key and chunk size, each holding exactly its
    documents (ids and row hashes) in order."""
    out = {}
    for i, records in store.chunks(model, p.task.name, key, size).items():
        expected = [(d.doc_id, d.doc_hash) for d in p.instances[i * size:(i + 1) * size]]
        if expected and [(r.get("doc_id"), r.get("doc_hash")) for r in records] == expected:
            out[i] = records
    return out


def duplicate_weights(plans: list[ModelPlan]) -> list[list[str]]:
    """Suite entries whose weights are identical (checkpoints a hub serves twice, a folder copied), by name."""
    by_hash: dict[str, list[str]] = {}
    for mp in plans:
        by_hash.setdefault(mp.weights, []).append(mp.unit.spec.name)
    return [names for names in by_hash.values() if len(names) > 1]
