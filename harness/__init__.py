"""scaling-harness: evaluate model families on YAML tasks and classify how each task scales.

The public API is re-exported here; each stage of the data flow lives in its own module (see the README's
architecture section).
"""

from harness._version import __version__
from harness.config import ExperimentConfig, load_config
from harness.errors import HarnessError
from harness.metrics import METRICS, Score, aggregate, metric
from harness.models import Backend, BackendFactory, GenerationRequest, LogLikelihood, ModelSpec
from harness.runner import Executor, LocalExecutor, RayExecutor, RunResult, run
from harness.scoring import chance_levels, evaluate
from harness.store import RunStore
from harness.tasks import (
    GENERATORS,
    Instance,
    PreparedTask,
    Task,
    TaskSpec,
    build_instances,
    generator,
    load_task_file,
    prepare,
)

# The analysis stage (scipy, pandas) loads on first use, so `import harness` and the CLI stay quick.
_LAZY = {name: "harness.analysis" for name in (
    "Classification", "Classified", "Comparison", "Curve", "Rules", "Results", "classify", "classify_results",
    "compare", "curves", "load_classified", "load_results", "metric_artifacts")}
_LAZY["build_report"] = "harness.report"


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__all__ = ["__version__", "GENERATORS", "METRICS", "Backend", "BackendFactory", "Classification", "Classified", "Comparison", "Curve",
           "Executor", "ExperimentConfig", "GenerationRequest", "HarnessError", "Instance", "LocalExecutor",
           "LogLikelihood", "ModelSpec", "PreparedTask", "RayExecutor", "Results", "Rules", "RunResult", "RunStore", "Score", "Task",
           "TaskSpec", "aggregate", "build_instances", "build_report", "chance_levels", "classify", "classify_results",
           "compare", "curves", "evaluate", "generator", "load_classified", "load_config", "load_results",
           "load_task_file", "metric", "metric_artifacts", "prepare", "run"]
