"""``harness classify | report | compare``: label scaling curves, draw them, and compare two results."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from rich.table import Table

from harness.cli.console import console, out, safe, whole
from harness.errors import HarnessError
from harness.store import X_COLUMNS, display_name


def _pairs(values: Optional[list[str]], flag: str, low: float, high: float) -> dict[str, float]:
    """``NAME=NUMBER`` options into a dict, each number finite and in [low, high]; a one-line error otherwise."""
    parsed = {}
    for item in values or []:
        name, sep, number = item.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            value = float(number)
        except ValueError:
            raise HarnessError(f"expected NAME=NUMBER, got {item!r}", where=flag) from None
        if not low <= value <= high:  # also refuses nan and inf
            raise HarnessError(f"{item!r}: the number must be between {low:g} and {high:g}", where=flag)
        parsed[name] = value
    return parsed


def _load(paths: Sequence[str], args: argparse.Namespace, named: bool = True) -> Any:
    """One source, or several read side by side (each a family unless its rows name one); ``named``: apply
    ``--family NAME=PATH``."""
    from harness.analysis import load_classified

    families = {}
    for item in (getattr(args, "family", None) or []) if named else []:
        name, sep, where = item.partition("=")
        if not sep or not name or not where:
            raise HarnessError(f"expected NAME=PATH, got {item!r}", where="--family")
        families[name] = where
    return load_classified([Path(p) for p in paths], sizes=_pairs(args.size, "--size", 1e-300, 1e300), x=args.x,
                           metrics=args.metric, tasks=args.task, chance=_pairs(args.chance, "--chance", 0.0, 1.0),
                           bootstrap=args.bootstrap, families=families)


def labels_table(classifications: Sequence[Any], x: str) -> Table:
    """One row per curve: label, confidence and the key diagnostics."""
    table = Table(title=safe(f"scaling labels (x = {x}; confidence = share of resampled curves)"))
    for col in ("task", "metric", "label", "conf.", "sizes", "gain", "slope/decade", "break", "linearity",
                "breakthr.", "notes"):
        table.add_column(col, overflow="fold")
    for c in classifications:
        d = c.diagnostics
        brk = "-" if d.break_between is None else "{:.3g}–{:.3g}".format(*d.break_between)
        table.add_row(safe(c.name), safe(c.metric), c.label, f"{c.confidence:.2f}",
                      str(len(d.sizes)) + ("*" if d.few_points else ""), f"{d.gain:+.3g}",
                      f"{d.slope_per_decade:+.3g}", brk, f"{d.linearity:.2f}", f"{d.breakthroughness:.2f}",
                      safe("; ".join(c.notes)))
    return table


def print_artifacts(classifications: Sequence[Any]) -> None:
    """One line per task whose discontinuous and continuous metrics disagree (Schaeffer et al.'s question)."""
    from harness.analysis import metric_artifacts

    messages = {(a.task, a.discontinuous[0]): a.message for a in metric_artifacts(classifications)}
    for (key, _), msg in messages.items():
        out.print(safe(f"metric artifact? {key[0] + (f' ({key[1]})' if key[1] else '')}: {msg}"))


def _print_skipped(classified: Any, families: Optional[Sequence[str]] = None) -> None:
    """What the analysis left out: models without a value on the x axis (of ``families``: all by default), curves
    with too few sizes."""
    for family, msg in classified.results.left_out.items():
        if families is None or family in families:
            console.print(f"note: {msg}", markup=False)
    for msg in classified.results.axis_notes:
        console.print(f"note: {msg}", markup=False)
    for msg in classified.skipped:
        console.print(f"skipped: {msg}", markup=False)


def cmd_classify(args: argparse.Namespace) -> int:
    from harness.analysis import LABELS, across_families, by_family, by_keyword, metric_artifacts

    classified = _load(args.results, args)
    classifications = classified.classifications
    if args.json:
        _print_skipped(classified)  # on stderr
        artifacts = {(a.task, a.discontinuous[0]): a.message for a in metric_artifacts(classifications)}
        rows = [{**c.to_dict(), "metric_artifact": artifacts.get((c.key, c.metric))} for c in classifications]
        print(json.dumps(rows, indent=1, default=float))
        return 0
    out.print(labels_table(classifications, args.x))
    for metric in sorted({c.metric for c in classifications}):  # the share of tasks in each category, per metric
        cs = [c for c in classifications if c.metric == metric]
        share = {lab: sum(c.label == lab for c in cs) for lab in LABELS}
        out.print(safe(f"{metric}: {len(cs)} task(s): ") + ", ".join(f"{lab} {n} ({n / len(cs):.0%})"
                                                                      for lab, n in share.items() if n))
    print_artifacts(classifications)
    if any(c.family for c in classifications):
        for metric in sorted({c.metric for c in classifications}):
            out.print(family_table([c for c in classifications if c.metric == metric], metric))
        for line in across_families(classifications):
            out.print(safe(line))
    if args.by == "keyword":
        out.print(category_table(by_keyword(classified), "task keyword"))
    elif args.by == "family":
        out.print(category_table(by_family(classifications), "family"))
    _print_skipped(classified)
    return 0


def family_table(classifications: Sequence[Any], metric: str) -> Table:
    """One metric's labels side by side: a row per task, a column per family (label and confidence)."""
    families = sorted({c.family for c in classifications})
    table = Table(title=safe(f"{metric}: label (confidence) per family"))
    table.add_column("task")
    for f in families:
        table.add_column(safe(f))
    cells: dict[str, dict[str, str]] = {}
    for c in classifications:
        cells.setdefault(display_name(c.base_task, c.aggregate), {})[c.family] = f"{c.label} ({c.confidence:.2f})"
    for task, row in sorted(cells.items()):
        table.add_row(safe(task), *[safe(row.get(f, "-")) for f in families])
    return table


def category_table(counts: dict[tuple[str, str], Any], by: str) -> Table:
    """Per ``by`` value (a family, a task keyword) and metric, the share of tasks in each scaling category (the
    table Wei et al. draw)."""
    from harness.analysis import LABELS

    table = Table(title=f"scaling categories by {by} (share of tasks)")
    for col in (by, "metric", "tasks", *LABELS):
        table.add_column(col, justify="left" if col in (by, "metric") else "right")
    for (key, metric), c in sorted(counts.items()):
        n = sum(c.values())
        table.add_row(safe(key), safe(metric), str(n), *[f"{c[lab] / n:.0%}" if c[lab] else "" for lab in LABELS])
    return table


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import build_report

    classified = _load(args.results, args)
    path = build_report(classified, Path(args.out))
    _print_skipped(classified)
    out.print(safe(f"report: {path}  ({len(classified.curves)} curves; figures in {path.parent / 'figures'})"))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.analysis import compare
    from harness.analysis.comparison import SUITE

    if args.families:
        return _compare_families(_load(args.results, args), *args.families)
    if len(args.results) != 2:
        raise HarnessError(f"{len(args.results)} results given: compare takes two (A and B), or any number with "
                           "--families A B", where="compare")
    run_a, run_b = args.results
    a, b = _load([run_a], args, named=False), _load([run_b], args, named=False)
    if not set(a.results.scores["model"]) & set(b.results.scores["model"]):  # two families: compare at matched x
        both = _load(args.results, args)
        names = [sorted(set(part.scores["family"])) for part in both.results.parts]
        if len(names[0]) == len(names[1]) == 1 and names[0] != names[1]:
            return _compare_families(both, names[0][0], names[1][0])
    cmp = compare(a, b)
    table = Table(title=safe(f"B − A  (A = {run_a}, B = {run_b}); q = Benjamini-Hochberg over the table"))
    for col in ("task", "metric", "scope", "A", "B", "B − A", "95% CI", "p", "q", "test", "items", "verdict"):
        table.add_column(col, overflow="fold")
    shown = [d for d in cmp.differences if args.per_model or d.scope == SUITE or d.verdict != "no significant change"]
    for d in shown:
        table.add_row(safe(d.name), safe(d.metric), safe(d.scope), f"{d.a:.4g}", f"{d.b:.4g}", f"{d.delta:+.4g}",
                      f"[{d.ci[0]:+.3g}, {d.ci[1]:+.3g}]", f"{d.p:.3g}", f"{d.q:.3g}", d.test, str(d.n or "-"),
                      d.verdict)
    out.print(table)
    if len(shown) < len(cmp.differences):
        out.print(f"({len(cmp.differences) - len(shown)} per-model rows without a significant change hidden; "
                  "--per-model shows them)")
    if cmp.changed_labels:
        lt = Table(title="labels that changed")
        for col in ("task", "metric", "A", "B"):
            lt.add_column(col)
        for row in cmp.changed_labels:
            lt.add_row(safe(row.name), safe(row.metric), row.a, row.b)
        out.print(lt)
    verdicts = [d.verdict for d in cmp.differences]
    out.print(f"summary: {len(cmp.labels)} task×metric curves in both; {len(cmp.changed_labels)} label(s) changed; "
              f"{verdicts.count('better')} difference(s) significantly better in B, {verdicts.count('worse')} worse "
              f"(q < 0.05), {verdicts.count('no significant change')} not significant")
    for which, keys in (("A", cmp.only_a), ("B", cmp.only_b)):
        if keys:
            out.print(safe(f"only in {which}: " + ", ".join(f"{t}{f' ({a})' if a else ''}/{m}" for t, a, m in keys)))
    for (task, model), count in sorted(cmp.mismatched.items()):
        console.print("[yellow]WARNING[/] " + safe(f"{task} / {model}: {count} document id(s) name different rows in "
                      "A and B (the data changed or was reordered); only identical rows are paired"), soft_wrap=True)
    return 0


def _compare_families(classified: Any, family_a: str, family_b: str) -> int:
    """Two families on the tasks both have: labels, and B − A at matched x where it is beyond noise."""
    from harness.analysis.comparison import compare_families

    cmp = compare_families(classified, family_a, family_b)
    x = classified.curves[0].curve.x_name
    table = Table(title=safe(f"family B − family A at matched {x} (A = {family_a}, B = {family_b}; each curve "
                             f"interpolated on log {x}; q = Benjamini-Hochberg over the table)"))
    for col in ("task", "metric", "A", "B", f"common {x}", "matched", "largest B − A", "at", "verdict"):
        table.add_column(col, overflow="fold")
    for c in cmp.contrasts:
        top = max(c.points, key=lambda p: abs(p.delta), default=None)
        table.add_row(safe(c.name), safe(c.metric), f"{c.a.label} ({c.a.confidence:.2f})",
                      f"{c.b.label} ({c.b.confidence:.2f})",
                      f"{c.points[0].x:.3g}–{c.points[-1].x:.3g}" if c.points else "-", str(len(c.points)),
                      "-" if top is None else f"{top.delta:+.4g}" + ("" if top.se != top.se else f" ± {1.96 * top.se:.2g}"),
                      "-" if top is None else f"{top.x:.3g}", c.verdict)
    out.print(table)
    apart = sum(bool(c.differing) for c in cmp.contrasts)
    out.print(safe(f"summary: {len(cmp.contrasts)} task×metric curves in both families; "
                   f"{sum(c.a.label != c.b.label for c in cmp.contrasts)} with different labels; {apart} differ beyond "
                   f"noise at some matched {x} (q < 0.05)"))
    _print_skipped(classified, (family_a, family_b))
    for which, keys in ((family_a, cmp.only_a), (family_b, cmp.only_b)):
        if keys:
            out.print(safe(f"only in {which}: " + ", ".join(f"{t}{f' ({a})' if a else ''}/{m}" for t, a, m in keys)))
    return 0


def cmd_decompose(args: argparse.Namespace) -> int:
    from harness.analysis.decompose import decompose
    from harness.analysis.results import load_results

    res = load_results(Path(args.results), x=args.x)
    d = decompose(res, args.task, args.metric, x=args.x)
    if args.json:
        print(json.dumps(_decomposition_json(d), indent=1))
        return 0
    table = Table(title=safe(f"{d.task}: {d.metric} against its {d.length} steps (teacher-forced token accuracy)"))
    for col in (args.x, "models", "docs", d.metric, *[f"step {i + 1}" for i in range(d.length)], "product",
                "all steps", "gap"):
        table.add_column(col, justify="right")
    for row in d.rows:
        a = row.all
        table.add_row(f"{row.x:,.0f}", str(len(row.models)), str(a.n), f"{a.composite:.3f}",
                      *[f"{v:.3f}" for v in a.steps], f"{a.product:.3f}", f"{a.joint:.3f}", f"{a.gap:+.3f}")
    out.print(table)
    for name in dict.fromkeys(k for row in d.rows for k in row.slices):
        st = Table(title=safe(f"slice '{name}': {d.metric} (product of steps) per value"))
        values = list(dict.fromkeys(v for row in d.rows for v in row.slices.get(name, {})))
        st.add_column(args.x, justify="right")
        for v in values:
            st.add_column(safe(v), justify="right")
        for row in d.rows:
            parts = row.slices.get(name, {})
            st.add_row(f"{row.x:,.0f}", *[f"{parts[v].composite:.3f} ({parts[v].product:.3f}) n={parts[v].n}"
                                          if v in parts else "-" for v in values])
        out.print(st)
    if d.excluded:
        out.print(f"{d.excluded} document(s) with another answer length left out")
    return 0


def _decomposition_json(d: Any) -> dict:
    def part(p: Any) -> dict:
        return {"n": p.n, "composite": p.composite, "steps": p.steps, "product": p.product, "all_steps": p.joint,
                "gap": p.gap}
    return {"task": d.task, "metric": d.metric, "x": d.x_name, "steps": d.length, "excluded": d.excluded,
            "sizes": [{"x": r.x, "models": r.models, **part(r.all),
                       "slices": {k: {v: part(p) for v, p in vals.items()} for k, vals in r.slices.items()}}
                      for r in d.rows]}


def cmd_forecast(args: argparse.Namespace) -> int:
    from harness.analysis.forecast import forecasts
    from harness.analysis.results import load_results

    res = load_results(Path(args.results), x=args.x)
    rows = forecasts(res, args.task, args.metric, x=args.x, threshold=args.threshold, fit_below=args.fit_below,
                     bootstrap=args.bootstrap)
    if args.json:
        print(json.dumps([{**vars(f), "error_log10": f.error_log10, "within_bracket": f.within_bracket}
                          for f in rows], indent=1))
        return 0
    f0 = rows[0]
    table = Table(title=safe(f"{f0.task}: where {f0.metric} crosses {f0.threshold:.3g} (p^{f0.length} from "
                               f"per-step accuracy fitted below the crossing; 90% interval)"))
    for col in ("curve", "fit sizes", "predicted", "interval", "observed", "between sizes", "error (decades)"):
        table.add_column(col, justify="right")
    for f in rows:
        err = f.error_log10
        table.add_row(safe(f.which), ", ".join(f"{s:,.3g}" for s in f.fit_sizes),
                      "none" if f.predicted is None else f"{f.predicted:,.3g}",
                      f"{f.interval[0]:,.3g}–{f.interval[1]:,.3g}",
                      "not crossed" if f.observed is None else f"{f.observed:,.3g}",
                      "-" if f.bracket is None else f"{f.bracket[0]:,.3g}–{f.bracket[1]:,.3g}"
                      + {None: "", True: " (in)", False: " (out)"}[f.within_bracket],
                      "-" if err is None else f"{err:+.2f}")
    out.print(table)
    return 0


def _results_args(q: argparse.ArgumentParser, several: str = "") -> None:
    """The options every analysis command shares; ``several``: how several sources are read (else one)."""
    what = "a run folder, a folder of lm-eval results JSON, or a long-format CSV"
    if several:
        q.add_argument("results", metavar="RESULTS", nargs="+", help=f"{what}; {several}")
        q.add_argument("--family", action="append", metavar="NAME=PATH",
                       help="the family of the models in one of the sources (default: the source's name)")
    else:
        q.add_argument("results", metavar="RESULTS", help=what)
    q.add_argument("--x", default="params", choices=X_COLUMNS,
                   help="scale variable (default: params)")
    q.add_argument("--metric", action="append", help="only this metric (repeatable)")
    q.add_argument("--task", action="append", help="only this task (repeatable)")
    q.add_argument("--chance", action="append", metavar="TASK=VALUE", help="chance level of a task (repeatable)")
    q.add_argument("--size", action="append", metavar="MODEL=VALUE",
                   help="x value of a model whose size is in neither the file nor its name (repeatable)")
    q.add_argument("--bootstrap", type=whole(1, 10_000), default=400, help="resamples for the confidence (default 400)")


def add_parsers(sub: Any) -> None:
    side_by_side = "several are read side by side, each a model family unless its rows name one"
    c = sub.add_parser("classify", help="label each task's scaling curve, with a confidence")
    _results_args(c, side_by_side)
    c.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    c.add_argument("--by", choices=["keyword", "family"],
                   help="also the share of tasks per category for each task keyword, or for each model family")
    c.set_defaults(func=cmd_classify)

    rp = sub.add_parser("report", help="write a self-contained HTML report with figures")
    _results_args(rp, side_by_side)
    rp.add_argument("--out", required=True, help="folder for index.html and figures/")
    rp.set_defaults(func=cmd_report)

    dp = sub.add_parser("decompose", help="a task's discontinuous metric beside its steps and slices, per size")
    dp.add_argument("results", metavar="RESULTS", help="a run folder of this harness")
    dp.add_argument("--task", required=True)
    dp.add_argument("--metric", help="the composite (default: the task's first discontinuous metric)")
    dp.add_argument("--x", default="params", choices=X_COLUMNS)
    dp.add_argument("--json", action="store_true")
    dp.set_defaults(func=cmd_decompose)

    fp = sub.add_parser("forecast", help="predict where a discontinuous metric jumps from its per-step accuracy "
                        "on the smaller models, with a back-test against where it did")
    fp.add_argument("results", metavar="RESULTS", help="a run folder of this harness")
    fp.add_argument("--task", required=True)
    fp.add_argument("--metric", help="the discontinuous metric (default: the task's first)")
    fp.add_argument("--x", default="params", choices=X_COLUMNS)
    fp.add_argument("--threshold", type=float, help="the crossing (default: halfway from chance to the ceiling)")
    fp.add_argument("--fit-below", type=float, help="fit on sizes below this x (default: sizes before the crossing)")
    fp.add_argument("--bootstrap", type=whole(1, 10_000), default=400, help="resamples for the interval (default 400)")
    fp.add_argument("--json", action="store_true")
    fp.set_defaults(func=cmd_forecast)

    cp = sub.add_parser("compare", help="differences between two results with paired tests, and label changes; "
                        "two model families at matched x")
    _results_args(cp, "A (the baseline) then B; two results without a model in common are two families, compared "
                  "at matched x; with --families, any number of sources")
    cp.add_argument("--families", nargs=2, metavar=("A", "B"),
                    help="compare these two families of the results given, at matched x (curves interpolated on log x)")
    cp.add_argument("--per-model", action="store_true", help="show every per-model row, not only significant ones")
    cp.set_defaults(func=cmd_compare)
