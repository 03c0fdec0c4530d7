"""Tokenization for scoring: many texts in one tokenizer call, the long heads they share encoded once.

Few-shot prompts repeat a block of hundreds of tokens in every document, and lm-eval's boundary convention
encodes each context and each context + choice whole: without this the tokenizer spends most of its time on
that block (and on each document's question, once per choice). Each text is cut at a space that starts a word
inside the longest head it shares with another text (a pre-token boundary for byte-level BPE, SentencePiece's
Metaspace and whitespace pre-tokenizers, which restart there whatever follows); the heads are encoded the same
way in turn (the block, then block + question), each tail on its own. Three texts of every level are also
encoded whole and must come out identical; otherwise (a tokenizer that prepends to every piece or appends an end
token) that level's texts are encoded whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

MIN_SHARED_CHARS = 200  # a shorter shared head is not worth cutting
LOOKAHEAD = 16  # characters of the shared head kept after the cut (pre-tokenizer regexes look one ahead)
_WORD_START = re.compile(r"(?<=\S) (?=[^\W\d_])")  # one space between a non-space and a letter
_MAX_DEPTH = 8  # levels of heads within heads


def encode_texts(tokenizer: Any, texts: Sequence[str], special: bool = True) -> list[list[int]]:
    """Token ids of each text as ``tokenizer(text, add_special_tokens=special)`` gives them."""
    unique = list(dict.fromkeys(texts))
    if not unique:
        return []
    ids = dict(zip(unique, _encode_unique(tokenizer, unique, special, _MAX_DEPTH)))
    return [ids[t] for t in texts]


def head_cuts(texts: Sequence[str]) -> list[int]:
    """Per text, the character offset where it is cut (0: not cut): the last word-starting space at least
    ``LOOKAHEAD`` characters inside the longest head (``MIN_SHARED_CHARS`` or more) it shares with another text."""
    order = sorted(range(len(texts)), key=texts.__getitem__)  # a text's longest shared head is with a neighbour
    shared = [0] * len(texts)
    for a, b in zip(order, order[1:]):
        n = _common_length(texts[a], texts[b])
        shared[a], shared[b] = max(shared[a], n), max(shared[b], n)
    return [_last_word_start(t, n - LOOKAHEAD) if n >= MIN_SHARED_CHARS else 0 for t, n in zip(texts, shared)]


def _common_length(a: str, b: str) -> int:
    """Length of the common prefix of ``a`` and ``b`` (binary search on slices: C speed)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _last_word_start(text: str, end: int) -> int:
    """The offset of the last ``_WORD_START`` space before ``end`` (0: none)."""
    at = text.rfind(" ", 0, end)
    while at > 0 and not _WORD_START.match(text, at):
        at = text.rfind(" ", 0, at)
    return max(at, 0)


def _encode_unique(tokenizer: Any, texts: list[str], special: bool, depth: int) -> list[list[int]]:
    cuts = head_cuts(texts) if depth > 0 else [0] * len(texts)
    cut = [i for i, at in enumerate(cuts) if at]
    if not cut:
        return tokenizer(texts, add_special_tokens=special)["input_ids"]
    heads = list(dict.fromkeys(texts[i][:cuts[i]] for i in cut))
    head_ids = dict(zip(heads, _encode_unique(tokenizer, heads, special, depth - 1)))
    whole = [i for i, at in enumerate(cuts) if not at]
    tails = tokenizer([texts[i][cuts[i]:] for i in cut], add_special_tokens=False)["input_ids"]
    probe = sorted({cut[0], cut[len(cut) // 2], cut[-1]})
    encoded = tokenizer([texts[i] for i in probe + whole], add_special_tokens=special)["input_ids"]
    out: list[list[int]] = [[] for _ in texts]
    for i, ids in zip(cut, tails):
        out[i] = head_ids[texts[i][:cuts[i]]] + ids
    if any(out[i] != ids for i, ids in zip(probe, encoded)):  # the cut is not exact for this tokenizer
        return tokenizer(texts, add_special_tokens=special)["input_ids"]
    for i, ids in zip(whole, encoded[len(probe):]):
        out[i] = ids
    return out


def encode_pairs(tokenizer: Any, requests: Sequence[tuple[str, str]], bos_id: int) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) tokens of each request, split at the context boundary of the joint encoding
    (lm-eval's convention): each distinct context is encoded once (the choices of a document share it) and the
    texts go to the tokenizer in one batch. Trailing context whitespace moves to the continuation; an empty
    context becomes ``bos_id`` (the BOS token, or EOS where there is none)."""
    split: dict[int, tuple[str, str]] = {}  # requests with a context, after the whitespace move
    for i, (context, continuation) in enumerate(requests):
        if context:
            n_spaces = len(context) - len(context.rstrip())
            split[i] = (context[:-n_spaces], context[-n_spaces:] + continuation) if n_spaces else (context, continuation)
    contexts = list(dict.fromkeys(c for c, _ in split.values()))
    encoded = encode_texts(tokenizer, contexts + [c + x for c, x in split.values()])  # one call: see encode_texts
    ctx_ids = dict(zip(contexts, encoded))
    whole = dict(zip(split, encoded[len(contexts):]))
    out = []
    for i, (_, continuation) in enumerate(requests):
        if i in split:
            ctx = ctx_ids[split[i][0]]
            out.append((ctx, whole[i][len(ctx):]))
        else:
            out.append(([bos_id], tokenizer(continuation, add_special_tokens=False)["input_ids"]))
    return out
