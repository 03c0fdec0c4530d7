"""Experiment config: which models (the suite), which tasks, run settings, and where results go."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import HarnessError, pydantic_error
from harness.files import read_yaml, safe_name, shipped
from harness.models.adapters import PEFT_MISSING
from harness.models.suite import DType, ModelSpec, Quantization, expand_checkpoints

PACKAGE_CONFIGS = shipped("configs")  # the shipped configs, run by name: configs/ of the checkout, or package data


def packaged_configs() -> list[str]:
    return sorted(p.stem for p in PACKAGE_CONFIGS.glob("*.yaml"))


def resolve_config(name_or_path: str) -> Path:
    """A config file's path, or the name of a packaged config (``quickstart``); a file wins over a name."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        return path  # load_config says "file not found" for a path that is not there
    if name_or_path in packaged_configs():
        return PACKAGE_CONFIGS / f"{name_or_path}.yaml"
    raise HarnessError(f"no config file or packaged config named {name_or_path!r} (packaged: "
                       f"{', '.join(packaged_configs()) or 'none'})", source=name_or_path)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LadderRef(_Strict):
    """``suite: {ladder: toy}``: the models of a locally trained ladder, built on first use."""

    ladder: str


class RaySettings(_Strict):
    """``run.ray``: where the Ray executor runs and how it sizes its workers."""

    address: Optional[str] = None  # None: start a Ray cluster on this machine; "auto": join the running one; or HOST:PORT
    num_cpus: Optional[int] = Field(default=None, ge=1)  # a cluster started here: CPUs it may use (default: all)
    cpus_per_worker: int = Field(default=1, ge=1)  # CPUs (torch threads) of each model's worker
    max_restarts: int = Field(default=3, ge=0)  # a worker lost mid-model is restarted (and its task retried) this often
    # workers per model, each loading it once and taking the model's tasks one by one; auto: the cluster split by
    # each model's work (weights × documents)
    replicas: Union[Annotated[int, Field(ge=1, le=1024)], Literal["auto"]] = "auto"


class RunSettings(_Strict):
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: DType = "auto"  # auto: bfloat16 on GPU, float32 on CPU
    batch_size: Union[Annotated[int, Field(ge=1)], Literal["auto"]] = "auto"  # auto: rows sized by a token budget, halved on OOM
    token_budget: Optional[int] = Field(default=None, ge=64)  # max padded tokens per batch
    limit: Optional[int] = Field(default=None, ge=1)  # first N documents of each task
    # documents committed together: a run stopped inside a task resumes after its last finished chunk
    chunk_size: int = Field(default=1000, ge=1, le=1_000_000)
    seed: int = Field(default=1234, ge=0, lt=2**32)  # numpy and torch seeds are 32-bit
    num_fewshot: Optional[int] = Field(default=None, ge=0, le=64)  # lm-eval tasks: shots (None: each task's own)
    trust_task_code: bool = False  # lm-eval task folders of the user's own may run their Python (utils.py, classes)
    # lm-eval tasks as chat: the tokenizer's chat template (true, or the name of one of its templates), a system
    # message, the shots as alternating turns (lm-eval's --apply_chat_template, --system_instruction,
    # --fewshot_as_multiturn); part of every lm-eval result's key
    apply_chat_template: Union[bool, str] = False
    system_instruction: Optional[str] = Field(default=None, max_length=100_000)
    fewshot_as_multiturn: bool = False
    # weight-only quantization of every entry without its own; a list of variants (null: none) runs the whole
    # config once per variant, into OUTPUT/<float32|int8|int4> (`harness compare` those folders)
    quantization: Union[Quantization, list[Optional[Quantization]], None] = None
    on_error: Literal["continue", "stop"] = "continue"  # keep going past a failing model, or stop at once
    executor: Literal["local", "ray"] = "local"  # local: one model after another here; ray: workers of a Ray cluster
    ray: RaySettings = Field(default_factory=RaySettings)


class ExperimentConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    suite: Union[list[ModelSpec], LadderRef]
    tasks: list[str] = Field(min_length=1)
    run: RunSettings = Field(default_factory=RunSettings)
    output: Optional[str] = None  # default: results/<name>
    data_roots: list[str] = Field(default_factory=list)  # folders task files may read data from (besides their own)
    # lm-eval tasks' splits from local files: {TASK: {SPLIT: FILE}} (``*``: every lm-eval task), relative to the config
    data: dict[str, dict[str, str]] = Field(default_factory=dict)

    @property
    def output_dir(self) -> Path:
        return Path(self.output or f"results/{self.name}")

    def variants(self) -> list[ExperimentConfig]:
        """One config per quantization variant (``run.quantization`` a list), each into its own subfolder of the
        output; just this config otherwise."""
        q = self.run.quantization
        if not isinstance(q, list):
            return [self]
        names = [v.name if v is not None else (self.run.dtype if self.run.dtype != "auto" else "unquantized")
                 for v in q]
        if len(set(names)) != len(names):
            raise HarnessError(f"run.quantization lists a variant twice: {names}", where="run.quantization")
        return [self.model_copy(update={"run": self.run.model_copy(update={"quantization": v}),
                                        "output": str(self.output_dir / name)}) for v, name in zip(q, names)]


def load_config(path: Path, overrides: Optional[dict[str, Any]] = None) -> ExperimentConfig:
    """Read and validate a config; ``overrides`` are ``run`` settings (or ``output``) from the CLI."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise HarnessError("a config must be a mapping of fields", source=path)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key == "output":
            raw["output"] = value
        elif key == "data":  # --data SPLIT=FILE: every lm-eval task, files relative to the working directory
            given = raw.setdefault("data", {})
            if not isinstance(given, dict):
                raise HarnessError("must be a mapping of task → {split: file}", source=path, where="data")
            given["*"] = {**(given.get("*") or {}), **{k: str(Path(v).resolve()) for k, v in value.items()}}
        else:
            run = raw.setdefault("run", {})
            if not isinstance(run, dict):
                raise HarnessError("must be a mapping", source=path, where="run")
            if key == "ray_address":  # --ray-address: joining a cluster means running on it
                ray = run.setdefault("ray", {})
                if not isinstance(ray, dict):
                    raise HarnessError("must be a mapping", source=path, where="run.ray")
                ray["address"] = value
                run["executor"] = "ray"
            else:
                run[key] = value
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise pydantic_error(exc, path, ExperimentConfig) from None
    q = config.run.quantization
    quantized = [i for i, m in enumerate(config.suite if isinstance(config.suite, list) else []) if m.quantization]
    if (q if not isinstance(q, list) else any(q)) or quantized:
        import importlib.util

        if importlib.util.find_spec("torchao") is None:  # before anything is computed, and said once
            raise HarnessError("quantization needs torchao: pip install torchao (or 'scaling-harness[quant]')",
                               source=path, where=f"suite.{quantized[0]}.quantization" if quantized else "run.quantization")
    suite = config.suite if isinstance(config.suite, list) else []
    for i, m in enumerate(suite):
        if m.adapter and (m.quantization or (q if not isinstance(q, list) else any(q))):
            raise HarnessError("an adapter on quantized weights is not supported: drop quantization for this entry",
                               source=path, where=f"suite.{i}.adapter")
    if any(m.adapter for m in suite):
        import importlib.util

        if importlib.util.find_spec("peft") is None:
            raise HarnessError(PEFT_MISSING, source=path,
                               where=f"suite.{next(i for i, m in enumerate(suite) if m.adapter)}.adapter")
    lm_eval_tasks = {t.partition(":")[2] for t in config.tasks if t.startswith("lm_eval:")}
    if config.data and not lm_eval_tasks:
        raise HarnessError("local splits (--data, data:) are read by lm-eval tasks only, and this config names none "
                           "(tasks: lm_eval:NAME)", source=path, where="data")
    for task in config.data:
        if task != "*" and task not in lm_eval_tasks:
            raise HarnessError(f"names {task!r}, which is not one of this config's lm-eval tasks "
                               f"({', '.join(sorted(lm_eval_tasks))})", source=path, where=f"data.{task}")
    config.data_roots = [str((path.parent / root).resolve()) for root in config.data_roots]
    config.data = {task: {split: str((path.parent / f).resolve()) for split, f in splits.items()}
                   for task, splits in config.data.items()}
    if isinstance(config.suite, list):
        if not config.suite:
            raise HarnessError("the suite is empty", source=path, where="suite")
        try:
            config.suite = expand_checkpoints(config.suite)
        except HarnessError as err:
            err.source = path
            raise
        seen: dict[str, str] = {}  # results folder -> the suite entry's name
        for m in config.suite:
            folder = safe_name(m.name)
            if folder in seen:
                why = (f"share the name {m.name!r}" if seen[folder] == m.name
                       else f"{seen[folder]!r} and {m.name!r} would share the results folder {folder!r}")
                raise HarnessError(f"two suite entries {why}: give one a 'label'", source=path, where="suite")
            seen[folder] = m.name
        for i, m in enumerate(config.suite):
            if problem := m.path_problem():
                raise HarnessError(f"model path {problem}: {m.model}", source=path, where=f"suite.{i}.model")
    return config
