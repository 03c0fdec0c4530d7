"""The wheel is whole: a non-editable install, run from an empty folder, has the toy tasks and the packaged
quickstart config (the checkout's top-level tasks/ and configs/, mapped in as package data), and nothing of the
checkout on its path; from the checkout, `harness run configs/quickstart.yaml` names the same config."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(ROOT)], check=True, timeout=300)
    (wheel,) = dist.glob("scaling_harness-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"harness/_data/tasks/toy/toy_add.yaml", "harness/_data/tasks/toy/toy_add_choice.yaml",
            "harness/_data/configs/quickstart.yaml", "harness/report/template.html"} <= names  # tasks/, configs/ mapped in
    assert not any(n.startswith(("tasks/", "configs/")) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py, harness = venv / "bin" / "python", venv / "bin" / "harness"
    # the dependencies come from the site-packages of the interpreter running the tests (a venv's, or the system's:
    # --system-site-packages would reach the base interpreter's only); their .pth files are not run, so the checkout's
    # editable install stays out
    inner = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                           text=True, check=True).stdout.strip()
    outer = [*site.getsitepackages(), site.getusersitepackages()]
    (Path(inner) / "_test_dependencies.pth").write_text("".join(f"{d}\n" for d in outer if Path(d).is_dir()))
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   timeout=300)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HARNESS_TASKS_PATH")}
    env["HARNESS_CACHE"] = str(tmp_path / "cache")

    def call(*args: str) -> str:
        proc = subprocess.run(args, cwd=empty, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    where = call(str(py), "-c", "import harness; print(harness.__file__)").strip()
    assert Path(where).is_relative_to(venv), where  # the installed copy, not the checkout
    listed = call(str(harness), "tasks", "list")
    assert "toy_add" in listed and "toy_add_choice" in listed and str(ROOT) not in listed
    shown = [json.loads(line) for line in call(str(harness), "tasks", "show", "toy_add_choice", "--n", "2",
                                               "--json").splitlines()]
    assert [s["doc_id"] for s in shown] == [0, 1] and all(len(s["continuations"]) == 4 for s in shown)
    config = call(str(py), "-c", "from harness.config import load_config, resolve_config; "
                  "c = load_config(resolve_config('quickstart')); print(c.name, c.suite.ladder, c.tasks)")
    assert config.split()[:2] == ["quickstart", "toy"]
    assert "harness" in call(str(harness), "--version")
