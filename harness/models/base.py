"""What every Hugging Face backend shares, and the registry that picks one by the model's config: loading (with
quantization and adapters), tokenization, token-budget batching with out-of-memory halving, scoring token pairs
in batches, parameter counts and release. The causal and encoder-decoder backends say how a batch is scored and
how text is generated (lm-eval's ``TemplateLM`` plays this part there)."""

from __future__ import annotations

import gc
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Optional, TypeVar, Union

import torch
import torch.nn.functional as F

from harness.models import adapters
from harness.models.backend import GenerationRequest, LogLikelihood
from harness.models.encoding import encode_pairs, encode_texts
from harness.models.hub import load_pretrained, max_length
from harness.models.suite import ModelSpec, ParamCounts, count_parameters

T = TypeVar("T")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CPU_TOKEN_BUDGET = 16_384
GPU_TOKEN_BUDGET = 262_144


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


def _freeze_imports() -> None:
    """Before the first model loads: what is loaded by then (torch, transformers: ~400,000 objects) lives as long
    as the process, so it is moved out of the cycle collector's reach and every later collection skips it (the
    full one when a model is released took ~0.2 s). Once per process: a model's own objects stay collectable."""
    if not gc.get_freeze_count():
        gc.freeze()


class TransformersBackend(ABC):
    """A model loaded once through a transformers auto class; call :meth:`close` to release it before the next.
    Subclasses set ``arch`` and ``auto_class`` and implement the scoring of one batch (``_item``, ``_cost``,
    ``_score_batch``), ``loglikelihood``, ``loglikelihood_rolling``, ``generate`` and ``describe``."""

    arch: str  # "causal" or "seq2seq": the registry key, recorded with every result
    auto_class: ClassVar[str]  # the transformers class that loads it (AutoModelForCausalLM, ...)
    packing = prefix_reuse = shared_attention = False  # the causal backend's faster paths, where they are exact
    recurrent: list[str] = []  # layer classes that carry a state along the sequence

    def __init__(self, spec: ModelSpec, *, device: str = "cpu", dtype: str = "float32",
                 batch_size: Union[int, str] = "auto", token_budget: Optional[int] = None):
        """Load ``spec`` on ``device`` in ``dtype`` (both resolved: see ``models.backend.resolve_*``)."""
        import transformers

        self._load(spec, getattr(transformers, self.auto_class), device, dtype, batch_size, token_budget)
        self.stop_cache: dict[tuple[int, tuple[str, ...]], bool] = {}  # tokens that may end a stop sequence

    def _load(self, spec: ModelSpec, auto_class: Any, device: str, dtype: str, batch_size: Union[int, str],
              token_budget: Optional[int]) -> None:
        """Model and tokenizer on ``device``; parameters counted, then the weights quantized if asked; the
        special tokens, the model's length and the batching budgets."""
        from harness.models.quantize import quantize, weight_bytes

        _freeze_imports()
        self.spec, self.device, self.dtype = spec, device, dtype
        # a model given several GPUs (`gpus: N`) is spread across the visible ones; inputs go to the first
        spread = device == "cuda" and (spec.gpus or 1) > 1 and torch.cuda.device_count() > 1
        self._base_key = adapters.base_key(spec, device, dtype) if spec.adapter else None
        kept = adapters.take_base(self._base_key)  # the base an adapter entry before left (any other: released)
        self.base_reused = kept is not None
        if kept is None:
            tokenizer, model = load_pretrained(spec, auto_class, DTYPES[dtype], "auto" if spread else None)
            kept = tokenizer, (model if spread else model.to(self.device)).eval()
        self.tokenizer, model = kept
        self._counts = count_parameters(model)  # the base's; before quantization: its unquantized size
        if spec.quantization is not None:
            quantize(model, spec.quantization)
        # an adapter is scored through the base's own forward, into which PEFT injected its layers
        self._peft = adapters.attach(model, spec) if spec.adapter else None
        self.model: Any = model
        self.weight_bytes = weight_bytes(self.model)
        self.model_type = str(getattr(self.model.config, "model_type", "") or "")
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        self.bos_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.max_length = spec.max_length or max_length(self.model.config, tok)
        self.max_rows = batch_size if isinstance(batch_size, int) else 1 << 30
        self.token_budget = token_budget or (GPU_TOKEN_BUDGET if self.device.startswith("cuda") else CPU_TOKEN_BUDGET)

    def logits_at(self, at: Any, **inputs: Any) -> torch.Tensor:
        """Logits at the positions ``at`` (index tensors into batch × sequence) only."""
        return self.model(**inputs).logits[at]

    def unrepresentable(self, texts: Sequence[str]) -> list[bool]:
        tok = self.tokenizer
        bad = {tok.unk_token_id}
        if tok.pad_token_id not in (tok.eos_token_id, tok.bos_token_id):  # a pad token that is also EOS can be text
            bad.add(tok.pad_token_id)
        bad.discard(None)
        unique = list(dict.fromkeys(texts))
        if not bad or not unique:
            return [False] * len(texts)
        flagged = {t for t, ids in zip(unique, encode_texts(tok, unique, special=False)) if bad & set(ids)}
        return [t in flagged for t in texts]

    def parameter_counts(self) -> ParamCounts:
        return self._counts

    @abstractmethod
    def describe(self) -> str:
        """How this model is being scored, for the run log."""

    @abstractmethod
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[LogLikelihood]:
        """Log-prob of each ``continuation`` given its ``context`` (see ``models.backend.Backend``)."""

    @abstractmethod
    def loglikelihood_rolling(self, texts: Sequence[str], window: Optional[int] = None,
                              stride: Optional[int] = None) -> list[LogLikelihood]:
        """Log-prob of each whole text, scored in windows."""

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Continuation of each context, cut at its first stop sequence."""

    def close(self) -> None:
        """Release the weights (and GPU memory) before loading the next model; an adapter's base is kept for
        the next entry on the same base (see ``adapters``)."""
        if self._peft is not None and self._base_key is not None:
            adapters.keep_base(self._base_key, self.tokenizer, adapters.detach(self._peft))
        self._peft = None
        del self.model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ tokenization

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, text: str) -> list[int]:
        """As the tokenizer encodes a prompt: special tokens only where the tokenizer adds them."""
        return self.tokenizer(text)["input_ids"]

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Split tokens at the context boundary of the joint encoding (lm-eval's convention)."""
        return self.encode_pairs([(context, continuation)])[0]

    def encode_pairs(self, requests: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """``encode_pair`` for many requests at once (see ``encoding.encode_pairs``)."""
        return encode_pairs(self.tokenizer, requests, self.bos_id)

    # ------------------------------------------------------------------ batching

    def batches(self, lengths: Mapping[int, int] | Sequence[int], order: Sequence[int]) -> Iterator[list[int]]:
        """Consecutive groups of ``order`` (longest first) within the row and token budgets."""
        batch: list[int] = []
        for i in order:
            longest = lengths[batch[0]] if batch else lengths[i]
            if batch and (len(batch) >= self.max_rows or (len(batch) + 1) * longest > self.token_budget):
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def run_batched(self, fn: Callable[[list[T]], list[Any]], batch: list[T]) -> list[Any]:
        """Run a batch; on out-of-memory halve the token budget and retry the halves."""
        try:
            return fn(batch)
        except Exception as exc:
            if not is_oom(exc) or len(batch) == 1:
                raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.token_budget = max(1, self.token_budget // 2)
        self.max_rows = max(1, min(self.max_rows, len(batch) // 2))
        mid = len(batch) // 2
        return self.run_batched(fn, batch[:mid]) + self.run_batched(fn, batch[mid:])

    # ------------------------------------------------------------------ scoring token pairs

    def score_tokens(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[LogLikelihood]:
        """Log-likelihood of token continuations; identical pairs are computed once."""
        unique: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
        index = [unique.setdefault((tuple(c), tuple(x)), len(unique)) for c, x in pairs]
        items = [self._item(ctx, cont) for ctx, cont in unique]
        lengths = [self._cost(item) for item in items]
        order = sorted(range(len(items)), key=lambda i: -lengths[i])
        out: list[Optional[LogLikelihood]] = [None] * len(items)
        for batch in self.batches(lengths, order):
            for i, res in zip(batch, self.run_batched(lambda b: self._score_batch([items[i] for i in b]), batch)):
                out[i] = res
        return [out[i] for i in index]  # type: ignore[misc]

    @abstractmethod
    def _item(self, ctx: tuple[int, ...], cont: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """What ``_score_batch`` takes for one pair (cut to the model's length)."""

    @abstractmethod
    def _cost(self, item: tuple[tuple[int, ...], tuple[int, ...]]) -> int:
        """An item's tokens in a batch (for the token budget)."""

    @abstractmethod
    def _score_batch(self, items: Sequence[tuple[tuple[int, ...], tuple[int, ...]]]) -> list[LogLikelihood]:
        """The log-likelihoods of one batch of items."""

    def _gather(self, logits: torch.Tensor, targets: list[int], sizes: list[int]) -> list[LogLikelihood]:
        """Float32 log-softmax at the scored positions; sum each continuation's target log-probs."""
        logp = F.log_softmax(logits.float(), dim=-1)
        tgt = torch.tensor(targets, device=self.device)
        token_lp = logp.gather(-1, tgt[:, None])[:, 0].double().cpu()
        greedy = (logp.argmax(-1) == tgt).cpu()
        out, start = [], 0
        for n in sizes:
            steps = tuple(bool(g) for g in greedy[start:start + n])
            out.append(LogLikelihood(float(token_lp[start:start + n].sum()), all(steps), n, steps))
            start += n
        return out



BACKENDS: dict[str, type[TransformersBackend]] = {}


def register_backend(cls: type[TransformersBackend]) -> type[TransformersBackend]:
    """Class decorator: the backend for models of ``cls.arch``."""
    BACKENDS[cls.arch] = cls
    return cls
