"""A short kill -9 run of benchmarks/fault_injection.py, as a whole process (the full script runs 20+ trials)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fault_injection.py"


@pytest.mark.slow
def test_kill_minus_nine_then_resume_is_byte_identical(tmp_path):
    report = tmp_path / "trials.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--trials", "3", "--seed", "1", "--workdir", str(tmp_path / "w"),
                           "--json", str(report)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(report.read_text())
    assert len(results) == 3 and all(r["identical"] and r["tmp_left"] == 0 for r in results)


@pytest.mark.slow
def test_kill_minus_nine_inside_a_long_task_resumes_after_its_last_chunk(tmp_path):
    """A task of many chunks, killed once some are committed: the rerun computes only the others (its log says how
    many were reused) and every record and score is byte-identical to an uninterrupted run."""
    import os
    import signal
    import time

    from harness.testing import build_tiny_model, write_config

    work = tmp_path / "w"
    (work / "tasks").mkdir(parents=True)
    (work / "tasks" / "add.yaml").write_text(
        "name: long_add\ndataset: {generator: arithmetic, args: {digits: 3, n: 240, seed: 5}}\n"
        "prompt: \"Q: What is {{a}} + {{b}}?\\nA:\"\ntarget: '{{answer}}'\noutput: generate\n"
        "generation: {until: [\"\\n\"], max_new_tokens: 5}\nmetrics: [exact_match, target_logprob]\n")
    model = build_tiny_model(work / "models" / "llama", "llama", hidden=48)
    config = write_config(work, [model], ["long_add"], batch_size=4, chunk_size=8)  # 30 chunks
    env = {**os.environ, "HARNESS_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1"}

    def harness(output: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "harness", "run", str(config), "--output", str(output)],
                                cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    assert harness(work / "ref").wait(timeout=600) == 0
    out = work / "killed"
    proc = harness(out)
    deadline = time.monotonic() + 300
    while len(list(out.glob("models/*/*.chunks/*.jsonl"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before three chunks were committed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = len(list(out.glob("models/*/*.chunks/*.jsonl")))
    assert 3 <= stored < 30 and not list(out.glob("models/*/*.json"))  # the pair itself was not finished
    rerun = harness(out)
    log = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, log[-2000:]
    assert f"{stored} of 30 chunks" in " ".join(log.split()), log[-2000:]  # the log line may wrap
    assert "Failed to load" not in log and "_pytree" not in log  # third-party noise stays off the terminal
    def recorded(d: Path) -> dict:
        return {p.relative_to(d): p.read_bytes() for p in d.rglob("*")
                if p.is_file() and (p.suffix == ".jsonl" or p.name == "scores.csv")}

    assert recorded(out) == recorded(work / "ref") and len(recorded(out)) == 2  # no chunk files left in either
    assert not list(out.rglob(".tmp-*"))
