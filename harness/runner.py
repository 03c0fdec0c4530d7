"""The run loop: prepare every task once, then for each model of the suite (loaded once) evaluate the
tasks that are not already stored under the same key, write them atomically, and tabulate the scores."""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from harness import metrics as M
from harness.config import ExperimentConfig
from harness.errors import HarnessError
from harness.models.backend import Backend, GenerationRequest
from harness.models.suite import ModelSpec, count_parameters, weights_hash
from harness.store import SCORING_VERSION, RunStore, digest
from harness.tasks import Instance, Task, build_instances, load_documents, resolve_tasks

Record = dict[str, Any]


@dataclass
class PreparedTask:
    """A task's rendered instances, built once and reused for every model of the suite."""

    task: Task
    instances: list[Instance]

    @property
    def prompt_hash(self) -> str:
        return digest([[i.context, i.delimiter, i.target, i.choices, i.gold] for i in self.instances])


def prepare(task: Task, limit: Optional[int] = None) -> PreparedTask:
    """Load documents (and the few-shot split) and render them; all template errors surface here."""
    spec = task.spec
    docs = load_documents(spec.dataset, task.source)
    pool = None
    if spec.fewshot.k and spec.fewshot.split is not None:
        pool = load_documents(spec.dataset, task.source, split=spec.fewshot.split)
    if limit is not None:
        docs = docs[:limit]
    return PreparedTask(task, build_instances(task, docs, pool))


# ---------------------------------------------------------------------------- evaluation

def evaluate(backend: Backend, prepared: PreparedTask) -> list[Record]:
    """Run one task on one model and return per-example records with their metric values."""
    spec = prepared.task.spec
    insts = prepared.instances
    if spec.output == "multiple_choice":
        pairs = [(i.context, c) for i in insts for c in i.continuations]
        results = iter(backend.loglikelihood(pairs))
        records = []
        for i in insts:
            res = [next(results) for _ in i.choices or ()]
            records.append({"doc_id": i.doc_id, "prompt": i.context, "choices": list(i.choices or ()), "gold": i.gold,
                            "logprobs": [r.logprob for r in res], "n_tokens": [r.n_tokens for r in res],
                            "is_greedy": [r.is_greedy for r in res],
                            "n_bytes": [len(c.encode("utf-8")) for c in i.choices or ()]})
    elif spec.output in ("generate", "loglikelihood"):
        lls = backend.loglikelihood([(i.context, i.delimiter + (i.target or "")) for i in insts])
        records = [{"doc_id": i.doc_id, "prompt": i.context, "target": i.target, "target_logprob": r.logprob,
                    "target_tokens": r.n_tokens, "is_greedy": r.is_greedy} for i, r in zip(insts, lls)]
        if spec.output == "generate":
            gen = spec.generation
            texts = backend.generate([GenerationRequest(i.context, tuple(gen.until), gen.max_new_tokens) for i in insts])
            for rec, i, text in zip(records, insts, texts):
                rec["generation"] = text
                rec["generation_ids"] = backend.tokenize(text)
                rec["target_ids"] = backend.tokenize(i.delimiter + (i.target or ""))
    else:  # perplexity
        lls = backend.loglikelihood_rolling([i.context for i in insts], spec.perplexity.window, spec.perplexity.stride)
        records = [{"doc_id": i.doc_id, "logprob": r.logprob, "n_tokens": r.n_tokens,
                    "n_bytes": len(i.context.encode("utf-8")), "n_words": len(i.context.split()) or 1}
                   for i, r in zip(insts, lls)]
    for rec in records:
        rec["metrics"] = {m.name: M.compute(m.name, rec, m.options) for m in spec.metrics}
    return records


def chance_levels(prepared: PreparedTask) -> dict[str, float]:
    """Chance per metric where it is known, or the task's ``chance``. Multiple choice: 1/choices; when every
    document has the same choices (a classification task), accuracy's chance is the majority-class rate."""
    spec = prepared.task.spec
    insts = prepared.instances
    out: dict[str, float] = {}
    if spec.output == "multiple_choice":
        uniform = float(np.mean([1.0 / len(i.choices or (0, 0)) for i in insts]))
        acc = uniform
        if len(insts) > 1 and len({tuple(i.choices or ()) for i in insts}) == 1:
            acc = max(sum(i.gold == g for i in insts) for g in {i.gold for i in insts}) / len(insts)
        out.update({"acc": acc, "acc_norm": acc, "p_correct": uniform})
    if spec.chance is not None:
        out.update({m.name: spec.chance for m in spec.metrics if M.METRICS[m.name].kind == "discontinuous"})
    return {m.name: out[m.name] for m in spec.metrics if m.name in out}


# ---------------------------------------------------------------------------- the run

@dataclass
class Failure:
    model: str
    task: Optional[str]
    error: str


@dataclass
class RunResult:
    output: Path
    rows: list[dict]
    failures: list[Failure] = field(default_factory=list)
    computed: int = 0
    skipped: int = 0


def cache_dir() -> Path:
    import os

    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "scaling-harness"))


def resolve_suite(config: ExperimentConfig, progress: Optional[Callable[[str], None]] = None) -> list[ModelSpec]:
    if isinstance(config.suite, list):
        return config.suite
    from harness.ladder import ensure_ladder

    return ensure_ladder(config.suite.ladder, log=progress)


def pair_key(spec: ModelSpec, dtype: str, whash: str, prepared: PreparedTask) -> str:
    """Everything that changes a (model, task) result; batch size and device order do not."""
    return digest({"scoring": SCORING_VERSION, "model": spec.model, "revision": spec.revision, "dtype": dtype,
                   "weights": whash, "tokenizer": spec.tokenizer, "max_length": spec.max_length,
                   "task": prepared.task.hash, "prompts": prepared.prompt_hash})


def run(config: ExperimentConfig, reporter: Optional["Reporter"] = None,
        backend_factory: Optional[Callable[..., Backend]] = None) -> RunResult:
    """Evaluate the suite on the tasks, resuming whatever is already stored under the same key."""
    from harness.models.hf import HFBackend, resolve_device, resolve_dtype

    import torch

    rep = reporter or Reporter()
    torch.manual_seed(config.run.seed)
    store = RunStore(config.output_dir)
    store.check_writable()
    tasks = resolve_tasks(config.tasks, Path.cwd())
    prepared = [prepare(t, config.run.limit) for t in tasks]  # every input error surfaces before any write
    suite = resolve_suite(config, rep.log)
    store.clean_tmp()
    device = resolve_device(config.run.device)
    factory = backend_factory or HFBackend
    result = RunResult(config.output_dir, [])
    models_meta: list[dict] = []
    summaries: dict[tuple[str, str], dict] = {}
    rep.start(len(suite))
    for spec in suite:
        dtype = resolve_dtype(spec.dtype or config.run.dtype, device)
        whash = weights_hash(spec, cache_dir())
        keys = {p.task.name: pair_key(spec, dtype, whash, p) for p in prepared}
        done = {p.task.name: s for p in prepared if (s := store.summary(spec.name, p.task.name, keys[p.task.name]))}
        todo = [p for p in prepared if p.task.name not in done]
        result.skipped += len(done)
        meta = next((s["model_meta"] for s in done.values()), None)
        rep.model(spec.name, len(todo), len(done))
        backend = None
        try:
            if todo:
                t0 = time.perf_counter()
                backend = factory(spec, device=config.run.device, dtype=config.run.dtype,
                                  batch_size=config.run.batch_size, token_budget=config.run.token_budget)
                meta = model_metadata(spec, backend, dtype, keys)
                mc = {True: "choices packed behind a shared context", False: "one sequence per choice"}.get(
                    getattr(backend, "packing", None), "")
                rep.log(f"loaded {spec.name} ({meta['params']:,} parameters, {dtype}{', ' + mc if mc else ''}) "
                        f"in {time.perf_counter() - t0:.1f}s")
            for p in todo:
                t0 = time.perf_counter()
                try:
                    rep.task(p.task.name, len(p.instances))
                    records = evaluate(backend, p)  # type: ignore[arg-type]
                except HarnessError:
                    raise
                except Exception as exc:
                    if config.run.on_error == "stop":
                        raise
                    result.failures.append(Failure(spec.name, p.task.name, f"{type(exc).__name__}: {exc}"))
                    rep.log(f"[red]failed[/] {spec.name} / {p.task.name}: {type(exc).__name__}: {exc}")
                    continue
                summary = {"key": keys[p.task.name], "model": spec.name, "task": p.task.name, "group": p.task.group,
                           "output": p.task.spec.output, "n": len(records), "model_meta": meta,
                           "seconds": round(time.perf_counter() - t0, 3), "chance": chance_levels(p),
                           "scores": {m.name: vars(M.aggregate(m.name, records)) for m in p.task.spec.metrics}}
                store.write(spec.name, p.task.name, records, summary)
                done[p.task.name] = summary
                result.computed += 1
                rep.task_done(p.task.name, summary)
        except HarnessError as err:
            if config.run.on_error == "stop":
                raise
            result.failures.append(Failure(spec.name, None, str(err)))
            rep.log(f"[red]failed[/] {err}")
        finally:
            if backend is not None:
                backend.close()
        if meta is not None:
            models_meta.append(meta)
        summaries.update({(spec.name, t): s for t, s in done.items()})
    result.rows = score_rows(store, suite, prepared, summaries)
    if summaries:  # nothing at all is written for a run that produced nothing
        store.write_scores(result.rows)
        store.write_manifest(manifest(config, suite, prepared, models_meta, result.failures, device))
    rep.finish()
    return result


def model_metadata(spec: ModelSpec, backend: Any, dtype: str, keys: dict) -> dict:
    total, nonemb = count_parameters(backend.model)
    local = spec.local_metadata()
    tokens = spec.tokens if spec.tokens is not None else local.get("tokens")
    flops = spec.flops if spec.flops is not None else (6.0 * total * tokens if tokens else None)
    return {"label": spec.name, "model": spec.model, "revision": spec.revision, "dtype": dtype, "params": total,
            "nonembedding_params": nonemb, "tokens": tokens, "flops": flops,
            "ladder": {k: local[k] for k in ("ladder", "size", "seed", "recipe_hash") if k in local} or None}


def score_rows(store: RunStore, suite: list[ModelSpec], prepared: list[PreparedTask],
               summaries: dict[tuple[str, str], dict]) -> list[dict]:
    """The tidy scores table: one row per model x task x metric, then macro/micro rows per task group."""
    rows: list[dict] = []
    groups: dict[str, list[PreparedTask]] = {}
    for p in prepared:
        if p.task.group:
            groups.setdefault(p.task.group, []).append(p)
    for spec in suite:
        for p in prepared:
            s = summaries.get((spec.name, p.task.name))
            if s is None:
                continue
            for metric in (m.name for m in p.task.spec.metrics):
                sc = s["scores"][metric]
                rows.append(_row(s["model_meta"], p.task.name, p.task.group, "", metric, sc["value"], sc["stderr"],
                                 sc["n"], s["chance"].get(metric)))
        for group, members in groups.items():
            ss = [summaries.get((spec.name, p.task.name)) for p in members]
            if any(s is None for s in ss):
                continue  # aggregate only complete groups
            common = [m.name for m in members[0].task.spec.metrics
                      if all(m.name in s["scores"] for s in ss)]  # type: ignore[index]
            pooled = [r for p in members for r in store.records(spec.name, p.task.name)]
            for metric in common:
                vals = [s["scores"][metric] for s in ss]  # type: ignore[index]
                macro = float(np.mean([v["value"] for v in vals]))
                macro_se = float(np.sqrt(sum(v["stderr"] ** 2 for v in vals)) / len(vals))
                chances = [s["chance"].get(metric) for s in ss]  # type: ignore[index]
                chance = float(np.mean(chances)) if all(c is not None for c in chances) else None
                micro = M.aggregate(metric, pooled)
                meta = ss[0]["model_meta"]  # type: ignore[index]
                rows.append(_row(meta, group, group, "macro", metric, macro, macro_se, sum(v["n"] for v in vals), chance))
                rows.append(_row(meta, group, group, "micro", metric, micro.value, micro.stderr, micro.n, chance))
    return rows


def _row(meta: dict, task: str, group: Optional[str], aggregate: str, metric: str, value: float, stderr: float,
         n: int, chance: Optional[float]) -> dict:
    m = M.METRICS[metric]
    return {"model": meta["label"], "params": meta["params"], "nonembedding_params": meta["nonembedding_params"],
            "tokens": meta["tokens"], "flops": meta["flops"], "task": task, "group": group or "",
            "aggregate": aggregate, "metric": metric, "value": value, "stderr": stderr, "n": n, "kind": m.kind,
            "higher_is_better": m.higher_is_better, "chance": chance}


def manifest(config: ExperimentConfig, suite: list[ModelSpec], prepared: list[PreparedTask], models: list[dict],
             failures: list[Failure], device: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    pkgs = {}
    for name in ("scaling-harness", "torch", "transformers", "tokenizers", "datasets", "accelerate", "numpy", "pandas"):
        try:
            pkgs[name] = version(name)
        except PackageNotFoundError:
            pkgs[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"name": config.name, "config": config.model_dump(mode="json"), "scoring_version": SCORING_VERSION,
            "packages": pkgs, "python": platform.python_version(), "git_commit": commit, "device": device,
            "seeds": {"run": config.run.seed, "fewshot": {p.task.name: p.task.spec.fewshot.seed for p in prepared}},
            "suite": [m.model_dump(mode="json", exclude_none=True) for m in suite], "models": models,
            "tasks": [{"name": p.task.name, "group": p.task.group, "source": str(p.task.source), "hash": p.task.hash,
                       "prompt_hash": p.prompt_hash, "n": len(p.instances), "output": p.task.spec.output}
                      for p in prepared],
            "failures": [vars(f) for f in failures]}


class Reporter:
    """Progress for a run: a bar over models and one over the current model's tasks (silent by default)."""

    def start(self, n_models: int) -> None: ...
    def model(self, name: str, n_todo: int, n_done: int) -> None: ...
    def task(self, name: str, n: int) -> None: ...
    def task_done(self, name: str, summary: dict) -> None: ...
    def log(self, message: str) -> None: ...
    def finish(self) -> None: ...
