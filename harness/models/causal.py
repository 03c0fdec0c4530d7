"""Decoder-only models: batched continuation log-likelihoods, whole-text log-likelihoods and generation.

Log-likelihoods follow lm-eval's conventions (joint tokenization decides the context/continuation boundary;
trailing context whitespace moves to the continuation) so scores are comparable. Only the scored positions go
through the output layer, and log-softmax runs in float32 whatever the dtype. Where probes show it exact, the
choices of a document are packed behind their shared context and a few-shot block every context starts with is
computed once.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import torch

from harness.models import prefix as prefix_attention
from harness.models.backend import GenerationRequest, LogLikelihood
from harness.models.base import DTYPES, TransformersBackend, register_backend
from harness.models.generation import MIN_SHARED_PREFIX, generate, shared_prefix
from harness.models.suite import ModelSpec, recurrent_layers


@register_backend
class CausalBackend(TransformersBackend):
    """A causal LM loaded once; call :meth:`close` to release it before the next model."""

    arch = "causal"
    auto_class = "AutoModelForCausalLM"

    def __init__(self, spec: ModelSpec, *, device: str = "cpu", dtype: str = "float32",
                 batch_size: Union[int, str] = "auto", token_budget: Optional[int] = None, prefix_reuse: bool = True):
        """``prefix_reuse``: compute a prefix every context of a task shares (few-shot block) once, if the model's
        cache allows it (probed)."""
        super().__init__(spec, device=device, dtype=dtype, batch_size=batch_size, token_budget=token_budget)
        self._head = self._output_head()
        # state-space / recurrent layers carry a state along the sequence: packed rows would leak one choice into
        # the next, and a left-padded batch feeds padding into the state; such models take the exact paths
        self.recurrent = recurrent_layers(self.model)
        self.packing = not self.recurrent and self._packing_works()
        # a custom mask replaces sliding-window masking: pack only sequences inside the window
        self.pack_limit = min(self.max_length, getattr(self.model.config, "sliding_window", None) or self.max_length)
        # transformers >= 5.25 names the KV cache argument `cache` (`past_key_values` goes in 5.40)
        self.cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self._prefix: tuple[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = ((), [])
        # the prefix attended as one shared copy (see models.prefix) where the model allows, else repeated per row
        self.shared_attention = self.prefix_reuse = prefix_reuse and self.packing
        if self.prefix_reuse and not self._prefix_works():
            self.shared_attention, self._prefix = False, ((), [])
            self.prefix_reuse = self._prefix_works()

    def _output_head(self) -> Optional[Callable[..., torch.Tensor]]:
        """Logits at chosen positions only: base model + output layer, if that equals the full forward.

        Models whose logits are post-processed (soft-capping, scaling) fail the probe and use the full forward.
        """
        base, head = self.model.base_model, self.model.get_output_embeddings()
        if base is self.model or head is None:
            return None
        ids = torch.arange(1, 9, device=self.device).remainder(self.model.config.vocab_size)[None]
        with torch.inference_mode():
            full = self.model(input_ids=ids).logits.float()
            split = head(base(input_ids=ids).last_hidden_state).float()
        if not torch.allclose(full, split, atol=1e-4, rtol=1e-4):
            return None
        return lambda at, **inputs: head(base(**inputs).last_hidden_state[at])

    def logits_at(self, at: Any, **inputs: Any) -> torch.Tensor:
        """Logits at the positions ``at`` (index tensors into batch × sequence) only."""
        if self._head is not None:
            return self._head(at, **inputs)
        return super().logits_at(at, **inputs)

    def _packing_works(self) -> bool:
        """Probe: does scoring choices packed behind one shared context (a block attention mask with
        per-segment positions) give the same log-likelihoods as one sequence per choice?"""
        vocab = self.model.config.vocab_size
        ctx = [(7 * i + 3) % vocab for i in range(9)]
        conts = [[(5 * i + k) % vocab for i in range(n)] for k, n in ((1, 3), (2, 1), (3, 4))]
        try:
            packed = self._score_packed_batch([(tuple(ctx), [tuple(c) for c in conts])])[0]
        except Exception:  # a model whose attention does not take a 4-D mask or position ids
            return False
        plain = self._score_batch([(tuple(ctx + c)[:-1], tuple(c)) for c in conts])
        return all(abs(a.logprob - b.logprob) <= self._tolerance * max(1.0, abs(b.logprob)) for a, b in zip(packed, plain))

    def _prefix_works(self) -> bool:
        """Probe: do contexts scored on top of a shared prefix's cache give the log-likelihoods of scoring each
        context whole?"""
        vocab = self.model.config.vocab_size
        shared = tuple((11 * i + 5) % vocab for i in range(MIN_SHARED_PREFIX))
        groups: list[tuple[tuple[int, ...], list[tuple[int, ...]]]] = [((3, 4), [(5, 6), (7,)]), ((8,), [(9, 10, 11)])]
        try:
            packed = self._score_packed_batch(groups, shared)
        except Exception:  # a model whose cache cannot be built, expanded or attended this way (or whose attention
            # does not take transformers' attention functions, or kernels without the log-sum-exp)
            return False
        plain = self._score_batch([(shared + ctx + c[:-1], c) for ctx, conts in groups for c in conts])
        flat = [r for res in packed for r in res]
        return all(abs(a.logprob - b.logprob) <= self._tolerance * max(1.0, abs(b.logprob)) for a, b in zip(flat, plain))

    @property
    def _tolerance(self) -> float:
        """How far a probe's two computations may differ: float32 rounding, or a 16-bit dtype's."""
        return 1e-4 if self.dtype == "float32" else 2e-2

    def prefix_cache(self, prefix: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's (keys, values) for ``prefix`` on one row; the last prefix's are kept for the next call."""
        from transformers import DynamicCache

        if self._prefix[0] != tuple(prefix):
            cache = DynamicCache(config=self.model.config)
            with torch.inference_mode():
                self.logits_at((slice(None), slice(-1, None)), input_ids=torch.tensor([prefix], device=self.device),
                                use_cache=True, **{self.cache_arg: cache})
            self._prefix = (tuple(prefix), [(layer.keys, layer.values) for layer in cache.layers])  # type: ignore[union-attr,misc]
        return self._prefix[1]

    def prefix_inputs(self, prefix: Sequence[int], rows: int, own_cache: bool = False
                      ) -> tuple[dict[str, Any], contextlib.AbstractContextManager[None]]:
        """Forward inputs that put ``prefix`` (its keys and values computed once) before each of ``rows`` rows, and
        the context to run the forward in: the prefix's one copy with the attention function that reads it (and,
        with ``own_cache``, an empty cache for the rows' own tokens: generation), or its cache repeated per row."""
        from transformers import DynamicCache

        config = self.model.config
        if self.shared_attention:
            extra: dict[str, Any] = {prefix_attention.KWARG: self.prefix_cache(list(prefix))}
            if own_cache:
                extra.update({"use_cache": True, self.cache_arg: DynamicCache(config=config)})
            return extra, prefix_attention.attention_to_prefix(self.model)
        layers = [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in self.prefix_cache(list(prefix))]
        return {"use_cache": True, self.cache_arg: DynamicCache(ddp_cache_data=layers, config=config)}, contextlib.nullcontext()

    def describe(self) -> str:
        how = "choices packed behind a shared context" if self.packing else "one sequence per choice"
        if self.recurrent:
            how = (f"state-space/recurrent layers ({', '.join(self.recurrent)}): one right-padded sequence per "
                   "choice, no shared-prefix reuse; generation batches prompts of equal length (no padding)")
        if self.spec.quantization is not None:
            how = f"{self.spec.quantization.name} weights ({self.weight_bytes:,} bytes); " + how
        if self.spec.adapter:
            how = (f"adapter {self.spec.adapter} on {self.spec.model} (the base's weights "
                   f"{'kept from the previous model' if self.base_reused else 'loaded'}); " + how)
        if self.packing:
            how += ("; no shared-prefix reuse (this model's cache failed the probe)" if not self.prefix_reuse else
                    "; a prefix shared by a task's contexts computed once" +
                    (", attended as one copy" if self.shared_attention else ", its cache repeated per row"))
        return how

    # ------------------------------------------------------------------ log-likelihood

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[LogLikelihood]:
        """Continuations that share a context (the choices of a document) are scored together: the
        context is computed once and each choice attends to it and to itself (see ``_score_packed_batch``).
        Tokens every context starts with (a shared few-shot block) are computed once for all of them."""
        pairs = self.encode_pairs(requests)
        out = self._packed(pairs) if self.packing else self.score_tokens(pairs)
        return [r._replace(truncated=True) if len(c) + len(x) > self.max_length + 1 else r for r, (c, x) in zip(out, pairs)]

    def _packed(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[LogLikelihood]:
        """``loglikelihood`` with choices packed behind their shared context (pairs too long to pack: one by one)."""
        groups: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]] = {}
        for i, (ctx, cont) in enumerate(pairs):
            groups.setdefault(tuple(ctx), {}).setdefault(tuple(cont), []).append(i)
        out: list[Optional[LogLikelihood]] = [None] * len(pairs)
        packed: list[tuple[tuple[int, ...], dict[tuple[int, ...], list[int]]]] = []
        single: list[tuple[tuple[int, ...], dict[tuple[int, ...], list[int]]]] = []
        n_shared = shared_prefix(list(groups), MIN_SHARED_PREFIX) if self.prefix_reuse else 0
        prefix = next(iter(groups))[:n_shared]
        for shared, conts in groups.items():
            fits = len(shared) + max(len(c) for c in conts) - 1 <= self.pack_limit and all(conts)
            (packed if fits and (len(conts) > 1 or n_shared) else single).append((shared, conts))
        keys = [(shared, c) for shared, conts in single for c in conts]
        for (shared, c), res in zip(keys, self.score_tokens([(list(s), list(c)) for s, c in keys])):
            for i in groups[shared][c]:
                out[i] = res
        repeated = 0 if self.shared_attention else n_shared  # a repeated prefix cache costs memory in every row
        lengths = [len(ctx) - n_shared + repeated + sum(len(c) - 1 for c in conts) for ctx, conts in packed]
        order = sorted(range(len(packed)), key=lambda g: -lengths[g])
        for batch in self.batches(lengths, order):
            results = self.run_batched(lambda b: self._score_packed_batch(
                [(packed[g][0][n_shared:], list(packed[g][1])) for g in b], prefix), batch)
            for g, res in zip(batch, results):
                for choice, r in zip(packed[g][1], res):
                    for i in packed[g][1][choice]:
                        out[i] = r
        return out  # type: ignore[return-value]

    def _item(self, ctx: tuple[int, ...], cont: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """What ``_score_batch`` takes for one pair: the input (context and continuation but its last token,
        cut from the left to the model's length) and the continuation."""
        cont = cont[-self.max_length:]
        return (ctx + cont)[-(self.max_length + 1):][:-1], cont

    def _cost(self, item: tuple[tuple[int, ...], tuple[int, ...]]) -> int:
        """An item's tokens in a batch (for the token budget)."""
        return len(item[0])

    @torch.inference_mode()
    def _score_batch(self, items: Sequence[tuple[tuple[int, ...], tuple[int, ...]]]) -> list[LogLikelihood]:
        width = max(len(inp) for inp, _ in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        rows: list[int] = []
        pos: list[int] = []
        targets: list[int] = []
        sizes: list[int] = []
        for r, (inp, cont) in enumerate(items):  # right padding: positions stay absolute for every row
            ids[r, : len(inp)] = torch.tensor(inp)
            mask[r, : len(inp)] = 1
            rows += [r] * len(cont)
            pos += range(len(inp) - len(cont), len(inp))
            targets += cont
            sizes.append(len(cont))
        at = (torch.tensor(rows, device=self.device), torch.tensor(pos, device=self.device))
        logits = self.logits_at(at, input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        return self._gather(logits, targets, sizes)

    @torch.inference_mode()
    def _score_packed_batch(self, groups: Sequence[tuple[tuple[int, ...], list[tuple[int, ...]]]],
                            prefix: Sequence[int] = ()) -> list[list[LogLikelihood]]:
        """Each row holds one context followed by every choice but its last token. Choice k's tokens see
        the context and their own earlier tokens only, at positions continuing the context's, so each
        choice is scored exactly as if alone, while the context is computed once. With ``prefix``, every
        row's context continues it: its keys and values (computed once) are attended by all, as one shared copy
        (``models.prefix``) or repeated for every row as a key/value cache."""
        width = max(len(ctx) + sum(len(c) - 1 for c in conts) for ctx, conts in groups)
        id_rows: list[list[int]] = []
        pos_rows: list[list[int]] = []
        seg_rows: list[list[int]] = []  # -1 padding, 0 context, k+1 choice k
        rows: list[int] = []
        pos: list[int] = []
        targets: list[int] = []
        sizes: list[int] = []
        for r, (ctx, conts) in enumerate(groups):  # built as lists, one tensor each: thousands of rows on a GPU
            n = len(ctx)
            ids, position, segment = list(ctx), list(range(n)), [0] * n  # the prefix's length is added below
            for k, cont in enumerate(conts):
                body, start = cont[:-1], len(ids)
                ids += body
                position += range(n, n + len(body))
                segment += [k + 1] * len(body)
                rows += [r] * len(cont)
                pos += [n - 1] + list(range(start, start + len(body)))  # where each of its tokens is predicted
                targets += cont
                sizes.append(len(cont))
            pad = width - len(ids)
            id_rows.append(ids + [self.pad_id] * pad)
            pos_rows.append(position + [0] * pad)
            seg_rows.append(segment + [-1] * pad)
        seg = torch.tensor(seg_rows, device=self.device)  # the (batch × width²) mask is built where it is used
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        seg_q, seg_k = seg[:, :, None], seg[:, None, :]
        allowed = causal & (seg_k >= 0) & ((seg_k == 0) | (seg_k == seg_q))
        allowed |= torch.eye(width, dtype=torch.bool, device=self.device)  # padding attends to itself: no empty softmax
        if prefix and not self.shared_attention:  # every row sees the whole prefix
            allowed = torch.cat([allowed.new_ones((len(groups), width, len(prefix))), allowed], dim=2)
        dtype = DTYPES[self.dtype]
        mask = torch.zeros(allowed.shape, dtype=dtype, device=self.device).masked_fill(~allowed, torch.finfo(dtype).min)
        at = (torch.tensor(rows, device=self.device), torch.tensor(pos, device=self.device))
        extra, attention = self.prefix_inputs(prefix, len(groups)) if prefix else ({}, contextlib.nullcontext())
        with attention:
            logits = self.logits_at(at, input_ids=torch.tensor(id_rows, device=self.device),
                                     attention_mask=mask[:, None], **extra,
                                     position_ids=torch.tensor(pos_rows, device=self.device) + len(prefix))
        flat = self._gather(logits, targets, sizes)
        out, i = [], 0
        for _, conts in groups:
            out.append(flat[i:i + len(conts)])
            i += len(conts)
        return out

    def loglikelihood_rolling(self, texts: Sequence[str], window: Optional[int] = None,
                              stride: Optional[int] = None) -> list[LogLikelihood]:
        """Whole-text log-likelihood; the first token is predicted from the BOS (or EOS) token.

        Each window holds at most ``window`` input tokens and scores the ``stride`` tokens that follow
        the previous window's; ``stride == window`` gives disjoint windows, as in lm-eval.
        """
        window = min(window or self.max_length, self.max_length)
        stride = min(stride or window, window)
        pairs, owner = [], []
        for t, text in enumerate(texts):
            ids = [self.bos_id] + self.tokenize(text)
            n = len(ids) - 1
            for a in range(0, n, stride):
                b = min(a + stride, n)
                lo = max(0, b - window)
                pairs.append((ids[lo: a + 1], ids[a + 1: b + 1]))
                owner.append(t)
        totals = [LogLikelihood(0.0, True, 0) for _ in texts]
        for t, res in zip(owner, self.score_tokens(pairs)):
            total = totals[t]
            totals[t] = LogLikelihood(total.logprob + res.logprob, total.is_greedy and res.is_greedy,
                                      total.n_tokens + res.n_tokens)
        return totals

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Greedy or sampled decoding, batched; each row stops at EOS or its first stop sequence (see
        ``generation``)."""
        return generate(self, requests)

