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
__all__ = ["GENERATORS", "METRICS", "Backend", "ExperimentConfig", "GenerationRequest", "HarnessError", "Instance",
           "LogLikelihood", "ModelSpec", "RunResult", "RunStore", "Score", "Task", "TaskSpec", "aggregate",
           "build_instances", "evaluate", "generator", "load_config", "load_task_file", "metric", "prepare", "run"]
