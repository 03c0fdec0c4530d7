"""Model stage: the backend protocol, the HF transformers backend, suite metadata."""

from harness.models.backend import Backend, BackendFactory, GenerationRequest, LogLikelihood
from harness.models.suite import ModelMeta, ModelSpec, count_parameters

__all__ = ["Backend", "BackendFactory", "GenerationRequest", "LogLikelihood", "ModelMeta", "ModelSpec",
           "count_parameters"]
