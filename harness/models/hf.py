"""Hugging Face transformers backend: batched continuation log-likelihoods and greedy generation.

Log-likelihoods follow lm-eval's conventions (joint tokenization decides the context/continuation
boundary; trailing context whitespace moves to the continuation) so scores are comparable. Only the
scored positions go through the output layer, and log-softmax runs in float32 whatever the dtype.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional, TypeVar, Union

import torch
import torch.nn.functional as F

from harness.models import adapters
from harness.models import prefix as prefix_attention
from harness.models.backend import GenerationRequest, LogLikelihood
from harness.models.encoding import encode_pairs, encode_texts
from harness.models.generation import MIN_SHARED_PREFIX, generate, shared_prefix
from harness.models.hub import load_pretrained, max_length
from harness.models.suite import ModelSpec, ParamCounts, count_parameters, recurrent_layers

T = TypeVar("T")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CPU_TOKEN_BUDGET = 16_384
GPU_TOKEN_BUDGET = 262_144


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


class HFBackend:
    """A causal LM loaded once; call :meth:`close` to release it before the next model."""

    arch = "causal"

    def __init__(self, spec: ModelSpec, *, device: str = "cpu", dtype: str = "float32",
                 batch_size: Union[int, str] = "auto", token_budget: Optional[int] = None, prefix_reuse: bool = True):
        """Load ``spec`` on ``device`` in ``dtype`` (both resolved: see ``models.backend.resolve_*``).
        ``prefix_reuse``: compute a prefix every context of a task shares (few-shot block) once, if the model's
        cache allows it (probed)."""
        from transformers import AutoModelForCausalLM

        self._load(spec, AutoModelForCausalLM, device, dtype, batch_size, token_budget)
        self._head = self._output_head()
        # state-space / recurrent layers carry a state along the sequence: packed rows would leak one choice into
        # the next, and a left-padded batch feeds padding into the state; such models take the exact paths
        self.recurrent = recurrent_layers(self.model)
        self.packing = not self.recurrent and self._packing_works()
        # a custom mask replaces sliding-window masking: pack only sequences inside the window
        self.pack_limit = min(self.max_length, getattr(self.model.config, "sliding_window", None) or self.max_length)
        self._stop_cache: dict[tuple[int, tuple[str, ...]], bool] = {}
        # transformers >= 5.25 names the KV cache argument `cache` (`past_key_values` goes in 5.40)
        self._cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self._prefix: tuple[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = ((), [])
        # the prefix attended as one shared copy (see models.prefix) where the model allows, else repeated per row
        self.shared_attention = self.prefix_reuse = prefix_reuse and self.packing
        if self.prefix_reuse and not self._prefix_works():
            self.shared_attention, self._prefix = False, ((), [])
            self.prefix_reuse = self._prefix_works()

    # ------------------------------------------------------------------ setup

    def _load(self, spec: ModelSpec, auto_class: Any, device: str, dtype: str, batch_size: Union[int, str],
              token_budget: Optional[int]) -> None:
        """Model and tokenizer on ``device``; parameters counted, then the weights quantized if asked; the
        special tokens, the model's length and the batching budgets."""
        from harness.models.quantize import quantize, weight_bytes

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

    def _logits_at(self, at: Any, **inputs: Any) -> torch.Tensor:
        """Logits at the positions ``at`` (index tensors into batch × sequence) only."""
        if self._head is not None:
            return self._head(at, **inputs)
        return self.model(**inputs).logits[at]

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
                self._logits_at((slice(None), slice(-1, None)), input_ids=torch.tensor([prefix], device=self.device),
                                use_cache=True, **{self._cache_arg: cache})
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
                extra.update({"use_cache": True, self._cache_arg: DynamicCache(config=config)})
            return extra, prefix_attention.attention_to_prefix(self.model)
        layers = [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in self.prefix_cache(list(prefix))]
        return {"use_cache": True, self._cache_arg: DynamicCache(ddp_cache_data=layers, config=config)}, contextlib.nullcontext()

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

    def _encode(self, text: str) -> list[int]:
        """As the tokenizer encodes a prompt: special tokens only where the tokenizer adds them."""
        return self.tokenizer(text)["input_ids"]

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Split tokens at the context boundary of the joint encoding (lm-eval's convention)."""
        return self.encode_pairs([(context, continuation)])[0]

    def encode_pairs(self, requests: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """``encode_pair`` for many requests at once (see ``encoding.encode_pairs``)."""
        return encode_pairs(self.tokenizer, requests, self.bos_id)

    # ------------------------------------------------------------------ batching

    def _batches(self, lengths: Mapping[int, int] | Sequence[int], order: Sequence[int]) -> Iterator[list[int]]:
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

    def _run(self, fn: Callable[[list[T]], list[Any]], batch: list[T]) -> list[Any]:
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
        return self._run(fn, batch[:mid]) + self._run(fn, batch[mid:])

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
        for batch in self._batches(lengths, order):
            results = self._run(lambda b: self._score_packed_batch(
                [(packed[g][0][n_shared:], list(packed[g][1])) for g in b], prefix), batch)
            for g, res in zip(batch, results):
                for choice, r in zip(packed[g][1], res):
                    for i in packed[g][1][choice]:
                        out[i] = r
        return out  # type: ignore[return-value]

    def score_tokens(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[LogLikelihood]:
        """Log-likelihood of token continuations; identical pairs are computed once."""
        unique: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
        index = [unique.setdefault((tuple(c), tuple(x)), len(unique)) for c, x in pairs]
        items = [self._item(ctx, cont) for ctx, cont in unique]
        lengths = [self._cost(item) for item in items]
        order = sorted(range(len(items)), key=lambda i: -lengths[i])
        out: list[Optional[LogLikelihood]] = [None] * len(items)
        for batch in self._batches(lengths, order):
            for i, res in zip(batch, self._run(lambda b: self._score_batch([items[i] for i in b]), batch)):
                out[i] = res
        return [out[i] for i in index]  # type: ignore[misc]

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
        logits = self._logits_at(at, input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        return self._gather(logits, targets, sizes)

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
            logits = self._logits_at(at, input_ids=torch.tensor(id_rows, device=self.device),
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

