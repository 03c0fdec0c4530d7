"""Attention to a prefix every row shares, without copying its keys and values into every row.

A task's few-shot block is computed once (its per-layer keys and values, one row). Scoring the documents on top of
it by a key/value cache repeats that block in every row of every layer: memory traffic as large as the forward
pass itself. Here each layer attends in two parts: all rows' queries as one long sequence against the block's
single copy (no mask: every token sees the whole block), and each row's queries against its own keys (the packed
block mask); the two softmaxes are merged by their log-sum-exps. The kernels are torch's fused attention ops
that also return the log-sum-exp (flash on CPU and for 16-bit CUDA, memory-efficient for float32 CUDA).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

import torch

NAME = "harness_shared_prefix"
KWARG = "harness_prefix"  # the forward keyword that carries each layer's (keys, values) of the prefix


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: Optional[torch.Tensor],
           scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention output (batch, heads, queries, dim) and its log-sum-exp (batch, heads, queries), float32."""
    ops = torch.ops.aten
    if query.device.type == "cpu":
        out, lse = ops._scaled_dot_product_flash_attention_for_cpu(query, key, value, 0.0, False, attn_mask=mask,
                                                                   scale=scale)[:2]
    elif mask is None and query.dtype in (torch.float16, torch.bfloat16) and query.shape[-1] <= 256:
        out, lse = ops._scaled_dot_product_flash_attention(query, key, value, 0.0, False, False, scale=scale)[:2]
    else:
        if mask is not None:  # as SDPA hands it to this kernel: rows padded to 16 elements, broadcast to every head
            n = mask.shape[-1]
            mask = torch.nn.functional.pad(mask, (0, -n % 16))[..., :n].expand(*query.shape[:3], n)
        out, lse = ops._scaled_dot_product_efficient_attention(query, key, value, mask, True, 0.0, False,
                                                               scale=scale)[:2]
    return out, lse[..., : query.shape[2]].float()


def shared_prefix_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: Optional[torch.Tensor], scaling: Optional[float] = None,
                            dropout: float = 0.0, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """An attention function of transformers' interface: ``key``/``value`` are the rows' own, the prefix's come
    in ``kwargs[KWARG]`` (one row, indexed by the module's layer)."""
    unsupported = [k for k in ("softcap", "s_aux", "position_bias") if kwargs.get(k) is not None]
    if unsupported:  # soft-capped logits (Gemma-2), attention sinks (gpt-oss), additive position biases
        raise NotImplementedError(f"attention with {', '.join(unsupported)}")  # the probe then repeats the cache
    prefix_k, prefix_v = kwargs[KWARG][module.layer_idx]
    b, h, w, d = query.shape
    h_kv = key.shape[1]
    scale = scaling if scaling is not None else d ** -0.5
    # every row's queries as one sequence; the heads sharing a key/value head (grouped-query) folded in with them
    flat = query.transpose(0, 1).reshape(1, h_kv, (h // h_kv) * b * w, d)
    out_p, lse_p = attend(flat, prefix_k, prefix_v, None, scale)
    out_p, lse_p = out_p.reshape(h, b, w, d).transpose(0, 1), lse_p.reshape(h, b, w).transpose(0, 1)
    if h_kv != h:  # the own keys are few: repeat them for the grouped heads
        key, value = key.repeat_interleave(h // h_kv, 1), value.repeat_interleave(h // h_kv, 1)
    out_o, lse_o = attend(query, key, value, own_mask(attention_mask, query, key), scale)
    weight = torch.sigmoid(lse_p - lse_o)[..., None]  # the prefix's share of the merged softmax
    out = torch.lerp(out_o.to(query.dtype), out_p.to(query.dtype), weight.to(query.dtype))
    return out.transpose(1, 2).contiguous(), None


def own_mask(mask: Optional[torch.Tensor], query: torch.Tensor, key: torch.Tensor) -> Optional[torch.Tensor]:
    """The rows' own part's additive mask in the query's dtype. Scoring passes one; in generation transformers
    builds a boolean one (left padding), whose blocked keys get the dtype's lowest value, so that a padding query
    with no key of its own gets a log-sum-exp near that value and takes the prefix's attention alone (an all -inf
    row would come back from the kernel with a log-sum-exp of 0). No mask for several queries (a prefill without
    padding): causal, aligned to the last key."""
    if mask is None:
        n_q, n_k = query.shape[2], key.shape[2]
        if n_q == 1:
            return None
        mask = torch.ones(n_q, n_k, dtype=torch.bool, device=query.device).tril(n_k - n_q)[None, None]
    if mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=query.dtype, device=query.device).masked_fill(~mask, torch.finfo(query.dtype).min)
    return mask


def register() -> None:
    """Make the attention function known to transformers (once; idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, shared_prefix_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # masks are given 4-D and used as they are; a fallback only


@contextmanager
def attention_to_prefix(model: Any) -> Iterator[None]:
    """The model's attention is ``shared_prefix_attention`` inside the block, its own again after."""
    register()
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before

