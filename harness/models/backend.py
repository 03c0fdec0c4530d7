"""The backend protocol: what the runner needs from a model. The HF backend implements it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, Sequence


class LogLikelihood(NamedTuple):
    logprob: float  # summed log-prob (nats) of the continuation tokens
    is_greedy: bool  # every continuation token is the argmax given what precedes it
    n_tokens: int


@dataclass(frozen=True)
class GenerationRequest:
    context: str
    until: tuple[str, ...]
    max_new_tokens: int


class Backend(Protocol):
    """A loaded model. Results must not depend on batch size or request order."""

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[LogLikelihood]:
        """Log-prob of each ``continuation`` given its ``context``."""
        ...

    def loglikelihood_rolling(self, texts: Sequence[str], window: int | None, stride: int | None) -> list[LogLikelihood]:
        """Log-prob of each whole text, scored in windows of ``window`` tokens advancing by ``stride``."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Greedy continuation of each context, cut at the first stop sequence."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        ...
