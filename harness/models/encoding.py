"""Tokenization for scoring: many texts in one tokenizer call, a long text head they all share encoded once.

Few-shot prompts repeat a block of hundreds of tokens in every document, and lm-eval's boundary convention
encodes each context and each context + choice whole: without this the tokenizer spends most of its time on
that block. The texts are cut at a space that starts a word inside their shared head (a pre-token boundary
for byte-level BPE, SentencePiece's Metaspace and whitespace pre-tokenizers, which restart there whatever
follows); the head is encoded once and each tail on its own. Three texts of every call are also encoded
whole and must come out identical; otherwise (a tokenizer that prepends to every piece or appends an end
token) every text is encoded whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

MIN_SHARED_CHARS = 200  # a shorter shared head is not worth a second tokenizer call
LOOKAHEAD = 16  # characters of the shared head kept after the cut (pre-tokenizer regexes look one ahead)
_WORD_START = re.compile(r"(?<=\S) (?=[^\W\d_])")  # one space between a non-space and a letter


def encode_texts(tokenizer: Any, texts: Sequence[str], special: bool = True) -> list[list[int]]:
    """Token ids of each text as ``tokenizer(text, add_special_tokens=special)`` gives them."""
    unique = list(dict.fromkeys(texts))
    if not unique:
        return []
    ids = dict(zip(unique, _encode_unique(tokenizer, unique, special)))
    return [ids[t] for t in texts]


def head_cut(texts: Sequence[str]) -> int:
    """Character offset inside the texts' shared head where they are cut (0: no shared head worth cutting)."""
    if len(texts) < 3:
        return 0
    shared = os.path.commonprefix(list(texts))
    if len(shared) < MIN_SHARED_CHARS:
        return 0
    cuts = [m.start() for m in _WORD_START.finditer(shared, 0, len(shared) - LOOKAHEAD)]
    return cuts[-1] if cuts else 0


def _encode_unique(tokenizer: Any, texts: list[str], special: bool) -> list[list[int]]:
    at = head_cut(texts)
    if at:
        head = tokenizer(texts[0][:at], add_special_tokens=special)["input_ids"]
        tails = tokenizer([t[at:] for t in texts], add_special_tokens=False)["input_ids"]
        probe = sorted({0, len(texts) // 2, len(texts) - 1})
        whole = tokenizer([texts[i] for i in probe], add_special_tokens=special)["input_ids"]
        if all(w == head + tails[i] for i, w in zip(probe, whole)):
            return [head + t for t in tails]
    return tokenizer(texts, add_special_tokens=special)["input_ids"]
