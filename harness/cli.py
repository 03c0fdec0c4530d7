"""Command line: ``harness run | tasks | ladder``. Bad input prints one line and exits non-zero."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.errors import HarnessError
from harness.runner import Reporter

console = Console(stderr=True, highlight=False)
out = Console(highlight=False, width=160)


class RichReporter(Reporter):
    """Bars for models and the current model's tasks on stderr."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=False)
        self.models = self.tasks = None

    def start(self, n_models: int) -> None:
        self.progress.start()
        self.models = self.progress.add_task("models", total=n_models)

    def model(self, name: str, n_todo: int, n_done: int) -> None:
        if self.tasks is not None:  # the previous model is finished
            self.progress.remove_task(self.tasks)
            self.progress.update(self.models, advance=1)
        self.tasks = self.progress.add_task(f"  {name}"[:36], total=n_todo + n_done, completed=n_done)
        if n_todo == 0:
            self.progress.console.log(f"{name}: all {n_done} task(s) already stored, skipped")

    def task(self, name: str, n: int) -> None:
        if self.tasks is not None:
            self.progress.update(self.tasks, description=f"  {name} ({n} docs)"[:36])

    def task_done(self, name: str, summary: dict) -> None:
        if self.tasks is not None:
            self.progress.update(self.tasks, advance=1)
        first = next(iter(summary["scores"].items()))
        self.progress.console.log(f"{summary['model']} / {name}: {first[0]}={first[1]['value']:.4f} "
                                  f"(n={summary['n']}, {summary['seconds']:.1f}s)")

    def log(self, message: str) -> None:
        self.progress.console.log(message)

    def finish(self) -> None:
        if self.models is not None:
            self.progress.update(self.models, completed=self.progress.tasks[self.models].total)
        self.progress.stop()


def summary_table(rows: list[dict]) -> Table:
    """Each task x metric is one curve: columns are model sizes, small to large. Models of the same size
    (seeds, replicates) are pooled: mean [min, max]; a single model shows value ± stderr."""
    sizes = sorted({int(r["params"]) for r in rows})
    counts = {p: len({r["model"] for r in rows if int(r["params"]) == p}) for p in sizes}
    table = Table(title=escape("scores by model size (parameters); replicates: mean [min,max]"))
    table.add_column("task")
    table.add_column("metric")
    for p in sizes:
        table.add_column(f"{p:,}" + (f" ×{counts[p]}" if counts[p] > 1 else ""), justify="right", no_wrap=True)
    cells: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for r in rows:
        label = r["task"] + (f" ({r['aggregate']})" if r["aggregate"] else "")
        cells.setdefault((label, r["metric"]), {}).setdefault(int(r["params"]), []).append(r)
    for (task, metric), by_size in cells.items():
        out = []
        for p in sizes:
            rs = by_size.get(p, [])
            vals = [r["value"] for r in rs]
            if not rs:
                out.append("-")
            elif len(rs) == 1:
                se = rs[0]["stderr"]
                out.append(f"{vals[0]:.3f}" + (f"±{se:.3f}" if se is not None and se == se else ""))
            else:
                out.append(f"{sum(vals) / len(vals):.2f} [{min(vals):.2f},{max(vals):.2f}]")
        table.add_row(task, metric, *[escape(c) for c in out])
    return table


# ---------------------------------------------------------------------------- commands

def cmd_run(args: argparse.Namespace) -> int:
    from harness.config import load_config
    from harness.runner import run

    overrides = {"output": args.output, "limit": args.limit, "device": args.device, "dtype": args.dtype,
                 "batch_size": args.batch_size, "seed": args.seed, "on_error": args.on_error}
    config = load_config(Path(args.config), overrides)
    result = run(config, RichReporter())
    if result.rows:
        out.print(summary_table(result.rows))
        if len({r["params"] for r in result.rows}) >= 3:  # each curve's scaling label
            from harness.importers import load_results

            done, _ = classify_all(load_results(result.output))
            out.print(labels_table([c for _, c in done], "params"))
    out.print(f"results: {result.output}  ({result.computed} computed, {result.skipped} reused from earlier runs)")
    for f in result.failures:
        console.print(f"[red]FAILED[/] {f.model}" + (f" / {f.task}" if f.task else "") + f": {f.error}")
    return 1 if result.failures else 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from harness.runner import prepare
    from harness.tasks import TaskIndex, load_task_file

    if args.action == "list":
        index = TaskIndex()
        table = Table(title="tasks")
        for col in ("name", "group", "output", "file"):
            table.add_column(col)
        for name, e in sorted(index.entries.items()):
            try:
                tasks = {t.name: t for t in load_task_file(e.path)}
                output = tasks[name].spec.output if name in tasks else "group"
            except HarnessError:
                output = "[red]invalid[/]"
            table.add_row(name, e.group if e.group != name else "", output, str(e.path))
        out.print(table)
        for err in index.broken.values():
            console.print(f"[red]unreadable[/] {err}")
        return 0
    if args.action == "validate":
        index = TaskIndex()
        paths = [Path(p) for p in args.paths] or sorted({e.path for e in index.entries.values()} | set(index.broken))
        failed = 0
        for path in paths:
            try:
                for task in load_task_file(path):
                    n = len(prepare(task, args.limit).instances)
                    out.print(f"ok  {task.name}  ({n} documents)  {path}")
            except HarnessError as err:
                failed += 1
                console.print(f"[red]error[/] {err}")
        return 1 if failed else 0
    # show
    from harness.tasks import resolve_tasks

    for task in resolve_tasks([args.name], Path.cwd()):
        p = prepare(task, args.n)
        out.rule(f"{task.name}  ({task.spec.output}, from {task.source})")
        for inst in p.instances:  # plain print: the text exactly as the model sees it, no markup
            print(f"--- doc {inst.doc_id}: context between the markers ---\n{inst.context}\n--- end of context ---")
            if inst.choices is not None:
                for i, c in enumerate(inst.continuations):
                    print(f"  choice {i}{' (gold)' if i == inst.gold else ''}: {c!r}")
            elif inst.target is not None:
                print(f"  target: {inst.delimiter + inst.target!r}")
    return 0


def cmd_ladder(args: argparse.Namespace) -> int:
    from harness import ladder

    if args.action == "build":
        ladder.ensure_ladder(args.name, force=args.force, log=console.log)
        return 0
    table = Table(title=f"ladders in {ladder.ladder_root()}")
    for col in ("ladder", "model", "params", "nonembedding", "seed", "tokens", "train loss", "path"):
        table.add_column(col)
    for meta, path in ladder.list_built():
        table.add_row(meta["ladder"], meta["size"], f"{meta['params']:,}", f"{meta['nonembedding_params']:,}",
                      str(meta["seed"]), f"{meta['tokens']:,}", f"{meta['final_loss']:.3f}", str(path))
    out.print(table)
    return 0


def _pairs(values: Optional[list[str]], flag: str) -> dict[str, float]:
    """``NAME=NUMBER`` options into a dict, with a one-line error for a malformed one."""
    out = {}
    for item in values or []:
        name, sep, number = item.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = float(number)
        except ValueError:
            raise HarnessError(f"expected NAME=NUMBER, got {item!r}", where=flag) from None
    return out


def classify_all(res, x: str = "params", metrics=None, tasks=None, chance=None, bootstrap: int = 400):
    """Classify every curve of a results source; curves with fewer than 3 sizes are skipped with a reason."""
    from harness.importers import curves
    from harness.scaling import Rules, classify

    done, skipped = [], []
    for curve in curves(res, x, metrics, tasks, chance):
        try:
            done.append((curve, classify(curve, Rules(bootstrap=bootstrap))))
        except HarnessError as err:
            skipped.append(str(err))
    return done, skipped


def load_classified(args: argparse.Namespace):
    """Results named on the command line, their curves' classifications, and the curves skipped."""
    from harness.importers import load_results

    res = load_results(Path(args.results), _pairs(args.size, "--size"), args.x)
    done, skipped = classify_all(res, args.x, args.metric, args.task, _pairs(args.chance, "--chance"), args.bootstrap)
    if not done:
        raise HarnessError("no curve with at least 3 model sizes" + (f" ({skipped[0]})" if skipped else ""),
                           source=res.source)
    return res, done, skipped


def labels_table(results: list, x: str) -> Table:
    """One row per curve: label, confidence and the key diagnostics."""
    table = Table(title=escape(f"scaling labels (x = {x}; confidence = share of resampled curves)"))
    for col in ("task", "metric", "label", "conf.", "sizes", "gain", "slope/decade", "break", "linearity",
                "breakthr.", "notes"):
        table.add_column(col, overflow="fold")
    for c in results:
        d = c.diagnostics
        brk = "-" if "break_between" not in d else "{:.3g}–{:.3g}".format(*d["break_between"])
        table.add_row(c.task, c.metric, c.label, f"{c.confidence:.2f}", str(len(d["sizes"])) + ("*" if d["few_points"] else ""),
                      f"{d['gain']:+.3g}", f"{d['slope_per_decade']:+.3g}", brk, f"{d['linearity']:.2f}",
                      f"{d['breakthroughness']:.2f}", escape("; ".join(c.notes)))
    return table


def cmd_classify(args: argparse.Namespace) -> int:
    import json

    from harness.scaling import LABELS, metric_artifacts

    _, done, skipped = load_classified(args)
    results = [c for _, c in done]
    artifacts = {(a.task, a.discontinuous[0]): a.message for a in metric_artifacts(results)}
    if args.json:
        rows = [{**c.to_dict(), "metric_artifact": artifacts.get((c.task, c.metric))} for c in results]
        print(json.dumps(rows, indent=1, default=float))
        return 0
    out.print(labels_table(results, args.x))
    for metric in sorted({c.metric for c in results}):  # the share of tasks in each category, per metric
        cs = [c for c in results if c.metric == metric]
        share = {lab: sum(c.label == lab for c in cs) for lab in LABELS}
        out.print(f"{metric}: {len(cs)} task(s): " + ", ".join(f"{lab} {n} ({n / len(cs):.0%})"
                                                              for lab, n in share.items() if n))
    for msg in (f"{task}: {m}" for (task, _), m in artifacts.items()):
        out.print(f"metric artifact? {escape(msg)}")
    for msg in skipped:
        console.print(f"skipped: {msg}", markup=False)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import build_report

    res, done, skipped = load_classified(args)
    path = build_report(res, done, Path(args.out))
    for msg in skipped:
        console.print(f"skipped: {msg}", markup=False)
    out.print(f"report: {path}  ({len(done)} curves; figures in {path.parent / 'figures'})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import SUITE, compare

    run_b = args.results
    loaded = []
    for path in (args.run_a, run_b):
        args.results = path
        loaded.append(load_classified(args))
    (res_a, a, _), (res_b, b, _) = loaded
    cmp = compare(res_a, res_b, a, b)
    if not cmp.labels:
        raise HarnessError("the two results share no task and metric", source=f"{args.run_a} vs {run_b}")
    table = Table(title=escape(f"B − A  (A = {args.run_a}, B = {run_b}); q = Benjamini-Hochberg over the table"))
    for col in ("task", "metric", "scope", "A", "B", "B − A", "95% CI", "p", "q", "test", "items", "verdict"):
        table.add_column(col, overflow="fold")
    shown = [d for d in cmp.differences if args.per_model or d.scope == SUITE or d.verdict != "no significant change"]
    for d in shown:
        table.add_row(d.task, d.metric, d.scope, f"{d.a:.4g}", f"{d.b:.4g}", f"{d.delta:+.4g}",
                      f"[{d.ci[0]:+.3g}, {d.ci[1]:+.3g}]", f"{d.p:.3g}", f"{d.q:.3g}", d.test, str(d.n or "-"), d.verdict)
    out.print(table)
    if len(shown) < len(cmp.differences):
        out.print(f"({len(cmp.differences) - len(shown)} per-model rows without a significant change hidden; "
                  "--per-model shows them)")
    if cmp.changed_labels:
        lt = Table(title="labels that changed")
        for col in ("task", "metric", "A", "B"):
            lt.add_column(col)
        for row in cmp.changed_labels:
            lt.add_row(*row)
        out.print(lt)
    verdicts = [d.verdict for d in cmp.differences]
    out.print(f"summary: {len(cmp.labels)} task×metric curves in both; {len(cmp.changed_labels)} label(s) changed; "
              f"{verdicts.count('better')} difference(s) significantly better in B, {verdicts.count('worse')} worse "
              f"(q < 0.05), {verdicts.count('no significant change')} not significant")
    for which, keys in (("A", cmp.only_a), ("B", cmp.only_b)):
        if keys:
            out.print(f"only in {which}: " + ", ".join(f"{t}/{m}" for t, m in keys))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description="Evaluate model families and classify scaling curves.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="evaluate every model of a config's suite on its tasks")
    r.add_argument("config")
    r.add_argument("--output", help="results directory (default: the config's output, or results/<name>)")
    r.add_argument("--limit", type=int, help="first N documents of each task")
    r.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"])
    r.add_argument("--batch-size", type=lambda s: s if s == "auto" else int(s))
    r.add_argument("--seed", type=int)
    g = r.add_mutually_exclusive_group()
    g.add_argument("--fail-fast", dest="on_error", action="store_const", const="stop",
                   help="stop at the first failing model or task")
    g.add_argument("--keep-going", dest="on_error", action="store_const", const="continue",
                   help="record failures and go on with the other models (default)")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("tasks", help="list, validate or show tasks")
    tsub = t.add_subparsers(dest="action", required=True)
    tsub.add_parser("list", help="tasks found in the task directories")
    v = tsub.add_parser("validate", help="load, validate and render task files (all, if none given)")
    v.add_argument("paths", nargs="*")
    v.add_argument("--limit", type=int, default=None)
    s = tsub.add_parser("show", help="render the first documents exactly as the model sees them")
    s.add_argument("name")
    s.add_argument("--n", type=int, default=3)
    t.set_defaults(func=cmd_tasks)

    lad = sub.add_parser("ladder", help="build or list locally trained model ladders")
    lsub = lad.add_subparsers(dest="action", required=True)
    b = lsub.add_parser("build", help="train a ladder (cached; rebuilt when its recipe changes)")
    b.add_argument("name", nargs="?", default="toy")
    b.add_argument("--force", action="store_true", help="retrain even if cached")
    lsub.add_parser("list", help="ladder models built in the cache")
    lad.set_defaults(func=cmd_ladder)
    def results_args(q: argparse.ArgumentParser, metavar: str = "RESULTS") -> None:
        q.add_argument("results", metavar=metavar,
                       help="a run folder, a folder of lm-eval results JSON, or a long-format CSV")
        q.add_argument("--x", default="params", choices=["params", "nonembedding_params", "tokens", "flops"],
                       help="scale variable (default: params)")
        q.add_argument("--metric", action="append", help="only this metric (repeatable)")
        q.add_argument("--task", action="append", help="only this task (repeatable)")
        q.add_argument("--chance", action="append", metavar="TASK=VALUE", help="chance level of a task (repeatable)")
        q.add_argument("--size", action="append", metavar="MODEL=VALUE",
                       help="x value of a model whose size is in neither the file nor its name (repeatable)")
        q.add_argument("--bootstrap", type=int, default=400, help="resamples for the confidence (default 400)")

    c = sub.add_parser("classify", help="label each task's scaling curve, with a confidence")
    results_args(c)
    c.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    c.set_defaults(func=cmd_classify)

    rp = sub.add_parser("report", help="write a self-contained HTML report with figures")
    results_args(rp)
    rp.add_argument("--out", required=True, help="folder for index.html and figures/")
    rp.set_defaults(func=cmd_report)

    cp = sub.add_parser("compare", help="differences between two results with paired tests, and label changes")
    cp.add_argument("run_a", metavar="RUN_A", help="the baseline (A); same kinds of source as RUN_B")
    results_args(cp, "RUN_B")
    cp.add_argument("--per-model", action="store_true", help="show every per-model row, not only significant ones")
    cp.set_defaults(func=cmd_compare)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as err:
        console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except OSError as exc:  # disk full, permissions: earlier results stay as they were (atomic writes)
        where = f"{exc.filename}: " if exc.filename else ""
        console.print(f"error: {where}{exc.strerror or exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; completed (model, task) pairs are saved and will be reused")
        return 130


if __name__ == "__main__":
    sys.exit(main())
