"""Kill -9 `harness run` at random moments, rerun it, and check that the results are byte-identical to an
uninterrupted run, with no duplicate or missing examples and no temporary files left.

    python benchmarks/fault_injection.py --trials 20

Models are tiny and built locally (no hub). Kill times are drawn uniformly over the first 80% of the uninterrupted
run's duration, so they land in start-up, model loading, evaluation and result writes alike.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.testing import MC_ROWS, MC_TASK, build_tiny_model, write_config, write_jsonl


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and (p.suffix == ".jsonl" or p.name == "scores.csv")}


def check_records(out: Path) -> None:
    for f in out.rglob("*.jsonl"):
        ids = [json.loads(line)["doc_id"] for line in f.read_text().splitlines()]
        assert ids == list(range(len(ids))), f"duplicate or missing examples in {f}"


def harness(config: Path, output: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "run", str(config), "--output", str(output)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(trials: int = 20, seed: int = 0, workdir: Path | None = None) -> list[dict]:
    work = Path(workdir or tempfile.mkdtemp(prefix="fault-"))
    (work / "tasks").mkdir(parents=True, exist_ok=True)
    write_jsonl(work / "tasks" / "mc.jsonl", MC_ROWS * 8)
    (work / "tasks" / "mc.yaml").write_text(MC_TASK + "metrics: [acc, acc_norm, brier]\n")
    (work / "tasks" / "add.yaml").write_text(
        "name: toy_add\ndataset: {generator: arithmetic, args: {digits: 2, n: 40, seed: 3}}\n"
        "prompt: \"Q: What is {{a}} + {{b}}?\\nA:\"\ntarget: '{{answer}}'\noutput: generate\n"
        "generation: {until: [\"\\n\"], max_new_tokens: 6}\nmetrics: [exact_match, target_logprob]\n")
    models = [build_tiny_model(work / "models" / a, a, hidden=h) for a, h in (("llama", 32), ("gpt2", 64), ("neox", 48))]
    config = write_config(work, models, ["toy_mc", "toy_add"], batch_size=4)
    env = {**os.environ, "HARNESS_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
    os.chdir(work)

    t0 = time.perf_counter()
    assert harness(config, work / "ref", env).wait() == 0
    duration = time.perf_counter() - t0
    ref = snapshot(work / "ref")
    rng = random.Random(seed)
    results = []
    for trial in range(trials):
        out = work / f"trial{trial}"
        delay = rng.uniform(0.2, 0.8 * duration)  # runs vary; keep kills inside the run
        proc = harness(config, out, env)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = len(list(out.rglob("*.json"))) if out.exists() else 0
        rc = harness(config, out, env).wait()
        got = snapshot(out)
        check_records(out)
        leftovers = list(out.rglob(".tmp-*"))
        ok = rc == 0 and got == ref and not leftovers
        results.append({"trial": trial, "kill_at_s": round(delay, 2), "killed": killed,
                        "pairs_saved_before_kill": partial, "identical": got == ref, "tmp_left": len(leftovers), "ok": ok})
        print(f"trial {trial:2d}: kill at {delay:5.2f}s of {duration:.2f}s, killed={killed}, "
              f"{partial} summaries before kill -> {'OK' if ok else 'MISMATCH'}", flush=True)
    bad = [r for r in results if not r["ok"]]
    killed = sum(r["killed"] for r in results)
    print(f"{len(results) - len(bad)}/{len(results)} trials identical to the uninterrupted run "
          f"({killed} killed mid-run, the others finished before the kill)")
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, help="where models and runs go (default: a new temporary folder)")
    ap.add_argument("--json", type=Path, help="also write the per-trial results here")
    args = ap.parse_args()
    results = main(args.trials, args.seed, args.workdir)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    sys.exit(1 if any(not r["ok"] for r in results) else 0)
