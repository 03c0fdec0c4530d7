"""Does the quickstart's finding hold on another machine? Build the toy ladder under other CPU kernels
(``ATEN_CPU_CAPABILITY``), thread counts and seed sets, evaluate each build on the toy tasks, and print the
scaling labels of every build side by side.

    python benchmarks/ladder_robustness.py --out ladder-study                 # the default five builds
    python benchmarks/ladder_robustness.py --out ladder-study --build avx2:1:0,1,2 --build default:2:0,1,2

A build is KERNEL:THREADS:SEEDS. KERNEL is what PyTorch is told to use (``default`` = no vector kernels,
``avx2``, ``avx512``; a CPU without it falls back, and the table shows what ran). Each build runs in its own
process (the kernel is fixed when torch loads), with its own cache, so builds never share weights.
Takes about 6 minutes per build on 2 cores (longer without vector kernels). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

DEFAULT_BUILDS = ["avx2:1:0,1,2", "default:1:0,1,2", "avx2:2:0,1,2", "avx2:1:3,4,5", "avx2:1:6,7,8"]
SHOWN = [("toy_add", "exact_match"), ("toy_add", "target_logprob_per_token"), ("toy_add", "char_edit_distance"),
         ("toy_add_choice", "acc"), ("toy_add_choice", "brier")]


def one_build(kernel: str, threads: int, seeds: tuple[int, ...], out: Path) -> dict:
    """In this process (ATEN_CPU_CAPABILITY already set): build, evaluate, classify."""
    import torch

    from harness import ExperimentConfig, ModelSpec, run
    from harness.analysis import classify_results, load_results, metric_artifacts
    from harness.ladder import RECIPES, ensure_ladder

    recipe = replace(RECIPES["toy"], seeds=seeds, threads=threads, workers=1 if threads > 1 else 2)
    t0 = time.perf_counter()
    suite = ensure_ladder(recipe, root=out / "ladders")
    build_s = time.perf_counter() - t0
    config = ExperimentConfig(name="study", suite=[ModelSpec(model=s.model, label=s.label) for s in suite],
                              tasks=["toy_*"], run={"device": "cpu"}, output=str(out / "results"))
    run(config)
    classified = classify_results(load_results(out / "results"))
    labels = {f"{c.task}/{c.metric}": [c.label, c.confidence] for c in classified.classifications}
    artifacts = [a.message for a in metric_artifacts(classified.classifications)]
    means: dict[str, list[float]] = {}
    for curve, result in classified.curves:
        means[f"{curve.task}/{curve.metric}"] = [round(v, 3) for v in result.diagnostics["values"]]
    return {"kernel_asked": kernel, "kernel_ran": torch.backends.cpu.get_cpu_capability(), "threads": threads,
            "seeds": list(seeds), "build_seconds": round(build_s), "labels": labels, "means_per_size": means,
            "sizes": classified.curves[0].classification.diagnostics["sizes"], "artifacts": artifacts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--build", action="append", help="KERNEL:THREADS:SEEDS (repeatable)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        kernel, threads, seeds = args.one.split(":")
        result = one_build(kernel, int(threads), tuple(int(s) for s in seeds.split(",")), args.out)
        (args.out / "result.json").write_text(json.dumps(result, indent=1))
        return
    results = []
    for build in args.build or DEFAULT_BUILDS:
        kernel, threads, seeds = build.split(":")
        folder = args.out / build.replace(":", "_").replace(",", "-")
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "ATEN_CPU_CAPABILITY": kernel, "HARNESS_CACHE": str(folder / "cache")}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--out", str(folder), "--one", build], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        result = json.loads((folder / "result.json").read_text())
        results.append(result)
        print(f"{build}: ran {result['kernel_ran']}, {time.perf_counter() - t0:.0f}s; "
              + "; ".join(f"{k} {v[0]} {v[1]:.2f}" for k, v in result["labels"].items() if tuple(k.split("/")) in SHOWN),
              flush=True)
    print("\n| build (kernel ran, threads, seeds) | " + " | ".join(f"{t} {m}" for t, m in SHOWN) + " | artifact flagged |")
    print("| --- " * (len(SHOWN) + 2) + "|")
    for r in results:
        cells = [f"{r['labels'][f'{t}/{m}'][0]} {r['labels'][f'{t}/{m}'][1]:.2f}" for t, m in SHOWN]
        flagged = any("exact_match but smooth" in a for a in r["artifacts"])
        print(f"| {r['kernel_ran']}, {r['threads']}, {r['seeds']} | " + " | ".join(cells) + f" | {'yes' if flagged else 'no'} |")
    print("\nexact match per size (mean over seeds):")
    for r in results:
        print(f"  {r['kernel_ran']}, {r['threads']} threads, seeds {r['seeds']}: {r['means_per_size']['toy_add/exact_match']}")
    (args.out / "summary.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
