"""The two consoles of the command line: tables and results on stdout, progress and errors on stderr.
Neither interprets markup in what it prints unless a message asks for it; names are escaped."""

from __future__ import annotations

import argparse

from rich.console import Console

console = Console(stderr=True, highlight=False, log_path=False)  # progress, logs, errors
out = Console(highlight=False, width=160)  # tables and results


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1 (``--limit``, ``--n``, ``--bootstrap``)."""
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
