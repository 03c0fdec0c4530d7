"""Weight-only quantization of a loaded model (int8, int4) through torchao, which runs on CPU and GPU: every linear
layer's weights are stored as integers with a float scale per group, and dequantized as they are used. The output
layer (often tied to the embeddings) stays as it is. Parameters are counted before, so a model's size on the
scaling axis is its unquantized one; the bytes its weights take after are recorded."""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.models.suite import Quantization


def quantize(model: Any, q: Quantization) -> None:
    """Quantize ``model``'s linear layers in place (not its output layer)."""
    try:
        import torch
        from torchao.quantization import IntxWeightOnlyConfig, quantize_
        from torchao.quantization.granularity import PerAxis, PerGroup
    except ImportError:
        raise HarnessError("quantization needs torchao: pip install torchao (or the 'quant' extra)",
                           where="quantization") from None
    head = model.get_output_embeddings()
    weight_dtype = torch.int8 if q.bits == 8 else getattr(torch, "int4")  # noqa: B009 (absent from the stubs)
    granularity = PerAxis(0) if q.group_size is None else PerGroup(q.group_size)
    config = IntxWeightOnlyConfig(weight_dtype=weight_dtype, granularity=granularity)
    for name, module in model.named_modules():
        if (q.group_size and isinstance(module, torch.nn.Linear) and module is not head
                and module.in_features % q.group_size):
            raise HarnessError(f"layer {name} has {module.in_features} inputs, not a multiple of group_size "
                               f"{q.group_size}", where="quantization.group_size")
    targets = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head]
    if not targets:  # GPT-2's Conv1D layers, say: quantizing nothing would record an unquantized model as int4
        raise HarnessError(f"{type(model).__name__} has no nn.Linear layers besides its output layer to quantize",
                           where="quantization")
    quantize_(model, config, filter_fn=lambda m, _: isinstance(m, torch.nn.Linear) and m is not head)


def weight_bytes(model: Any) -> int:
    """Bytes the model's parameters and buffers take, a quantized tensor counted by the tensors it holds."""

    def size(t: Any) -> int:
        if hasattr(t, "__tensor_flatten__"):  # a tensor subclass (torchao): its inner tensors
            names, _ = t.__tensor_flatten__()
            return sum(size(getattr(t, n)) for n in names)
        return int(t.numel() * t.element_size())

    return sum(size(t) for t in [*model.parameters(), *model.buffers()])  # parameters(): tied ones once
