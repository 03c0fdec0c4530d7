"""A short kill -9 run of benchmarks/fault_injection.py (the full script runs 20+ trials)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fault_injection.py"


@pytest.mark.slow
def test_kill_minus_nine_then_resume_is_byte_identical(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("fault_injection", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.chdir(tmp_path)
    results = module.main(trials=3, seed=1, workdir=tmp_path)
    assert len(results) == 3 and all(r["identical"] and r["tmp_left"] == 0 for r in results)
