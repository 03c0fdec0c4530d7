"""Run stage: plan (the units still to compute) → execute (an executor runs units) → commit (the driver
writes each result as it arrives)."""

from harness.runner.cluster import RayExecutor
from harness.runner.driver import RunResult, run
from harness.runner.execute import Event, Executor, Failure, Loaded, LocalExecutor, PairResult, TaskStarted, run_unit
from harness.runner.plan import ModelPlan, Unit, pair_key, plan, resolve_suite
from harness.runner.progress import Reporter

__all__ = ["Event", "Executor", "Failure", "Loaded", "LocalExecutor", "ModelPlan", "PairResult", "RayExecutor",
           "Reporter", "RunResult", "TaskStarted", "Unit", "pair_key", "plan", "resolve_suite", "run", "run_unit"]
