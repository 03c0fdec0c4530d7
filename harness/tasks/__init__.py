"""Task stage: YAML schema, discovery, datasets, generators, prompt rendering and prepared tasks."""

from harness.outputs import Instance
from harness.tasks.datasets import load_documents
from harness.tasks.generators import GENERATORS, generator
from harness.tasks.loading import resolve_tasks
from harness.tasks.prepared import PreparedTask, prepare
from harness.tasks.prompts import build_instances
from harness.tasks.schema import Task, TaskSpec
from harness.tasks.sources.native import TaskIndex, load_task_file

__all__ = ["GENERATORS", "Instance", "PreparedTask", "Task", "TaskIndex", "TaskSpec", "build_instances", "generator",
           "load_documents", "load_task_file", "prepare", "resolve_tasks"]
