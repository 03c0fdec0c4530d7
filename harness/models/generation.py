"""Generation on the Hugging Face backend (greedy, or sampled from each request's own seeded stream): batched,
KV-cached, each row leaving the batch when it stops.

Prompts of one batch that start with the same tokens (a shared few-shot block) have that prefix prefilled once:
its key/value cache is computed on one row, and only the rest of each prompt is run; every step attends to the
prefix's one copy (``models.prefix``) where the model allows, else to its cache repeated for every row."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Optional, Protocol, TypeVar

import torch

from harness.models.backend import GenerationRequest, Sampling
from harness.models.encoding import encode_texts

T = TypeVar("T")


class Decoder(Protocol):
    """What generation reads of a loaded causal backend (``models.causal.CausalBackend``)."""

    tokenizer: Any
    model: Any
    device: str
    pad_id: int
    max_length: int
    recurrent: list[str]  # layers that carry a state: generation without padding (``generate_unpadded``)
    prefix_reuse: bool  # a prefix every prompt shares may be prefilled once
    shared_attention: bool  # ... and attended as one copy
    cache_arg: str  # the forward's name for the key/value cache
    stop_cache: dict[tuple[int, tuple[str, ...]], bool]

    def batches(self, lengths: Mapping[int, int], order: list[int]) -> Iterator[list[int]]: ...

    def run_batched(self, fn: Callable[[list[T]], list[Any]], batch: list[T]) -> list[Any]: ...

    def logits_at(self, at: Any, **inputs: Any) -> torch.Tensor: ...

    def prefix_inputs(self, prefix: Sequence[int], rows: int, own_cache: bool = False
                      ) -> tuple[dict[str, Any], AbstractContextManager[None]]: ...
MIN_SHARED_PREFIX = 32  # tokens every context of a task must share before its cache is computed once and reused


def generate(backend: Decoder, requests: Sequence[GenerationRequest]) -> list[str]:
    """Requests grouped by (stop sequences, token limit), batched longest first within the token budget; a model
    with recurrent layers takes ``generate_unpadded``."""
    out: list[Optional[str]] = [None] * len(requests)
    groups: dict[tuple[tuple[str, ...], int], list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((tuple(r.until), r.max_new_tokens), []).append(i)
    for (until, max_new), members in groups.items():
        keep = max(1, backend.max_length - max_new)
        texts = encode_texts(backend.tokenizer, [requests[i].context for i in members])
        encoded = {i: ids[-keep:] for i, ids in zip(members, texts)}
        if backend.recurrent:
            for i, text in generate_unpadded(backend, encoded, requests, until, max_new).items():
                out[i] = text
            continue
        n_shared = shared_prefix(list(encoded.values()), MIN_SHARED_PREFIX) if backend.prefix_reuse else 0
        prefix = encoded[members[0]][:n_shared]
        own = n_shared if backend.shared_attention else 0  # one copy of the prefix: rows hold their own tokens only
        lengths = {i: len(e) - own + max_new for i, e in encoded.items()}
        order = sorted(members, key=lambda i: -lengths[i])
        for batch in backend.batches(lengths, order):
            def step(b: list[int], encoded: dict = encoded, until: tuple = until, max_new: int = max_new,
                     n_shared: int = n_shared, prefix: list[int] = prefix) -> list[str]:
                return generate_batch(backend, [encoded[i][n_shared:] for i in b], until, max_new, prefix,
                                      [requests[i].sampling for i in b])

            for i, text in zip(batch, backend.run_batched(step, batch)):
                out[i] = text
    return out  # type: ignore[return-value]


@torch.inference_mode()
def generate_batch(backend: Decoder, prompts: list[list[int]], until: tuple[str, ...], max_new: int,
                   prefix: Sequence[int] = (), samplings: Sequence[Optional[Sampling]] = ()) -> list[str]:
    """Decoding with a KV cache, the shared ``prefix`` (if any) prefilled once; row r greedy unless
    ``samplings[r]`` says how to sample it. A row leaves the batch (and its cache) as soon as it emits EOS or
    completes a stop sequence; only rows whose new token could end a stop sequence decode their last few tokens
    to check."""
    from transformers import DynamicCache

    device = backend.device
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), backend.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, p in enumerate(prompts):  # left padding: every row's next token lands in the same column
        ids[r, width - len(p):] = torch.tensor(p)
        mask[r, width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    position = (mask.cumsum(-1) - 1).clamp(min=0) + len(prefix)
    if prefix:  # [prefix][left padding][own prompt]: the padding is masked out, positions continue the prefix
        cached, attention = backend.prefix_inputs(prefix, len(prompts), own_cache=True)
        if not backend.shared_attention:  # the rows' cache starts with the prefix's: the mask covers it
            mask = torch.cat([mask.new_ones((len(prompts), len(prefix))), mask], dim=1)
    else:
        cached, attention = {"use_cache": True, backend.cache_arg: DynamicCache(config=backend.model.config)}, nullcontext()
    with attention:
        chooser = TokenChooser(list(samplings) or [None] * len(prompts))
        generated = _decode(backend, ids, mask, position, cached, until, max_new, chooser)
    texts = backend.tokenizer.batch_decode(generated, skip_special_tokens=True)
    return [cut_at_stop(t, until) for t in texts]


def _decode(backend: Decoder, ids: torch.Tensor, mask: torch.Tensor, position: torch.Tensor, cached: dict[str, Any],
            until: tuple[str, ...], max_new: int, chooser: TokenChooser) -> list[list[int]]:
    """The decoding loop: the prompts' forward pass, then one token per step for the rows still going."""
    cache, device = cached[backend.cache_arg], ids.device
    stops = [u for u in until if u]
    window = max((len(u) for u in stops), default=0) + 2  # tokens: each yields >= 1 char or is special
    eos = backend.tokenizer.eos_token_id
    generated: list[list[int]] = [[] for _ in range(len(ids))]
    active = list(range(len(ids)))
    last = (slice(None), slice(-1, None))  # the newest position of every row
    logits = backend.logits_at(last, input_ids=ids, attention_mask=mask, position_ids=position, **cached)[:, 0]
    for step in range(max_new):
        next_ids = chooser(logits, active)
        keep = []
        for j, (r, tok) in enumerate(zip(active, next_ids.tolist())):
            if tok == eos:
                continue
            generated[r].append(tok)
            if stops and may_stop(backend, tok, stops):
                tail = backend.tokenizer.decode(generated[r][-window:], skip_special_tokens=True)
                if any(u in tail for u in stops):
                    continue
            keep.append(j)
        if not keep or step == max_new - 1:
            break
        if len(keep) < len(active):  # drop finished rows from the batch and the cache
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, position, next_ids = mask[index], position[index], next_ids[index]
            active = [active[j] for j in keep]
        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
        position = position[:, -1:] + 1
        logits = backend.logits_at(last, input_ids=next_ids[:, None], attention_mask=mask, position_ids=position,
                                    **cached)[:, 0]
    return generated


def generate_unpadded(backend: Decoder, encoded: dict[int, list[int]], requests: Sequence[GenerationRequest],
                      until: tuple[str, ...], max_new: int) -> dict[int, str]:
    """Generation that is exact for any causal model, recurrent ones included: Hugging Face's ``generate`` (the
    model's own cache) over batches of prompts with the same number of tokens, so no row carries padding; the
    tokens chosen as ``generate_batch`` chooses them (``TokenChooser``)."""
    from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

    class Choose(LogitsProcessor):
        def __init__(self, chooser: TokenChooser) -> None:
            self.chooser = chooser

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            chosen = self.chooser(scores, range(len(scores)))
            return torch.full_like(scores, -float("inf")).scatter_(1, chosen[:, None], 0.0)

    config = GenerationConfig(max_new_tokens=max_new, do_sample=False, num_beams=1, pad_token_id=backend.pad_id,
                              eos_token_id=backend.tokenizer.eos_token_id, stop_strings=[u for u in until if u] or None)
    by_length: dict[int, list[int]] = {}
    for i, ids in encoded.items():
        by_length.setdefault(len(ids), []).append(i)
    out: dict[int, str] = {}
    for n, members in sorted(by_length.items(), reverse=True):
        for batch in backend.batches({i: n + max_new for i in members}, members):
            def step(b: list[int], n: int = n) -> list[str]:
                ids = torch.tensor([encoded[i] for i in b], device=backend.device)
                chooser = TokenChooser([requests[i].sampling for i in b])
                with torch.inference_mode():
                    gen = backend.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                                 generation_config=config, tokenizer=backend.tokenizer,
                                                 logits_processor=LogitsProcessorList([Choose(chooser)]))
                texts = backend.tokenizer.batch_decode(gen[:, n:], skip_special_tokens=True)
                return [cut_at_stop(t, until) for t in texts]

            out.update(zip(batch, backend.run_batched(step, batch)))
    return out


class TokenChooser:
    """Each row's next token: the argmax, or a draw from the row's own generator (seeded by its request), so a
    sampled answer is the same at any batch size. Probabilities are float32 softmax of logits / temperature,
    cut to the top-k and then the top-p nucleus (the smallest set of most likely tokens reaching ``top_p``), as
    Hugging Face's sampling warpers do; the draw is the inverse of their cumulative sum at a uniform number."""

    def __init__(self, samplings: Sequence[Optional[Sampling]]) -> None:
        self.samplings = samplings
        self.generators = [torch.Generator().manual_seed(s.seed) if s else None for s in samplings]

    def __call__(self, logits: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
        """Next token ids for ``logits`` (one row per entry of ``rows``, the batch rows still decoding)."""
        chosen = logits.float().argmax(-1)
        sampled = [j for j, r in enumerate(rows) if self.samplings[r] is not None]
        if not sampled:
            return chosen
        params = [self.samplings[rows[j]] for j in sampled]
        temperature = torch.tensor([s.temperature for s in params], device=logits.device)  # type: ignore[union-attr]
        probs = torch.softmax(logits[sampled].float() / temperature[:, None], dim=-1)
        probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        rank = torch.arange(probs.shape[-1], device=logits.device)
        top_k = torch.tensor([s.top_k if s.top_k > 0 else probs.shape[-1] for s in params],  # type: ignore[union-attr]
                             device=logits.device)
        top_p = torch.tensor([s.top_p for s in params], device=logits.device)  # type: ignore[union-attr]
        before = probs.cumsum(-1) - probs  # mass of the more likely tokens: a token is kept while that is < top_p
        keep = (rank[None, :] < top_k[:, None]) & ((before < top_p[:, None]) | (rank[None, :] == 0))
        total = (probs * keep).cumsum(-1)
        draws = torch.tensor([torch.rand((), generator=self.generators[rows[j]], dtype=torch.float64).item()
                              for j in sampled], device=logits.device)
        at = torch.searchsorted(total, (draws * total[:, -1].double()).to(total.dtype)[:, None], right=True)
        at = torch.minimum(at, keep.sum(-1, keepdim=True) - 1)
        chosen[sampled] = order.gather(1, at)[:, 0]
        return chosen


def may_stop(backend: Decoder, token: int, stops: list[str]) -> bool:
    """Could this token end a stop sequence? Only if its text shares a character with one (or is not a whole
    character by itself). Cached per token."""
    key = (token, tuple(stops))
    hit = backend.stop_cache.get(key)
    if hit is None:
        text = backend.tokenizer.decode([token])
        hit = backend.stop_cache[key] = "\ufffd" in text or any(ch in text for u in stops for ch in u)
    return hit


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """Text before the earliest occurrence of any stop sequence."""
    cut = min((i for s in until if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def shared_prefix(sequences: Sequence[Sequence[int]], minimum: int) -> int:
    """Tokens every sequence starts with, leaving each at least one token of its own (its last position is where
    scoring or decoding starts); 0 when that is fewer than ``minimum`` or there is only one sequence."""
    if len(sequences) < 2:
        return 0
    first, n = sequences[0], min(len(x) for x in sequences) - 1
    for x in sequences[1:]:
        n = next((i for i in range(n) if x[i] != first[i]), n)
        if n < minimum:
            return 0
    return n if n >= minimum else 0
