"""Scale-out on Ray, measured: one suite run as a whole `harness run` process by the local executor with one torch
thread, then by the Ray executor on a cluster the run starts on this machine with 1 and with 2 CPUs (one worker of
one torch thread each). Printed: wall times, speedups, whether the three results folders hold the same bytes
(records and scores.csv), and Ray's fixed costs measured on their own (starting a cluster; a worker process
started and its imports done). Not part of the test suite.

    python benchmarks/ray_scaling.py                      # 6 Llama-shape models (12 layers, width 512-1152) × 2 toy tasks
    python benchmarks/ray_scaling.py --models 4 --layers 8 --limit 150

Each run starts from an empty results folder; models are built (random weights, BPE tokenizer trained offline) in a
temporary folder first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WIDTHS = [512, 640, 768, 896, 1024, 1152]


def timed_run(cfg: Path, out: Path, executor: str) -> float:
    """Wall seconds of ``harness run`` as its own process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness", "run", str(cfg), "--output", str(out), "--executor", executor],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def fixed_costs() -> tuple[float, float]:
    """Seconds to start a 2-CPU Ray cluster, then to have one worker process started with its imports done."""
    import logging

    import ray

    from harness.runner.cluster import ScoreWorker

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    t1 = time.perf_counter()
    worker = ray.remote(ScoreWorker).options(num_cpus=1).remote()
    ray.get(worker.warm_up.remote())
    t2 = time.perf_counter()
    ray.shutdown()
    return t1 - t0, t2 - t1


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
        walls, outs = {}, {}
        for label, executor, cpus in [("local, 1 thread", "local", 1), ("ray, 1 worker", "ray", 1),
                                      ("ray, 2 workers", "ray", 2)]:
            cfg = root / f"suite{cpus}.yaml"
            cfg.write_text(yaml.safe_dump({"name": "scale", "suite": [{"model": str(m)} for m in models],
                                           "tasks": args.tasks.split(","),
                                           "run": {"device": "cpu", "ray": {"num_cpus": cpus},
                                                   **({"limit": args.limit} if args.limit else {})}}))
            outs[label] = root / label.replace(" ", "_").replace(",", "")
            walls[label] = timed_run(cfg, outs[label], executor)
            print(f"{label:<16} {walls[label]:7.1f} s", flush=True)
        base = walls["local, 1 thread"]
        for label in ("ray, 1 worker", "ray, 2 workers"):
            print(f"speedup {label}: {base / walls[label]:.2f}× vs local")
        print(f"2 workers vs 1 worker: {walls['ray, 1 worker'] / walls['ray, 2 workers']:.2f}×")
        snaps = [snapshot(out) for out in outs.values()]
        print(f"identical bytes in all three results folders: {snaps[0] == snaps[1] == snaps[2]} "
              f"({len(snaps[0])} files)")
        start, worker = fixed_costs()
        print(f"Ray's fixed costs: a 2-CPU cluster started in {start:.1f} s; a worker process with its imports "
              f"done {worker:.1f} s later")


if __name__ == "__main__":
    main()
