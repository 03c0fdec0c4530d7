"""The packaged ``bigbench_emergent`` config end to end on a suite of tiny local models (no hub): run, classify
with the keyword table, and the HTML report, timed.

    harness bigbench fetch                      # once
    python benchmarks/bigbench_emergent_tiny.py --limit 50 --out /tmp/bb-emergent

The suite is four randomly initialised Llama-shaped models (hidden 16, 32, 64, 128; byte-level BPE), so the
labels say nothing about BIG-bench: this checks that every stage runs on the real tasks and how long it takes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from harness.cli import main as harness
from harness.config import load_config, resolve_config
from harness.testing import build_tiny_model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=50, help="documents per (sub)task (0: all)")
    p.add_argument("--out", type=Path, default=Path("bigbench-emergent-tiny"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    suite = [{"model": str(build_tiny_model(args.out / "models" / f"h{h}", "llama", hidden=h, layers=2))}
             for h in (16, 32, 64, 128)]
    tasks = load_config(resolve_config("bigbench_emergent")).tasks
    config = args.out / "config.yaml"
    config.write_text(yaml.safe_dump({"name": "bigbench-emergent-tiny", "suite": suite, "tasks": tasks,
                                      "run": {"device": "cpu", "dtype": "float32", "seed": 1234},
                                      "output": str(args.out / "results")}))
    timings = {}
    steps = {"run": ["run", str(config), *(["--limit", str(args.limit)] if args.limit else [])],
             "classify": ["classify", str(args.out / "results"), "--by", "keyword"],
             "report": ["report", str(args.out / "results"), "--out", str(args.out / "report")]}
    for step, argv in steps.items():
        t0 = time.perf_counter()
        code = harness(argv)
        timings[step] = time.perf_counter() - t0
        if code != 0:
            print(f"{step} failed ({code})", file=sys.stderr)
            return code
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
