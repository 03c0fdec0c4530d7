"""scaling-harness: evaluate model families on YAML tasks and classify how each task scales.

The public API is re-exported here; each stage of the data flow lives in its own module.
"""

from harness.config import ExperimentConfig, load_config
from harness.errors import HarnessError
from harness.metrics import METRICS, Score, aggregate, metric
from harness.models import Backend, GenerationRequest, LogLikelihood, ModelSpec
from harness.runner import RunResult, evaluate, prepare, run
from harness.store import RunStore
from harness.tasks import GENERATORS, Instance, Task, TaskSpec, build_instances, generator, load_task_file

__version__ = "0.1.0"

# The analysis stage (scipy, pandas) loads on first use, so `import harness` and the CLI stay quick.
_LAZY = {"Classification": "harness.scaling", "Curve": "harness.scaling", "Rules": "harness.scaling",
         "classify": "harness.scaling", "metric_artifacts": "harness.scaling", "Results": "harness.importers",
         "curves": "harness.importers", "load_results": "harness.importers", "compare": "harness.compare",
         "build_report": "harness.report"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__all__ = ["GENERATORS", "METRICS", "Backend", "Classification", "Curve", "ExperimentConfig", "GenerationRequest",
           "HarnessError", "Instance", "LogLikelihood", "ModelSpec", "Results", "Rules", "RunResult", "RunStore", "Score",
           "Task", "TaskSpec", "aggregate", "build_instances", "build_report", "classify", "compare", "curves",
           "evaluate", "generator", "load_config", "load_results", "load_task_file", "metric", "metric_artifacts",
           "prepare", "run"]
