"""The run's manifest: the config as resolved, package versions, git commit, seeds, models and task hashes."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any, Optional

from harness.config import ExperimentConfig
from harness.models.suite import ModelMeta, ModelSpec
from harness.runner.execute import Failure
from harness.store import SCORING_VERSION, Manifest, ManifestTask
from harness.tasks.prepared import AnyPrepared

PACKAGES = ("scaling-harness", "torch", "transformers", "tokenizers", "datasets", "accelerate", "numpy", "pandas")


def package_versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> Any:
    """The commit of the checkout the package runs from, if it runs from one."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def manifest(config: ExperimentConfig, suite: list[ModelSpec], prepared: list[AnyPrepared], models: list[ModelMeta],
             failures: list[Failure], device: str, duplicate_weights: Optional[list[list[str]]] = None) -> Manifest:
    return Manifest(
        name=config.name, config=config.model_dump(mode="json"), scoring_version=SCORING_VERSION,
        packages=package_versions(), python=platform.python_version(), git_commit=git_commit(), device=device,
        seeds={"run": config.run.seed, "fewshot": {p.task.name: p.task.spec.fewshot.seed for p in prepared}},
        suite=[m.model_dump(mode="json", exclude_none=True) for m in suite], models=[dict(m) for m in models],
        tasks=[ManifestTask(name=p.task.name, group=p.task.group, source=str(p.task.source), hash=p.task.hash,
                            prompt_hash=p.prompt_hash, n=len(p.instances), output=p.task.spec.output,
                            keywords=list(p.task.spec.keywords), preferred_metric=p.task.spec.preferred_metric,
                            canary=p.task.spec.canary or None) for p in prepared],
        failures=[vars(f) for f in failures], duplicate_weights=duplicate_weights or [],
        trust_remote_code=[s.name for s in suite if s.trust_remote_code])
