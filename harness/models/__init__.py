"""Model stage: the backend protocol, the HF transformers backend, suite metadata."""

from harness.models.backend import Backend, GenerationRequest, LogLikelihood
from harness.models.suite import ModelSpec, count_parameters

__all__ = ["Backend", "GenerationRequest", "LogLikelihood", "ModelSpec", "count_parameters"]
