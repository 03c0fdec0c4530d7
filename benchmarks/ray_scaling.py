"""Scale-out on Ray, measured: one suite evaluated (``harness.run``, in this process: what `harness run` does before
it classifies the curves) by the local executor with one torch thread, then by the Ray executor on a cluster started
here with 1 and with 2 CPU workers (one torch thread each). Printed: wall times, speedups,
Ray's start-up (starting the cluster; then the first model loaded in a fresh worker process), and whether the three
results folders hold the same bytes (records and scores.csv). Not part of the test suite.

    python benchmarks/ray_scaling.py                       # 6 Llama-shape models (12 layers, width 512-1152) × 2 toy tasks
    python benchmarks/ray_scaling.py --models 4 --layers 8 --limit 150

Each run starts from an empty results folder; models are built (random weights, BPE tokenizer trained offline) in a
temporary folder first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

WIDTHS = [512, 640, 768, 896, 1024, 1152]


class Clock:
    """A reporter that notes when the first model finished loading."""

    def __init__(self) -> None:
        from harness.runner import Reporter

        class _Rep(Reporter):
            first: float = 0.0

            def log(self, message: str) -> None:
                if message.startswith("loaded ") and not self.first:
                    self.first = time.perf_counter()

        self.reporter = _Rep()


def timed_run(cfg: Path, out: Path, executor: str, cpus: int) -> dict[str, Any]:
    import ray
    import torch

    from harness.config import load_config
    from harness.runner import run

    torch.set_num_threads(1)
    clock = Clock()
    t0 = time.perf_counter()
    init = 0.0
    if executor == "ray":
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR")
        init = time.perf_counter() - t0
    try:
        result = run(load_config(cfg, {"output": str(out), "executor": executor}), clock.reporter)
    finally:
        if executor == "ray":
            ray.shutdown()
    wall = time.perf_counter() - t0
    assert result.computed and not result.failures, result.failures
    return {"wall": wall, "init": init, "first_loaded": clock.reporter.first - t0, "computed": result.computed}


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and (p.suffix == ".jsonl" or p.name == "scores.csv")}


def main() -> None:
    import yaml

    from harness.testing import build_tiny_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=6, help=f"models in the suite (at most {len(WIDTHS)})")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--limit", type=int, default=None, help="documents per task (default: all 300)")
    ap.add_argument("--tasks", default="toy_add,toy_add_choice")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = [build_tiny_model(root / f"llama{w}", "llama", hidden=w, layers=args.layers, seed=i)
                  for i, w in enumerate(WIDTHS[:args.models])]
        cfg = root / "suite.yaml"
        cfg.write_text(yaml.safe_dump({"name": "scale", "suite": [{"model": str(m)} for m in models],
                                       "tasks": args.tasks.split(","),
                                       "run": {"device": "cpu", **({"limit": args.limit} if args.limit else {})}}))
        runs = {}
        for label, executor, cpus in [("local, 1 thread", "local", 1), ("ray, 1 worker", "ray", 1),
                                      ("ray, 2 workers", "ray", 2)]:
            runs[label] = timed_run(cfg, root / label.replace(" ", "_").replace(",", ""), executor, cpus)
            r = runs[label]
            print(f"{label:<16} {r['wall']:7.1f} s   ({r['computed']} pairs; cluster start {r['init']:.1f} s, "
                  f"first model loaded at {r['first_loaded']:.1f} s)", flush=True)
        base = runs["local, 1 thread"]["wall"]
        for label in ("ray, 1 worker", "ray, 2 workers"):
            print(f"speedup {label}: {base / runs[label]['wall']:.2f}× vs local; excluding the cluster start "
                  f"{base / (runs[label]['wall'] - runs[label]['init']):.2f}×")
        print(f"2 workers vs 1 worker: {runs['ray, 1 worker']['wall'] / runs['ray, 2 workers']['wall']:.2f}×")
        snaps = [snapshot(root / label.replace(" ", "_").replace(",", "")) for label in runs]
        print(f"identical bytes in all three results folders: {snaps[0] == snaps[1] == snaps[2]} "
              f"({len(snaps[0])} files)")


if __name__ == "__main__":
    main()
