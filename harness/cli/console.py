"""The two consoles of the command line: tables and results on stdout, progress and errors on stderr.
Neither interprets markup in what it prints unless a message asks for it; names are escaped."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True, highlight=False, log_path=False)  # progress, logs, errors
out = Console(highlight=False, width=160)  # tables and results
