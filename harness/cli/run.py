"""``harness run CONFIG``: evaluate a config's suite on its tasks, with progress, a scores table and labels."""

from __future__ import annotations

import argparse
import time
from typing import Any, Optional

from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from harness.cli.console import add_lm_eval_options, console, out, positive_int, safe, visible, whole
from harness.runner.progress import Reporter
from harness.store import PairSummary, ScoreRow, display_name


class RichReporter(Reporter):
    """Bars on stderr: the models, with documents done and their rate, and one bar per model being evaluated (several
    at once on a cluster) naming its current task."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description:<48}"), BarColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[docs]}"), TimeElapsedColumn(), TextColumn("left"),
                                 TimeRemainingColumn(), console=console, transient=False)
        self.models: Optional[TaskID] = None
        self.bars: dict[str, TaskID] = {}  # model -> its tasks' bar, while it runs
        self.ladder: Optional[TaskID] = None
        self.started = False
        self.docs = 0
        self.t0 = time.monotonic()

    def _start(self) -> None:
        if not self.started:
            self.progress.start()
            self.started = True

    def building(self, done: float, total: float) -> None:
        self._start()
        if self.ladder is None:
            self.ladder = self.progress.add_task("training the ladder", total=total, docs="")
        self.progress.update(self.ladder, completed=done)

    def start(self, n_models: int) -> None:
        self._start()
        self.t0 = time.monotonic()
        self.models = self.progress.add_task("models", total=n_models, docs="")

    def model(self, name: str, n_todo: int, n_done: int) -> None:
        self.bars[name] = self.progress.add_task(safe(f"  {name}"[:36]), total=n_todo + n_done, completed=n_done,
                                                 docs="")
        if n_todo == 0:
            self.log(f"{name}: all {n_done} task(s) already stored, skipped")

    def task(self, model: str, name: str, n: int, reused: int = 0) -> None:
        if model in self.bars:
            what = f"{n} docs, {reused} reused" if reused else f"{n} docs"
            self.progress.update(self.bars[model], description=safe(f"  {model}: {name} ({what})"[:48]))

    def task_done(self, model: str, name: str, summary: PairSummary) -> None:
        if model in self.bars:
            self.progress.update(self.bars[model], advance=1)
        self.docs += summary["n"]
        if self.models is not None:
            rate = self.docs / max(time.monotonic() - self.t0, 1e-9)
            self.progress.update(self.models, docs=f"{self.docs:,} docs, {rate:,.1f}/s")
        metric, score = next(iter(summary["scores"].items()))
        self.log(f"{model} / {name}: {metric}={score['value']:.4f} (n={summary['n']}, {summary['seconds']:.1f}s)")

    def model_done(self, name: str) -> None:
        if name in self.bars:
            self.progress.remove_task(self.bars.pop(name))
        if self.models is not None:
            self.progress.update(self.models, advance=1)

    def log(self, message: str) -> None:
        self.progress.console.log(visible(message), markup=False)

    def finish(self) -> None:
        for bar in self.bars.values():
            self.progress.remove_task(bar)
        self.bars.clear()
        if self.models is not None:
            self.progress.update(self.models, completed=self.progress.tasks[self.models].total)
        self.progress.stop()
        self.started = False


def summary_table(rows: list[ScoreRow]) -> Table:
    """Each task x metric is one curve: columns are model sizes, small to large. Models of the same size
    (seeds, replicates) are pooled: mean [min, max]; a single model shows value ± stderr."""

    sizes = sorted({int(r["params"]) for r in rows})
    counts = {p: len({r["model"] for r in rows if int(r["params"]) == p}) for p in sizes}
    table = Table(title=safe("scores by model size (parameters); replicates: mean [min,max]"))
    table.add_column("task")
    table.add_column("metric")
    for p in sizes:
        table.add_column(f"{p:,}" + (f" ×{counts[p]}" if counts[p] > 1 else ""), justify="right", no_wrap=True)
    cells: dict[tuple[str, str], dict[int, list[ScoreRow]]] = {}
    for r in rows:
        cells.setdefault((display_name(r["task"], r["aggregate"]), r["metric"]), {}).setdefault(int(r["params"]), []).append(r)
    for (task, metric), by_size in cells.items():
        shown = []
        for p in sizes:
            rs = by_size.get(p, [])
            vals = [r["value"] for r in rs]
            if not rs:
                shown.append("-")
            elif len(rs) == 1:
                se = rs[0]["stderr"]
                shown.append(f"{vals[0]:.3f}" + (f"±{se:.3f}" if se is not None and se == se else ""))
            else:
                shown.append(f"{sum(vals) / len(vals):.2f} [{min(vals):.2f},{max(vals):.2f}]")
        table.add_row(safe(task), safe(metric), *[safe(c) for c in shown])
    return table


def cmd_run(args: argparse.Namespace) -> int:
    from harness.config import load_config, resolve_config

    overrides: dict[str, Any] = {"output": args.output, "limit": args.limit, "device": args.device,
                                 "dtype": args.dtype, "batch_size": args.batch_size, "seed": args.seed,
                                 "on_error": args.on_error, "num_fewshot": args.num_fewshot,
                                 "trust_task_code": args.trust_task_code,
                                 "apply_chat_template": args.apply_chat_template,
                                 "system_instruction": args.system_instruction,
                                 "fewshot_as_multiturn": args.fewshot_as_multiturn,
                                 "data": dict(args.data) if args.data else None, "executor": args.executor,
                                 "ray_address": args.ray_address}
    failed = False
    variants = load_config(resolve_config(args.config), overrides).variants()
    for config in variants:
        if len(variants) > 1:
            out.rule(safe(f"{config.name} → {config.output_dir}"))
        failed |= _run_one(config)
    return 1 if failed else 0


def _run_one(config: Any) -> bool:
    """One run, then its scores table, labels and warnings; True when something failed."""
    from harness.runner import run

    result = run(config, RichReporter())
    if result.rows:
        out.print(summary_table(result.rows))
        if len({r["params"] for r in result.rows}) >= 3:  # each curve's scaling label
            from harness.analysis import classify_results, load_results
            from harness.cli.analysis import labels_table, print_artifacts

            classified = classify_results(load_results(result.output))
            out.print(labels_table(classified.classifications, "params"))
            print_artifacts(classified.classifications)
    out.print(f"results: {safe(str(result.output))}  ({result.computed} computed, {result.skipped} reused from "
              "earlier runs)")
    for w in result.warnings:
        console.print("[yellow]WARNING[/] " + safe(w), soft_wrap=True)
    for f in result.failures:
        console.print("[red]FAILED[/] " + safe(" / ".join(p for p in (f.model, f.task) if p) + f": {f.error}"),
                      soft_wrap=True)  # one line, never wrapped
    return bool(result.failures)


def _batch_size(value: str) -> Any:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number, got {value!r}") from None


def add_parsers(sub: Any) -> None:
    r = sub.add_parser("run", help="evaluate every model of a config's suite on its tasks")
    r.add_argument("config", help="a config file, or the name of a packaged config (e.g. 'quickstart')")
    r.add_argument("--output", help="results directory (default: the config's output, or results/<name>)")
    r.add_argument("--limit", type=positive_int, help="first N documents of each task")
    r.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"],
                   help="model weights' dtype (auto: bfloat16 on GPU, float32 on CPU)")
    r.add_argument("--batch-size", type=_batch_size,
                   help="rows per batch, or 'auto' (rows sized by a token budget, halved on out-of-memory)")
    r.add_argument("--seed", type=whole(0, 2**32 - 1), help="the run's seed")
    add_lm_eval_options(r)
    r.add_argument("--executor", choices=["local", "ray"],
                   help="local: one model after another in this process (default); ray: models in parallel on Ray "
                        "workers (a cluster started on this machine, or --ray-address)")
    r.add_argument("--ray-address", metavar="ADDR",
                   help="join a running Ray cluster: 'auto' (the one `ray start` made on this node) or HOST:PORT")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--fail-fast", dest="on_error", action="store_const", const="stop",
                   help="stop at the first failing model or task")
    g.add_argument("--keep-going", dest="on_error", action="store_const", const="continue",
                   help="record failures and go on with the other models (default)")
    r.set_defaults(func=cmd_run)

