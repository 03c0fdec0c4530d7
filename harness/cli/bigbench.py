"""``harness bigbench fetch``: download BIG-bench's JSON tasks once (``harness tasks list --source bigbench`` lists
them)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from harness.cli.console import console, out, safe


def cmd_fetch(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.tasks.sources import bigbench, bigbench_fetch

    if args.sha256 and not args.source:
        raise HarnessError("--sha256 checks an archive given with --source (the sdist's own is always checked)",
                           where="--sha256")
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        job = bar.add_task((args.source or bigbench_fetch.SDIST_URL).rsplit("/", 1)[-1], total=None)

        def progress(done: int, total: int) -> None:
            bar.update(job, completed=done, total=total or None)

        if args.source:
            path, sha = bigbench_fetch.fetch(progress, url=args.source, sha256=args.sha256)
        else:
            path, sha = bigbench_fetch.fetch_default(progress, log=lambda msg: console.print(safe(msg)))
    tasks = bigbench.index()
    out.print(safe(f"BIG-bench: {len(tasks)} JSON tasks in {path} (archive sha256 {sha})"))
    return 0


def add_parsers(sub: Any) -> None:
    b = sub.add_parser("bigbench", help="fetch BIG-bench's JSON tasks (run them as bigbench:TASK)")
    bsub = b.add_subparsers(dest="action", required=True)
    f = bsub.add_parser("fetch", help="download the bigbench 1.0.0 sdist once (358 MB) and keep its task.json files")
    f.add_argument("--source", default=None, metavar="PATH_OR_URL",
                   help="another .tar.gz holding bigbench/benchmark_tasks (a local file or URL; e.g. GitHub's archive "
                        "of google/BIG-bench); default: the bigbench 1.0.0 sdist on PyPI, else GitHub's archive")
    f.add_argument("--sha256", default=None, help="the archive's expected sha256 (checked by default for the sdist)")
    f.set_defaults(func=cmd_fetch)
