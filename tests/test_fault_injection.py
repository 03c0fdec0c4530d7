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
