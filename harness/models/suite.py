"""Model specs and the scale metadata of a suite: parameter counts, tokens, FLOPs, a weights hash."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, NamedTuple, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import NotRequired, TypedDict

from harness.errors import HarnessError
from harness.files import atomic_write, digest, file_sha256

METADATA_FILE = "harness_meta.json"  # written by `harness ladder build`; read for tokens/FLOPs/seed
DType = Literal["auto", "float32", "float16", "bfloat16"]
_UNITS = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)([kmbt])(\d*)(?![a-z])", re.IGNORECASE)


def parse_size(name: str) -> Optional[float]:
    """Parameters from a model name: ``pythia-1.4b`` → 1.4e9, ``bloom-1b1`` → 1.1e9, ``70m`` → 7e7.
    The first size-like token of the last path component wins; None when there is none."""
    m = _SIZE.search(name.rstrip("/").split("/")[-1])
    if m is None:
        return None
    number = m.group(1) + ("." + m.group(3) if m.group(3) and "." not in m.group(1) else "")
    return float(number) * _UNITS[m.group(2).lower()]


def infer_family(model: str, model_type: str = "") -> str:
    """The family of a suite entry that names none: the model's name without its size
    (``EleutherAI/pythia-1.4b-deduped`` → ``pythia-deduped``, ``Qwen1.5-0.5B-Chat`` → ``Qwen1.5-Chat``), else its
    config's model type (``llama``), else "" (no family)."""
    base = model.rstrip("/").split("/")[-1]
    m = _SIZE.search(base)
    stem = re.sub(r"([-_.])[-_.]+", r"\1", base[:m.start()] + "-" + base[m.end():]).strip("-_.") if m else ""
    return stem or model_type


class Quantization(BaseModel):
    """Weight-only quantization of a suite entry (or of every entry: ``run.quantization``); see ``quantize``."""

    model_config = ConfigDict(extra="forbid")
    bits: Literal[4, 8]
    method: Literal["torchao"] = "torchao"  # torchao's integer weight-only kernels run on CPU and GPU
    group_size: Optional[int] = Field(default=None, ge=8, le=4096)  # None: one scale per output channel

    @property
    def name(self) -> str:
        return f"int{self.bits}"


class ModelSpec(BaseModel):
    """One suite entry, named as ``from_pretrained`` takes it: a hub id or a local folder."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: str
    revision: Optional[str] = None
    dtype: Optional[DType] = None  # None: the run's dtype
    label: Optional[str] = None  # name in results; default derived from model and revision
    family: Optional[str] = Field(default=None, min_length=1, max_length=100)  # models of one family share a curve
    tokenizer: Optional[str] = None
    tokens: Optional[float] = Field(default=None, ge=0, allow_inf_nan=False)  # training tokens, if known
    flops: Optional[float] = Field(default=None, ge=0, allow_inf_nan=False)  # training FLOPs; default 6*N*D when tokens known
    max_length: Optional[int] = Field(default=None, ge=8)
    trust_remote_code: bool = False
    arch: Optional[Literal["causal", "seq2seq"]] = None  # None: from the model's config (encoder-decoder or not)
    # checkpoints of one run: `revisions` expands into one entry per revision (its step read from a name such as
    # step143000); `step` for a local checkpoint folder; tokens = step × tokens_per_step unless `tokens` is given
    revisions: Optional[list[str]] = Field(default=None, min_length=1, max_length=1000)
    step: Optional[int] = Field(default=None, ge=0)
    tokens_per_step: Optional[float] = Field(default=None, gt=0, allow_inf_nan=False)
    quantization: Optional[Quantization] = None  # None: the run's (none by default)
    # a PEFT adapter (LoRA, …) on this base: a local folder or a hub id; entries on one base share its weights
    adapter: Optional[str] = Field(default=None, min_length=1, max_length=1000)
    # GPUs this model needs (a fraction shares one; N > 1 spreads it across N with a device map); None: sized from
    # its weights by the Ray executor, one GPU locally
    gpus: Optional[float] = Field(default=None, gt=0, le=64, allow_inf_nan=False)

    @field_validator("gpus")
    @classmethod
    def _whole_gpus(cls, value: Optional[float]) -> Optional[float]:
        if value is not None and value > 1 and value != int(value):
            raise ValueError("a model on more than one GPU takes a whole number of them")
        return value

    @property
    def is_local(self) -> bool:
        return self.model.startswith((".", "/", "~")) or Path(self.model).expanduser().is_dir()

    @property
    def path(self) -> Path:
        return Path(self.model).expanduser().resolve()

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        base = self.path.name if self.is_local else self.model.replace("/", "__")
        base += f"@{self.revision}" if self.revision else ""
        if self.adapter:
            folder = Path(self.adapter).expanduser()
            base += "+" + (folder.resolve().name if folder.is_dir() else self.adapter.replace("/", "__"))
        return base

    def path_problem(self) -> Optional[str]:
        """Why a local model (or adapter) folder cannot be used, or None (hub ids are checked when loaded)."""
        adapter = Path(self.adapter).expanduser() if self.adapter else None
        if adapter is not None and adapter.is_dir() and not (adapter / "adapter_config.json").is_file():
            return f"adapter folder {self.adapter} has no adapter_config.json (not a folder PEFT saved)"
        if self.adapter and self.adapter.startswith((".", "/", "~")) and not adapter.is_dir():  # type: ignore[union-attr]
            return f"adapter folder {self.adapter} does not exist"
        if not self.is_local:
            return None
        if self.path.is_dir():
            return None if (self.path / "config.json").is_file() else "has no config.json (not a folder written by save_pretrained)"
        return "is a file, not a model folder" if self.path.exists() else "does not exist"

    def local_metadata(self) -> dict[str, Any]:
        """What a ladder build recorded next to the weights (empty for hub models)."""
        meta = self.path / METADATA_FILE if self.is_local else None
        return json.loads(meta.read_text()) if meta is not None and meta.is_file() else {}


def expand_checkpoints(suite: list[ModelSpec]) -> list[ModelSpec]:
    """One entry per checkpoint: ``revisions`` expanded (the step from ``step<N>`` in each name), and tokens from
    ``step × tokens_per_step`` where ``tokens`` is not given."""
    out = []
    for i, spec in enumerate(suite):
        if spec.revisions is not None and spec.revision is not None:
            raise HarnessError("give revision or revisions, not both", where=f"suite.{i}")
        revs: list[Optional[str]] = list(spec.revisions) if spec.revisions is not None else [spec.revision]
        for rev in revs:
            step = spec.step
            if spec.revisions is not None:
                found = re.search(r"step[_-]?(\d+)", rev or "")
                step = int(found.group(1)) if found else None
                if step is None and spec.tokens_per_step is not None:
                    raise HarnessError(f"revision {rev!r} names no step (step<N>); list it as its own entry with "
                                       "step", where=f"suite.{i}.revisions")
            tokens = spec.tokens
            if tokens is None and step is not None and spec.tokens_per_step is not None:
                tokens = step * spec.tokens_per_step
            out.append(spec.model_copy(update={"revision": rev, "revisions": None, "step": step, "tokens": tokens}))
    return out


class ParamCounts(NamedTuple):
    """A loaded model's parameters: all of them, without embeddings (Kaplan et al. 2020), and those one token
    uses (a mixture of experts runs ``k`` of its ``E`` experts per token; a dense model uses all)."""

    total: int
    nonembedding: int
    active: int


EXPERTS_PER_TOKEN = ("num_experts_per_tok", "moe_topk", "num_selected_experts")
EXPERTS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")


def count_parameters(model: Any) -> ParamCounts:
    """Total, non-embedding and active parameters. Non-embedding excludes token and position embeddings and an
    untied output embedding. Active: every parameter except the share ``(E - k) / E`` of the routed experts'
    (parameters under a module named ``experts``; shared experts and routers always run)."""
    import torch

    total = sum(p.numel() for p in model.parameters())
    seen: set[int] = set()
    embed = 0
    modules = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    out = model.get_output_embeddings()
    if out is not None:
        modules.append(out)
    for m in modules:
        for p in m.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                embed += p.numel()
    return ParamCounts(total, total - embed, total - idle_expert_parameters(model))


def idle_expert_parameters(model: Any) -> int:
    """Parameters of the routed experts a token does not use: ``(E - k) / E`` of those under ``experts``."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    k = next((v for a in EXPERTS_PER_TOKEN if isinstance(v := getattr(config, a, None), int) and v > 0), 0)
    n = next((v for a in EXPERTS if isinstance(v := getattr(config, a, None), int) and v > 0), 0)
    if not k or not n or k >= n:
        return 0
    experts = sum(p.numel() for name, p in model.named_parameters() if "experts" in name.split("."))
    return round(experts * (n - k) / n)


RECURRENT = re.compile(r"mamba|ssm|rwkv|xlstm|recurrent|deltanet", re.IGNORECASE)


def recurrent_layers(model: Any) -> list[str]:
    """Class names of a model's layers that carry a state along the sequence (Mamba mixers, RWKV blocks, …): the
    modules so named that hold parameters of their own, norms aside."""
    return sorted({name for m in model.modules() if RECURRENT.search(name := type(m).__name__)
                   and "norm" not in name.lower() and next(m.parameters(recurse=False), None) is not None})


def weights_hash(spec: ModelSpec, cache_dir: Path) -> str:
    """sha256 over a local folder's files (cached by size and mtime); for hub models see
    ``hub.hub_weights_hash`` (this falls back to the id and revision)."""
    if not spec.is_local:
        return digest(f"{spec.model}@{spec.revision or 'main'}".encode())
    return folder_hash(spec.path, cache_dir)


def folder_hash(folder: Path, cache_dir: Path) -> str:
    """sha256 over a folder's files (each file's hash cached by its size, times and inode)."""
    cache_file = cache_dir / "weights-hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    parts = []
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != METADATA_FILE):
        st = f.stat()
        key = f"{f}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"  # ctime: no one can set it back
        if key not in cache:
            cache[key] = file_sha256(f)
        parts.append(f"{f.relative_to(folder)}:{cache[key]}".encode())
    try:
        atomic_write(cache_file, json.dumps(cache).encode())
    except OSError:
        pass  # the cache is an optimisation only
    return digest(b"".join(parts))


class ModelMeta(TypedDict):
    """A model's scale metadata as recorded in every result summary and the manifest."""

    label: str
    model: str
    family: NotRequired[Optional[str]]  # the suite entry's family, else a ladder's name, else ``infer_family``
    model_type: NotRequired[str]  # the model config's type (``llama``, ``t5``)
    revision: Optional[str]
    dtype: str
    arch: str  # causal | seq2seq
    quantization: Optional[str]  # int8 | int4 | None
    adapter: NotRequired[Optional[str]]  # the PEFT adapter on the base (a folder or hub id), if any
    adapter_hash: NotRequired[str]  # its files' hashes (see ``adapters.adapter_hash``)
    weight_bytes: int  # what the loaded weights take (after quantization)
    step: Optional[int]  # a checkpoint's training step, when known
    params: int
    nonembedding_params: int
    active_params: NotRequired[int]  # parameters one token uses (a mixture of experts: k of its E experts)
    tokens: Optional[float]
    flops: Optional[float]
    ladder: Optional[dict[str, Any]]


def adapter_step(spec: ModelSpec) -> Optional[int]:
    """A fine-tuning run's step of an adapter checkpoint: ``global_step`` in its ``trainer_state.json`` (written
    by transformers' Trainer), else ``checkpoint-N`` in its folder name."""
    if spec.adapter is None:
        return None
    folder = Path(spec.adapter).expanduser()
    try:
        step = json.loads((folder / "trainer_state.json").read_text()).get("global_step")
        if isinstance(step, int) and step >= 0:
            return step
    except (OSError, ValueError, AttributeError):
        pass
    found = re.search(r"checkpoint[-_](\d+)$", folder.name)
    return int(found.group(1)) if found else None


def model_metadata(spec: ModelSpec, counts: ParamCounts, dtype: str, arch: str = "causal",
                   weight_bytes: int = 0, model_type: str = "", adapter_hash: str = "") -> ModelMeta:
    """Scale metadata of a loaded model: parameter counts, its family, and tokens/FLOPs from the spec or a ladder
    build (training FLOPs 6·N·D with N the active parameters: all of a dense model's)."""
    total, nonemb, active = counts
    local = spec.local_metadata()
    family = spec.family or local.get("ladder") or infer_family(spec.model, model_type) or None
    tokens = spec.tokens if spec.tokens is not None else local.get("tokens")
    flops = spec.flops if spec.flops is not None else (6.0 * active * tokens if tokens else None)
    step = spec.step if spec.step is not None else local.get("step", adapter_step(spec))
    return ModelMeta(label=spec.name, model=spec.model, family=family, model_type=model_type, revision=spec.revision,
                     dtype=dtype, arch=arch, quantization=spec.quantization.name if spec.quantization else None,
                     **({"adapter": spec.adapter, "adapter_hash": adapter_hash} if spec.adapter else {}),  # type: ignore[typeddict-item]
                     weight_bytes=weight_bytes, step=step, params=total, nonembedding_params=nonemb,
                     active_params=active, tokens=tokens,
                     flops=flops,
                     ladder={k: local[k] for k in ("ladder", "size", "seed", "recipe_hash") if k in local} or None)


def refresh_metadata(spec: ModelSpec, meta: ModelMeta) -> ModelMeta:
    """A stored result's metadata with what the spec says now (tokens, FLOPs, step, label): none of it changes a
    computation, so a reused result must not keep values the config has since corrected."""
    counts = ParamCounts(meta["params"], meta["nonembedding_params"], meta.get("active_params", meta["params"]))
    fresh = model_metadata(spec, counts, meta["dtype"], meta.get("arch", "causal"), meta.get("weight_bytes", 0),
                           meta.get("model_type", ""))
    return ModelMeta(**{**meta, **{k: fresh.get(k) for k in ("label", "family", "step", "tokens", "flops", "ladder")}})  # type: ignore[typeddict-item]
