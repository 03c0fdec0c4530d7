"""``harness bigbench fetch | list``: download BIG-bench's JSON tasks once, and list them from the cached index."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

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


def cmd_list(args: argparse.Namespace) -> int:
    from harness.tasks import bigbench

    tasks = bigbench.index()
    table = Table(title=escape(f"BIG-bench JSON tasks in {bigbench.root()}"))
    for col in ("task", "subtasks", "examples", "preferred score", "keywords"):
        table.add_column(col, overflow="fold")
    for t in tasks:
        if "error" in t:
            table.add_row(escape(t["name"]), "-", "-", "[red]unreadable[/]", escape(t["error"]))
            continue
        table.add_row(escape(t["name"]), str(len(t["subtasks"]) or ""), f"{t['examples']:,}",
                      escape(str(t["preferred_score"])), escape(", ".join(t["keywords"])))
    out.print(table)
    return 0


def add_parsers(sub: Any) -> None:
    b = sub.add_parser("bigbench", help="fetch and list BIG-bench's JSON tasks (run them as bigbench:TASK)")
    bsub = b.add_subparsers(dest="action", required=True)
    bsub.add_parser("fetch", help="download the bigbench 1.0.0 sdist once (358 MB) and keep its task.json files"
                    ).set_defaults(func=cmd_fetch)
    bsub.add_parser("list", help="the JSON tasks, their subtasks, sizes, preferred scores and keywords"
                    ).set_defaults(func=cmd_list)
