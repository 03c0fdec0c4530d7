"""Progress of a run, as callbacks the driver makes; the CLI draws them, library use stays silent."""

from __future__ import annotations

from harness.store import PairSummary


class Reporter:
    """What the driver reports: a ladder's training (if it builds one), start, then per model: model (loaded, or
    nothing left to do), its tasks started and done, model_done; then finish. Models may run at the same time
    (the Ray executor), so every call names its model. Messages are plain text: names in them are data, never
    markup. This base reports nothing (the default); subclass it to show progress (the CLI draws bars)."""

    def building(self, done: float, total: float) -> None: ...  # training a ladder (estimated time units)
    def start(self, n_models: int) -> None: ...
    def model(self, name: str, n_todo: int, n_done: int) -> None: ...
    def task(self, model: str, name: str, n: int, reused: int = 0) -> None: ...  # reused: documents resumed
    def task_done(self, model: str, name: str, summary: PairSummary) -> None: ...
    def model_done(self, name: str) -> None: ...  # finished: every task answered, or the model failed
    def log(self, message: str) -> None: ...
    def finish(self) -> None: ...
