"""The backend protocol: everything the run asks of a loaded model; the HF backend implements it.
Device and dtype are resolved here, once per model, before a backend is built."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Optional, Protocol, Union

from harness.errors import HarnessError
from harness.models.suite import ModelSpec, ParamCounts


class LogLikelihood(NamedTuple):
    logprob: float  # summed log-prob (nats) of the continuation tokens
    is_greedy: bool  # every continuation token is the argmax given what precedes it
    n_tokens: int
    token_greedy: tuple[bool, ...] = ()  # per continuation token: the argmax given the true prefix (teacher forcing)
    truncated: bool = False  # longer than the model's context: the context was cut to its last tokens


@dataclass(frozen=True)
class Sampling:
    """Sampled decoding as Hugging Face's ``generate`` means it (temperature, then top-k, then nucleus top-p).
    ``seed`` starts this request's own random stream: its answer does not depend on the batch it lands in."""

    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    top_p: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class GenerationRequest:
    context: str
    until: tuple[str, ...]
    max_new_tokens: int
    sampling: Optional[Sampling] = None  # None: greedy


class Backend(Protocol):
    """A loaded model. Results must not depend on request order, nor on batch size beyond float rounding."""

    max_length: int  # the longest sequence, in tokens, the model takes
    arch: str  # "causal" (decoder-only) or "seq2seq" (encoder-decoder): recorded with every result
    model_type: str  # the model config's type (``llama``, ``t5``): a family's default when neither spec nor name says
    weight_bytes: int  # what the loaded weights take in memory (after any quantization)

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[LogLikelihood]:
        """Log-prob of each ``continuation`` given its ``context``."""
        ...

    def loglikelihood_rolling(self, texts: Sequence[str], window: Optional[int], stride: Optional[int]
                              ) -> list[LogLikelihood]:
        """Log-prob of each whole text, scored in windows of ``window`` tokens advancing by ``stride``."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Continuation of each context (greedy, or sampled where the request says), cut at the first stop
        sequence."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        ...

    def unrepresentable(self, texts: Sequence[str]) -> list[bool]:
        """For each text: does the tokenizer map part of it to an unknown or padding token (so the model never
        sees what the task says)?"""
        ...

    def parameter_counts(self) -> ParamCounts:
        """Total, non-embedding and active (per token) parameters of the loaded model."""
        ...

    def describe(self) -> str:
        """How this model is being scored, for the run log (e.g. whether choices are packed)."""
        ...

    def close(self) -> None:
        """Release the weights (and accelerator memory) before the next model is loaded."""
        ...


class BackendFactory(Protocol):
    """Builds a loaded backend for one suite entry on a resolved device and dtype."""

    def __call__(self, spec: ModelSpec, *, device: str, dtype: str, batch_size: Union[int, str],
                 token_budget: Optional[int]) -> Backend: ...


def resolve_device(device: str) -> str:
    """``auto`` is CUDA when present, else CPU; anything else must name a device this machine has."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise HarnessError(f"unknown device {device!r} (use auto, cpu, cuda, cuda:N or mps)", where="run.device")
    if kind == "cuda" and not torch.cuda.is_available():
        raise HarnessError(f"device {device!r}: CUDA is not available (no GPU, or a CPU build of PyTorch); "
                           "use auto or cpu", where="run.device")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise HarnessError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s)",
                           where="run.device")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise HarnessError("device 'mps': not available on this machine; use auto or cpu", where="run.device")
    return device


def resolve_dtype(spec: ModelSpec, run_dtype: str, device: str) -> str:
    """The suite entry's dtype, else the run's; ``auto`` is bfloat16 on GPU (float16 where this machine's GPU lacks
    bf16; bfloat16 when the GPUs are elsewhere, on a cluster) and float32 on CPU."""
    dtype = spec.dtype or run_dtype
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        import torch

        return "float16" if torch.cuda.is_available() and not torch.cuda.is_bf16_supported() else "bfloat16"
    return "float32"
