"""The default backend factory: a model's config picks its backend from the registry in ``models.base``."""

from __future__ import annotations

from typing import Any, Optional, Union

from harness.models import causal, seq2seq  # noqa: F401  (each registers its backend)
from harness.models.base import BACKENDS, TransformersBackend
from harness.models.suite import ModelSpec


def architecture(config: Any) -> str:
    """The backend a model's config calls for: ``seq2seq`` for an encoder-decoder model, else ``causal``."""
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"


def spec_architecture(spec: ModelSpec) -> str:
    """A suite entry's backend: its ``arch``, else what the model's config calls for (``causal`` when the config
    cannot be read: the loader then says why the model cannot be loaded)."""
    if spec.arch is not None:
        return spec.arch
    from transformers import AutoConfig

    from harness.files import hub_reachable

    offline = not spec.is_local and not hub_reachable()
    try:
        config = AutoConfig.from_pretrained(spec.model, revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                                            local_files_only=offline)
    except Exception:
        return "causal"
    return architecture(config)


def load_backend(spec: ModelSpec, *, device: str, dtype: str, batch_size: Union[int, str],
                 token_budget: Optional[int]) -> TransformersBackend:
    """The default backend factory: the registered backend for the entry's architecture."""
    cls = BACKENDS[spec_architecture(spec)]
    return cls(spec, device=device, dtype=dtype, batch_size=batch_size, token_budget=token_budget)
