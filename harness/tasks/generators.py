"""Deterministic synthetic datasets, named from task YAML as ``dataset: {generator: NAME, args: {...}}``.

Each generator takes ``split`` and its args and returns a list of flat dicts (the documents).
The same generators write the toy ladder's training corpus, so train and test formats agree.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from typing import Any

from harness.errors import HarnessError

GENERATORS: dict[str, Callable[..., list[dict[str, Any]]]] = {}
_SPLIT_OFFSET = {"train": 0, "validation": 1, "test": 2}


def generator(name: str) -> Callable:
    """Register a generator ``fn(split, **args) -> list[dict]``."""

    def register(fn: Callable) -> Callable:
        GENERATORS[name] = fn
        return fn

    return register


def generate(name: str, split: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a registered generator; unknown names or arguments are HarnessErrors naming the field."""
    fn = GENERATORS.get(name)
    if fn is None:
        raise HarnessError(f"unknown generator '{name}' (known: {', '.join(sorted(GENERATORS))})", where="dataset.generator")
    params = inspect.signature(fn).parameters
    unknown = sorted(set(args) - set(params) - {"split"})
    if unknown:
        raise HarnessError(f"generator '{name}' has no argument(s) {unknown} (known: {sorted(set(params) - {'split'})})", where="dataset.args")
    for arg, value in args.items():  # every size is bounded: a task file must not ask for unbounded work
        default = params[arg].default if arg in params else None
        if isinstance(default, int) and not isinstance(default, bool):
            if not isinstance(value, int) or isinstance(value, bool):
                raise HarnessError(f"generator '{name}': {arg} must be a whole number (got {value!r:.40})",
                                   where=f"dataset.args.{arg}")
            low, high = MAX_ARG.get(arg, (0, 1_000_000))
            if not low <= value <= high:
                raise HarnessError(f"generator '{name}': {arg} must be between {low:,} and {high:,} (got {value:,})",
                                   where=f"dataset.args.{arg}")
        if isinstance(default, str) and (not isinstance(value, str) or not value or len(value) > 1000):
            raise HarnessError(f"generator '{name}': {arg} must be a non-empty text of at most 1,000 characters "
                               f"(got {value!r:.40})", where=f"dataset.args.{arg}")
    try:
        return fn(split=split, **args)
    except (TypeError, ValueError) as exc:
        raise HarnessError(f"generator '{name}': {exc}", where="dataset.args") from None


# (lowest, highest) of each whole-number argument; any other is 0..1,000,000 (``n``, ``seed``: documents, seeds)
MAX_ARG = {"n": (1, 1_000_000), "seed": (0, 2**63), "digits": (1, 9), "choices": (0, 100), "length": (1, 10_000),
           "pairs": (1, 1_000), "key_len": (1, 100), "modulus": (2, 1_000_000), "values": (1, 1_000_000)}


def _rng(seed: int, split: str) -> random.Random:
    return random.Random(f"{seed}:{_SPLIT_OFFSET.get(split, split)}")


def _unique(rng: random.Random, n: int, draw: Callable[[], tuple], limit: int) -> list[tuple]:
    """Draw ``n`` distinct items (or all ``limit`` of them when fewer exist)."""
    seen: dict[tuple, None] = {}
    n = min(n, limit)
    while len(seen) < n:
        seen.setdefault(draw(), None)
    return list(seen)


@generator("arithmetic")
def arithmetic(split: str, op: str = "+", digits: int = 2, n: int = 500, seed: int = 0,
               pad: bool = False, choices: int = 0) -> list[dict[str, Any]]:
    """``a OP b`` with operands of ``digits`` digits. ``pad`` zero-pads operands and answer to fixed
    width (``07+42=049``). ``choices > 1`` adds ``options`` (distractors near the answer) and ``label``."""
    if op not in "+-*" or len(op) != 1:
        raise ValueError(f"op must be one of + - * (got {op!r})")
    if choices > 1 and choices - 1 > 10 ** max(1, digits - 1):
        raise ValueError(f"choices {choices} asks for more distractors than exist near a {digits}-digit answer "
                         f"(at most {10 ** max(1, digits - 1) + 1} choices)")
    hi = 10 ** digits
    rng = _rng(seed, split)
    width = {"+": digits + 1, "-": digits, "*": 2 * digits}[op]
    pairs = _unique(rng, n, lambda: (rng.randrange(hi), rng.randrange(hi)), hi * hi)
    docs = []
    for a, b in pairs:
        if op == "-" and b > a:
            a, b = b, a
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        fmt = (lambda x, w: str(x).zfill(w)) if pad else (lambda x, w: str(x))
        doc: dict[str, Any] = {"a": fmt(a, digits), "b": fmt(b, digits), "op": op, "answer": fmt(value, width)}
        if choices > 1:
            wrong: set[int] = set()
            while len(wrong) < choices - 1:
                cand = value + rng.choice([-1, 1]) * rng.randrange(1, 10 ** max(1, digits - 1) + 1)
                if cand >= 0 and cand != value:
                    wrong.add(cand)
            options = [value] + sorted(wrong)
            rng.shuffle(options)
            doc["options"] = [fmt(x, width) for x in options]
            doc["label"] = options.index(value)
        docs.append(doc)
    return docs


@generator("sequence")
def sequence(split: str, op: str = "copy", length: int = 4, alphabet: str = "abcdefgh", n: int = 500,
             seed: int = 0) -> list[dict[str, Any]]:
    """String transforms: ``copy``, ``reverse`` or ``sort`` a random string of ``length`` symbols."""
    fns = {"copy": lambda s: s, "reverse": lambda s: s[::-1], "sort": lambda s: "".join(sorted(s))}
    if op not in fns:
        raise ValueError(f"op must be one of {sorted(fns)} (got {op!r})")
    if n * length > 10_000_000:
        raise ValueError(f"n × length is {n * length:,} symbols: at most 10,000,000")
    rng = _rng(seed, split)
    items = _unique(rng, n, lambda: tuple(rng.choice(alphabet) for _ in range(length)), len(set(alphabet)) ** length)
    return [{"input": "".join(t), "answer": fns[op]("".join(t))} for t in items]


@generator("modular")
def modular(split: str, modulus: int = 7, op: str = "+", n: int = 500, seed: int = 0) -> list[dict[str, Any]]:
    """``(a OP b) mod m`` for a, b < m; single-token answers, so chance is 1/m."""
    if modulus < 2:
        raise ValueError("modulus must be at least 2")
    rng = _rng(seed, split)
    pairs = _unique(rng, n, lambda: (rng.randrange(modulus), rng.randrange(modulus)), modulus * modulus)
    if op not in ("+", "*"):
        raise ValueError(f"op must be + or * (got {op!r})")
    calc = {"+": lambda a, b: a + b, "*": lambda a, b: a * b}[op]
    return [{"a": str(a), "b": str(b), "m": str(modulus), "answer": str(calc(a, b) % modulus)} for a, b in pairs]


@generator("lookup")
def lookup(split: str, pairs: int = 4, key_len: int = 2, n: int = 500, seed: int = 0,
           keys: str = "abcdefgh", values: str = "0123456789") -> list[dict[str, Any]]:
    """Key-value retrieval: ``context`` lists ``pairs`` entries like ``ab:3``; the query is one key."""
    if n * pairs * key_len > 10_000_000:
        raise ValueError(f"n × pairs × key_len is {n * pairs * key_len:,} symbols: at most 10,000,000")
    if pairs > len(set(keys)) ** key_len:
        raise ValueError(f"pairs {pairs} asks for more distinct keys than {len(set(keys))} symbols of length {key_len} "
                         f"make ({len(set(keys)) ** key_len})")
    rng = _rng(seed, split)
    docs = []
    for _ in range(n):
        ks: list[str] = []
        while len(ks) < pairs:
            k = "".join(rng.choice(keys) for _ in range(key_len))
            if k not in ks:
                ks.append(k)
        vs = [rng.choice(values) for _ in ks]
        q = rng.randrange(pairs)
        docs.append({"context": ",".join(f"{k}:{v}" for k, v in zip(ks, vs)), "key": ks[q], "answer": vs[q]})
    return docs


@generator("facts")
def facts(split: str, n: int = 500, key_len: int = 3, keys: str = "abcdefghij", values: int = 100,
          seed: int = 0) -> list[dict[str, Any]]:
    """A fixed table of ``n`` key -> value facts (``abc?42``). The table depends on ``seed`` only, not on
    the split: the task is memorisation, so every split holds the same facts (in a split-dependent order)."""
    table_rng = random.Random(f"facts:{seed}")
    width = len(str(values - 1))
    items = _unique(table_rng, n, lambda: tuple(table_rng.choice(keys) for _ in range(key_len)), len(keys) ** key_len)
    docs = [{"key": "".join(k), "value": str(table_rng.randrange(values)).zfill(width)} for k in items]
    _rng(seed, split).shuffle(docs)
    return docs
