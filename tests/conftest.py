"""Shared fixtures: tiny causal LMs built from configs with a tokenizer trained offline (no hub)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.testing import ARCHS, MC_ROWS, MC_TASK, build_tiny_model, write_config, write_jsonl, write_toy_tasks  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {arch: build_tiny_model(root / arch, arch) for arch in ARCHS}


@pytest.fixture(scope="session")
def tiny_llama(tiny_models) -> Path:
    return tiny_models["llama"]


@pytest.fixture(scope="session")
def project(tmp_path_factory, tiny_llama) -> Path:
    """A project folder (tasks, config.yaml for tiny llama on toy_mc) with that run's results in results/t:
    the earlier results that bad input must leave byte-identical. Copy it before changing anything."""
    import yaml

    from harness.cli import main
    from harness.testing import project_config

    root = tmp_path_factory.mktemp("project")
    (root / "tasks").mkdir()
    write_jsonl(root / "tasks" / "mc.jsonl", MC_ROWS)
    (root / "tasks" / "mc.yaml").write_text(MC_TASK + "metrics: [acc, p_correct]\n")
    (root / "config.yaml").write_text(yaml.safe_dump(project_config(tiny_llama)))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["run", "config.yaml"]) == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A fresh project folder (cwd) with tasks/, data and a cache, so runs touch nothing else."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    write_toy_tasks(tmp_path / "tasks")
    return tmp_path
