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
