"""Loading a model and its tokenizer by name, as ``from_pretrained`` takes it: a local folder or a Hugging Face
hub id (with its revision). Every failure is one line naming the model; without network a hub model fails in
seconds unless it is in the local cache."""

from __future__ import annotations

import os
from typing import Any, Optional

from harness.errors import HarnessError
from harness.files import digest, hub_reachable
from harness.models.suite import ModelSpec


def load_pretrained(spec: ModelSpec, auto_class: Any, dtype: Any, device_map: Optional[str] = None) -> tuple[Any, Any]:
    """(tokenizer, model) for a suite entry, the model through ``auto_class`` (e.g. ``AutoModelForCausalLM``);
    ``device_map="auto"`` spreads its layers across the visible GPUs (accelerate)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the run shows its own progress
    if problem := spec.path_problem():
        raise HarnessError(f"model path {problem}", source=spec.model, where="suite")
    kwargs: dict[str, Any] = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    if not spec.is_local and not hub_reachable():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(spec.model, "config.json", revision=spec.revision), str):
            raise HarnessError("not in the local Hugging Face cache, and the hub cannot be reached (no network, or "
                               "HF_HUB_OFFLINE is set): download it on a machine with network, or give a local folder",
                               source=spec.model)
        kwargs["local_files_only"] = True  # cached: load it without trying the network
    try:
        _check_architecture(spec, auto_class, kwargs)
        tokenizer = AutoTokenizer.from_pretrained(spec.tokenizer or spec.model, **kwargs)
        model = auto_class.from_pretrained(spec.model, dtype=dtype, **({"device_map": device_map} if device_map else {}),
                                           **kwargs)
    except HarnessError:
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ... ; all mean "cannot load"
        reason = " ".join(str(exc).split())  # the whole message on one line: some end their first line with ':'
        reason = reason if len(reason) <= 400 else reason[:400] + " ..."
        raise HarnessError(f"could not load model: {type(exc).__name__}: {reason}", source=spec.model) from None
    return tokenizer, model


def _check_architecture(spec: ModelSpec, auto_class: Any, kwargs: dict[str, Any]) -> None:
    """Refuse an encoder-decoder model (T5, BART) for a decoder-only class: ``AutoModelForCausalLM`` would load a
    BART folder as its decoder alone and score it without the encoder, silently."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if auto_class is not AutoModelForCausalLM:
        return
    config = AutoConfig.from_pretrained(spec.model, **kwargs)
    if getattr(config, "is_encoder_decoder", False):
        raise HarnessError(f"an encoder-decoder model ({config.model_type}): the causal backend would score its "
                           "decoder without the encoder; load it with Seq2SeqBackend (runs choose it by themselves, "
                           "or set arch: seq2seq)", source=spec.model)


WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")


def hub_weights_hash(spec: ModelSpec) -> str:
    """A hub model's weights, identified by the file hashes the hub reports (each weight file's LFS sha256) when
    it can be reached, else by the blobs of the local cache (named by those same hashes), else by id and revision.
    Two revisions that serve the same files get the same hash (Pythia's step branches did)."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    fallback = digest(f"{spec.model}@{spec.revision or 'main'}".encode())
    files: list[tuple[str, str]] = []
    try:
        if hub_reachable():
            info = HfApi().model_info(spec.model, revision=spec.revision, files_metadata=True)
            files = [(s.rfilename, s.lfs.sha256 if s.lfs else str(s.blob_id)) for s in info.siblings or []
                     if s.rfilename.endswith(WEIGHT_FILES)]
        else:
            for name in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                         "pytorch_model.bin.index.json"):
                cached = try_to_load_from_cache(spec.model, name, revision=spec.revision)
                if isinstance(cached, str):
                    files.append((name, os.path.basename(os.path.realpath(cached))))  # the blob: its content hash
    except Exception:  # no such repo or revision, a broken cache: the loader reports it
        return fallback
    return digest(sorted(files)) if files else fallback


def max_length(config: Any, tokenizer: Any) -> int:
    """The longest input the model takes: from its config, else the tokenizer's limit, else 2048."""
    for attr in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    tml = getattr(tokenizer, "model_max_length", None)
    return tml if isinstance(tml, int) and 0 < tml < 1_000_000 else 2048
