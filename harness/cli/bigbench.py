"""``harness bigbench fetch``: download BIG-bench's JSON tasks once (``harness tasks list --source bigbench`` lists
them)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from harness.cli.console import console, out


def cmd_fetch(args: argparse.Namespace) -> int:
    from harness.tasks import bigbench

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        job = bar.add_task("bigbench-1.0.0.tar.gz", total=None)
        path = bigbench.fetch(progress=lambda done, total: bar.update(job, completed=done, total=total or None))
    tasks = bigbench.index()
    out.print(escape(f"BIG-bench: {len(tasks)} JSON tasks in {path}"))
    return 0


def add_parsers(sub: Any) -> None:
    b = sub.add_parser("bigbench", help="fetch BIG-bench's JSON tasks (run them as bigbench:TASK)")
    bsub = b.add_subparsers(dest="action", required=True)
    bsub.add_parser("fetch", help="download the bigbench 1.0.0 sdist once (358 MB) and keep its task.json files"
                    ).set_defaults(func=cmd_fetch)
