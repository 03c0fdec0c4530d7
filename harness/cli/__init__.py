"""Command line: ``harness run | tasks | ladder | bigbench | classify | report | compare``, one module per command group.
Bad input prints one line and exits 2; the commands hold no logic that the library lacks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn, Optional

from harness._version import __version__
from harness.cli import analysis, bigbench, ladder, run, tasks
from harness.cli.console import console, visible
from harness.errors import HarnessError


class _Parser(argparse.ArgumentParser):
    """A usage error is one line (which argument, what is wrong, where help is), exit 2, like every bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {visible(message)} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="harness", description="Evaluate model families and classify scaling curves.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for group in (run, tasks, ladder, bigbench, analysis):
        group.add_parsers(sub)
    return p


def _quiet_third_party() -> None:
    """Keep other libraries' warnings off the user's terminal: torchao's optional kernels it cannot load, torch's
    deprecation notices, transformers' advice; this package's own warnings still show."""
    import logging
    import warnings

    for name in ("torchao", "torch.utils._pytree", "torch._dynamo", "transformers", "datasets", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"harness(\.|$)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    _quiet_third_party()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as err:
        console.print(f"error: {visible(err)}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except OSError as exc:  # disk full, permissions: earlier results stay as they were (atomic writes)
        where = f"{exc.filename}: " if exc.filename else ""
        console.print(f"error: {visible(where)}{visible(exc.strerror or exc)}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; completed (model, task) pairs are saved and will be reused")
        return 130


def entry() -> None:
    """The ``harness`` command: ``main``, then exit without the interpreter's final garbage collections.

    Those walk every object torch and transformers created (about 0.9 s of a CPU run's 8 s, measured); frozen
    objects are skipped, while exit handlers and files close as usual. Not in ``main``: tests call that in-process."""
    import gc

    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
