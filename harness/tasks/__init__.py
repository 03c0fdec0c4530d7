"""Task stage: YAML schema, discovery, datasets, generators and prompt rendering."""

from harness.tasks.datasets import load_documents
from harness.tasks.generators import GENERATORS, generator
from harness.tasks.loading import TaskIndex, load_task_file, resolve_tasks
from harness.tasks.prompts import Instance, build_instances
from harness.tasks.schema import Task, TaskSpec

__all__ = ["GENERATORS", "Instance", "Task", "TaskIndex", "TaskSpec", "build_instances", "generator",
           "load_documents", "load_task_file", "resolve_tasks"]
