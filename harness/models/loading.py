"""The default backend factory: a model's config picks its backend from the registry in ``models.base``."""

from __future__ import annotations

from typing import Optional, Union

from harness.models import causal, seq2seq  # noqa: F401  (each registers its backend)
from harness.models.base import BACKENDS, TransformersBackend
from harness.models.suite import ModelSpec


def is_encoder_decoder(spec: ModelSpec) -> bool:
    """From ``arch`` in the suite entry, else the model's config."""
    if spec.arch is not None:
        return spec.arch == "seq2seq"
    from transformers import AutoConfig

    from harness.files import hub_reachable

    offline = not spec.is_local and not hub_reachable()
    try:
        config = AutoConfig.from_pretrained(spec.model, revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                                            local_files_only=offline)
    except Exception:  # the loader reports why the model cannot be loaded
        return False
    return bool(getattr(config, "is_encoder_decoder", False))


def load_backend(spec: ModelSpec, *, device: str, dtype: str, batch_size: Union[int, str],
                 token_budget: Optional[int]) -> TransformersBackend:
    """The default backend factory: the registered backend for the model's architecture (encoder-decoder models
    ``seq2seq``, the rest ``causal``)."""
    cls = BACKENDS["seq2seq" if is_encoder_decoder(spec) else "causal"]
    return cls(spec, device=device, dtype=dtype, batch_size=batch_size, token_budget=token_budget)
