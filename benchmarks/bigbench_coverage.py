"""How many BIG-bench JSON tasks (and subtasks) load, render and score on a tiny model, and why the rest do not.

    harness bigbench fetch                      # once
    python benchmarks/bigbench_coverage.py --limit 3 [--json out.json]

Every (sub)task is resolved by name (``bigbench:TASK``), rendered 0-shot (and ``--num-fewshot`` shots), and its first
``--limit`` documents are scored on a tiny randomly initialised model built here (no hub), through the same
``evaluate`` the runner uses. Reasons for failures are counted by their message with names and numbers removed.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.models.causal import CausalBackend
from harness.models.suite import ModelSpec
from harness.scoring import evaluate
from harness.tasks import resolve_tasks
from harness.tasks.prepared import prepare
from harness.tasks.sources import bigbench
from harness.testing import build_tiny_model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=3, help="documents scored per (sub)task")
    p.add_argument("--num-fewshot", type=int, default=0)
    p.add_argument("--tasks", default="*", help="a glob over task names")
    p.add_argument("--json", help="write per-task outcomes here")
    args = p.parse_args()
    t0 = time.perf_counter()
    model = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny", "llama")
    backend = CausalBackend(ModelSpec(model=str(model)), device="cpu")
    outcomes: dict[str, str] = {}
    entries = [e for e in bigbench.index() if "error" not in e]
    unreadable = [e for e in bigbench.index() if "error" in e]
    for e in unreadable:
        outcomes[e["name"]] = e["error"]
    for e in entries:
        if not re.fullmatch(args.tasks.replace("*", ".*"), e["name"]):
            continue
        try:
            tasks = resolve_tasks([f"bigbench:{e['name']}"], Path.cwd())
        except HarnessError as err:
            outcomes[e["name"]] = str(err)
            continue
        for task in tasks:
            try:
                if args.num_fewshot:
                    task.spec.dataset.bigbench.num_fewshot = args.num_fewshot  # type: ignore[union-attr]
                prepared = prepare(task, args.limit)
                records = evaluate(backend, prepared)
                assert len(records) == len(prepared.instances) and all(r["metrics"] for r in records)
                outcomes[task.name] = "ok"
            except HarnessError as err:
                outcomes[task.name] = str(err)
        print(f"{e['name']}: {sum(v == 'ok' for k, v in outcomes.items() if k.startswith('bigbench.' + e['name']))}"
              f" of {len(tasks)} ok", file=sys.stderr, flush=True)
    reasons = collections.Counter(re.sub(r"\d+|'[^']*'|/\S+", "_", v) for v in outcomes.values() if v != "ok")
    ok = sum(v == "ok" for v in outcomes.values())
    parents = {k.split(".")[1] for k, v in outcomes.items() if v == "ok"}
    print(f"{ok} of {len(outcomes)} (sub)tasks load, render and score ({len(parents)} of "
          f"{len(entries) + len(unreadable)} JSON tasks fully or partly); {time.perf_counter() - t0:.0f} s")
    for reason, n in reasons.most_common():
        print(f"  {n:4d}  {reason}")
    if args.json:
        Path(args.json).write_text(json.dumps(outcomes, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
