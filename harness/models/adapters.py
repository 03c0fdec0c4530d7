"""PEFT adapters (LoRA and the other PEFT methods) as suite entries: ``{model: BASE, adapter: PATH_OR_ID}``.

The adapter is attached to the base with PEFT and scored through the base model's own forward (PEFT injects its
layers into it), so every engine path works as for the base. Consecutive entries on one base share its weights:
when an adapter's backend closes, its adapter is removed (``unload``) and the clean base is kept for the next
entry on the same base (one kept at most; anything else loaded releases it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from harness.errors import HarnessError
from harness.files import digest
from harness.models.suite import ModelSpec, folder_hash

PEFT_MISSING = "adapters need PEFT: pip install peft (or 'scaling-harness[adapters]')"
_KEPT: dict[str, tuple[Any, Any]] = {}  # base key -> (tokenizer, clean base model): at most one entry


def require_peft() -> Any:
    try:
        import peft
    except ImportError:
        raise HarnessError(PEFT_MISSING, where="suite.adapter") from None
    return peft


def base_key(spec: ModelSpec, device: str, dtype: str) -> str:
    """What makes two entries' bases the same loaded weights."""
    return digest([spec.model, spec.revision, spec.tokenizer, spec.trust_remote_code, device, dtype])


def take_base(key: Optional[str]) -> Optional[tuple[Any, Any]]:
    """The kept base for ``key`` (taken out of the keep), or None; a kept base of another key is released."""
    kept = _KEPT.pop(key, None) if key else None
    release()
    return kept


def keep_base(key: str, tokenizer: Any, model: Any) -> None:
    release()
    _KEPT[key] = (tokenizer, model)


def release() -> None:
    """Drop the kept base (before another model is loaded, so two never share the memory)."""
    _KEPT.clear()


def attach(model: Any, spec: ModelSpec) -> Any:
    """``model`` with the entry's adapter attached (a PeftModel, in eval mode); one line when it cannot be."""
    peft = require_peft()
    try:
        return peft.PeftModel.from_pretrained(model, spec.adapter, is_trainable=False).eval()
    except Exception as exc:  # PEFT raises ValueError, OSError, KeyError, RuntimeError for a bad adapter
        reason = " ".join(str(exc).split())[:400]
        raise HarnessError(f"could not attach adapter: {type(exc).__name__}: {reason}", source=spec.adapter,
                           where="suite.adapter") from None


def detach(peft_model: Any) -> Any:
    """The base model with the adapter's layers removed (its own weights, unmerged)."""
    return peft_model.unload()


def adapter_hash(spec: ModelSpec, cache_dir: Path) -> str:
    """The adapter's identity: its files' hashes (a local folder), else its hub id."""
    if spec.adapter is None:
        return ""
    folder = Path(spec.adapter).expanduser()
    return folder_hash(folder.resolve(), cache_dir) if folder.is_dir() else digest(f"adapter:{spec.adapter}".encode())
