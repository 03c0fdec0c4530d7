"""How much of the installed lm-eval's task catalogue this harness loads and renders, and why the rest does not.

    python benchmarks/lm_eval_coverage.py            # every task YAML of the installed lm-eval
    python benchmarks/lm_eval_coverage.py --top 40   # more refusal reasons

For every task (every YAML under lm-eval's ``tasks/`` that names a task): does it load (its spec builds: no
unknown ``!function``, a supported output type and metrics), and does it render: its documents built with
lm-eval's rules on synthetic rows (no dataset is downloaded). A synthetic row has every field the task's
templates name, each a string that also behaves as a list of four such strings, a mapping and an index, so
``{{choices.text}}``, ``{{question}}`` and ``{{choices.label.index(answerKey)}}`` all render; a task whose
templates need a specific shape (a number field compared to a value, a nested schema) can fail here and still
run on its real data: those are counted apart ("loads, needs real rows to render"). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

ITEMS = ["alpha", "beta", "gamma", "delta"]


class Anything(str):
    """A string that is also a list of four strings, a mapping and an index (see the module docstring)."""

    def __new__(cls, text: str = "['alpha', 'beta', 'gamma', 'delta']") -> Anything:
        return super().__new__(cls, text)

    def __getattr__(self, name: str) -> Anything:
        if name.startswith("_"):
            raise AttributeError(name)
        return Anything()

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, int):
            return Anything(ITEMS[key % 4])
        if isinstance(key, slice):
            return Anything(str.__getitem__(self, key) or "alpha")
        return Anything()

    def __iter__(self):  # type: ignore[override]
        return iter([Anything(x) for x in ITEMS])

    def __len__(self) -> int:
        return 4

    def index(self, *args: Any) -> int:  # type: ignore[override]
        return 0


def fields(cfg: dict[str, Any]) -> set[str]:
    """The names a task's templates and field references read."""
    from jinja2 import Environment, meta

    names: set[str] = set()
    env = Environment()
    values = [cfg.get(k) for k in ("doc_to_text", "doc_to_target", "doc_to_choice", "description", "gen_prefix")]
    values += [(cfg.get("fewshot_config") or {}).get(k) for k in ("doc_to_text", "doc_to_target", "doc_to_choice")]
    for v in values:
        if isinstance(v, str) and not v.startswith("!function"):
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
                names.add(v)
            try:
                names |= meta.find_undeclared_variables(env.parse(v))
            except Exception:
                pass
    return names


def kind(reason: str) -> str:
    """The refusal's kind: what the issue's goal excludes (Python functions, unsupported metrics or output types,
    sampling), or "other" (what a task without those should never hit)."""
    for key, label in (("Python function", "needs a Python function"), ("metric ", "unsupported metric"),
                       ("filter ", "unsupported filter"), ("output_type", "unsupported output type"),
                       ("sampled generation", "sampled generation"), ("custom result processing", "Python processing"),
                       ("Python-defined", "Python processing"), ("Python dataset", "Python processing"),
                       ("promptsource", "promptsource prompts"), ("images", "images or audio"), ("audio", "images or audio"),
                       ("sampler", "unsupported few-shot sampler")):
        if key in reason:
            return label
    return f"other ({reason})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top", type=int, default=25, help="refusal reasons to print")
    ap.add_argument("--limit", type=int, default=0, help="check only the first N tasks (0: all)")
    args = ap.parse_args()

    from harness.errors import HarnessError
    from harness.tasks import lm_eval, lm_eval_docs, prepare
    from harness.tasks.schema import parse_task_dict

    t0 = time.perf_counter()
    rows = lm_eval.catalogue()
    if args.limit:
        rows = rows[: args.limit]
    t_catalogue = time.perf_counter() - t0
    current: dict[str, Any] = {}

    def synthetic(ref: Any, split: str, path: Path) -> list[dict[str, Any]]:
        row = {name: Anything() for name in current["fields"]}
        for name in ("label", "answer", "gold"):
            row.setdefault(name, Anything())
        return [dict(row) for _ in range(6)]

    lm_eval_docs._split = synthetic  # no dataset is downloaded: every split is six synthetic rows
    loads = [r for r in rows if r["problem"] is None]
    rendered, render_fail = 0, Counter()
    t1 = time.perf_counter()
    for r in loads:
        path = Path(r["path"])
        cfg = lm_eval.read_config(path)
        current["fields"] = fields(cfg)
        try:
            spec = lm_eval.spec(r["name"], {k: v for k, v in cfg.items() if k not in ("tag", "group")}, path, {})
            (task,) = parse_task_dict(spec, path)
            prepare(task, limit=2)
            rendered += 1
        except Exception as err:  # any failure counts, by kind
            message = err.message if isinstance(err, HarnessError) else f"{type(err).__name__}: {err}"
            render_fail[re.sub(r"row \d+", "row N", message.split(" (")[0])[:90]] += 1
    t_render = time.perf_counter() - t1
    print(f"{len(rows):,} lm-eval task YAMLs (lm-eval in {', '.join(map(str, lm_eval.roots()))})")
    print(f"  load here: {len(loads):,} ({len(loads) / len(rows):.0%}); render on synthetic rows: {rendered:,} "
          f"({rendered / len(rows):.0%}); load but need real rows to render: {len(loads) - rendered:,}")
    print(f"  catalogue {t_catalogue:.1f}s (cached after the first run), rendering {t_render:.1f}s")
    outputs = Counter(r["output"] for r in loads)
    print("  loaded, by output type: " + ", ".join(f"{k} {v:,}" for k, v in outputs.most_common()))
    kinds = Counter(kind(r["reason"]) for r in rows if r["reason"])
    print(f"\nwhy {len(rows) - len(loads):,} do not load, by kind: " + "; ".join(f"{k} {n:,}" for k, n in kinds.most_common()))
    print(f"\nwhy {len(rows) - len(loads):,} do not load (top {args.top}):")
    for reason, n in Counter(r["reason"] for r in rows if r["reason"]).most_common(args.top):
        print(f"  {n:6,}  {reason}")
    print(f"\nwhy {len(loads) - rendered:,} loaded tasks do not render on synthetic rows (top {args.top}):")
    for reason, n in render_fail.most_common(args.top):
        print(f"  {n:6,}  {reason}")


if __name__ == "__main__":
    main()
