"""The two consoles of the command line: tables and results on stdout, progress and errors on stderr.
Neither interprets markup in what it prints unless a message asks for it; names are escaped."""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


class _Console(Console):
    """A console whose tables fold a cell that does not fit onto the next line instead of cutting it with '…'
    (cut, ``toy_add_carry`` and ``toy_add_choice`` would both read ``toy_add_c…``)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        for obj in objects:
            if isinstance(obj, Table):
                for column in obj.columns:
                    column.overflow = "fold"
        super().print(*objects, **kwargs)


console = _Console(stderr=True, highlight=False, log_path=False)  # progress, logs, errors
# tables and results: the terminal's width; 160 columns into a file or pipe (COLUMNS wins where set)
out = _Console(highlight=False, width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)


def visible(text: object) -> str:
    """``text`` with control characters (escape sequences, newlines, NUL, bidirectional overrides) written out as
    ``\\x1b``, ``\\n``, ``\\u202e``: a name from a file or the command line can neither drive the terminal nor
    forge a line."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else
                   (repr(c)[1:-1] if unicodedata.category(c) == "Cc" else f"\\u{ord(c):04x}") for c in s)


def safe(text: object) -> str:
    """A name as console output: control characters made visible, markup escaped."""
    return escape(visible(text))


def whole(low: int, high: int) -> Any:
    """An argparse type: a whole number from ``low`` to ``high`` (bounded: a number asks for work or memory)."""

    def parse(value: str) -> int:
        if not value.isdigit() or not low <= int(value) <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low:,} to {high:,}, got {value!r}")
        return int(value)

    return parse


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1 (``--limit``, ``--n``)."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return int(value)


def split_file(value: str) -> tuple[str, str]:
    """``SPLIT=FILE`` for ``--data``."""
    split, sep, path = value.partition("=")
    if not sep or not split or not path:
        raise argparse.ArgumentTypeError(f"expected SPLIT=FILE (e.g. validation=rows.jsonl), got {value!r}")
    return split, path


def add_lm_eval_options(parser: argparse.ArgumentParser) -> None:
    """``--data SPLIT=FILE`` and ``--num-fewshot K``, for lm-eval tasks (``harness run``, ``harness tasks show``)."""
    parser.add_argument("--data", type=split_file, action="append", metavar="SPLIT=FILE",
                        help="lm-eval tasks: read this split from a local file (JSON lines, JSON, CSV, Parquet) "
                             "instead of the hub; repeatable")
    parser.add_argument("--num-fewshot", type=int, metavar="K", help="lm-eval tasks: shots (default: each task's)")
    parser.add_argument("--trust-task-code", action="store_true", default=None,
                        help="lm-eval task folders of your own ($HARNESS_LM_EVAL_TASKS) may run their Python")
    parser.add_argument("--apply-chat-template", nargs="?", const=True, default=None, metavar="NAME",
                        help="lm-eval tasks: prompts through the tokenizer's chat template (or its template NAME)")
    parser.add_argument("--system-instruction", metavar="TEXT", help="lm-eval tasks: a system message")
    parser.add_argument("--fewshot-as-multiturn", action="store_true", default=None,
                        help="lm-eval tasks: the shots as alternating user/assistant turns (with a chat template)")
