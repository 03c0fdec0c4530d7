"""``harness ladder build | list``: train the toy ladder (cached), or list what is built."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from harness.cli.console import out, safe


def cmd_ladder(args: argparse.Namespace) -> int:
    from harness import ladder

    if args.action == "build":
        from harness.cli.run import RichReporter

        rep = RichReporter()
        try:
            ladder.ensure_ladder(args.name, force=args.force, log=rep.log, progress=rep.building)
        finally:
            rep.finish()
        return 0
    table = Table(title=safe(f"ladders in {ladder.ladder_root()}"))
    for col in ("ladder", "model", "params", "nonembedding", "seed", "tokens", "train loss", "path"):
        table.add_column(col)
    for meta, path in ladder.list_built():
        table.add_row(safe(meta["ladder"]), safe(meta["size"]), f"{meta['params']:,}",
                      f"{meta['nonembedding_params']:,}", str(meta["seed"]), f"{meta['tokens']:,}",
                      f"{meta['final_loss']:.3f}", safe(str(path)))
    out.print(table)
    return 0


def add_parsers(sub: Any) -> None:
    lad = sub.add_parser("ladder", help="build or list locally trained model ladders")
    lsub = lad.add_subparsers(dest="action", required=True)
    b = lsub.add_parser("build", help="train a ladder (cached; rebuilt when its recipe changes)")
    b.add_argument("name", nargs="?", default="toy")
    b.add_argument("--force", action="store_true", help="retrain even if cached")
    lsub.add_parser("list", help="ladder models built in the cache")
    lad.set_defaults(func=cmd_ladder)
