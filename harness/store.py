"""Results on disk: ``results/<run>/`` with atomic per-(model, task) writes and resume by key.

A (model, task) pair is done when its summary exists, carries the expected key, and its records file
matches the hash the summary recorded. Records are written first and the summary last, each through a
temporary file and ``os.replace``, so a killed run leaves either a complete pair or nothing.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import NotRequired, TypedDict

from harness.errors import HarnessError, pydantic_error
from harness.files import TMP_PREFIX, atomic_write, digest, safe_name
from harness.models.suite import ModelMeta
from harness.outputs import Record, parse_records

SCORING_VERSION = 4
MARKER = ".scaling-harness"  # in every results folder: later runs may write there, nothing else may


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (its temporary file may be in use by a concurrent run)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return pid != os.getpid()


class ScoreDict(TypedDict):
    """A metric's aggregate over one task's documents (``metrics.Score`` as stored)."""

    metric: str
    value: float
    stderr: float
    n: int
    kind: NotRequired[str]  # lm-eval tasks' metrics: as their values show (else the metric registry's)
    higher_is_better: NotRequired[bool]  # lm-eval tasks' metrics: as lm-eval says


class PairSummary(TypedDict):
    """``models/<model>/<task>.json``: one (model, task) result; written after its records, so its
    presence (with the matching key and records hash) marks the pair as done."""

    key: str
    model: str
    task: str
    group: Optional[str]
    output: str
    n: int
    model_meta: ModelMeta
    seconds: float
    chance: dict[str, float]
    scores: dict[str, ScoreDict]
    notes: NotRequired[list[str]]  # warnings about this result (e.g. text the tokenizer cannot represent)
    peak_memory_bytes: NotRequired[int]  # since the model loaded: GPU memory allocated, or the process's peak RSS
    records_sha256: NotRequired[str]  # added by the store when written


class ScoreRow(TypedDict):
    """One row of ``scores.csv``: a model × task (or group aggregate) × metric."""

    model: str
    family: str  # the suite entry's ``family`` ("" when not given): curves are never pooled across families
    arch: str  # causal | seq2seq
    step: Optional[int]  # a checkpoint's training step, when known
    params: int
    nonembedding_params: int
    active_params: int  # parameters one token uses: all of a dense model's, k of E experts' of a mixture of experts
    tokens: Optional[float]
    flops: Optional[float]
    task: str
    group: str
    aggregate: str  # "" for a task, "macro" or "micro" for a group's aggregate
    metric: str
    value: float
    stderr: float
    n: int
    kind: str
    higher_is_better: bool
    chance: Optional[float]


SCORE_COLUMNS = list(ScoreRow.__annotations__)  # scores.csv's columns, in this order
# the scale variables an analysis can put on x (step: checkpoints of one run; active_params: parameters per token)
X_COLUMNS = ("params", "nonembedding_params", "active_params", "tokens", "flops", "step")


class ManifestTask(BaseModel):
    """A task as the manifest records it: where it came from, its hashes, and what the analysis reads back
    (keywords, preferred metric, canary)."""

    model_config = ConfigDict(extra="allow")  # manifests of other versions: fields kept, none required beyond name
    name: str
    group: Optional[str] = None
    source: str = ""
    hash: str = ""
    prompt_hash: str = ""
    n: int = 0
    output: str = ""
    keywords: list[str] = Field(default_factory=list)
    preferred_metric: Optional[str] = None
    canary: Optional[str] = None  # a benchmark's canary string (BIG-bench)


class Manifest(BaseModel):
    """``manifest.json``: the run as resolved (config, package versions, git commit, seeds, models, tasks,
    failures); written by the driver, read back as this type."""

    model_config = ConfigDict(extra="allow")
    name: str
    scoring_version: int
    config: dict[str, Any] = Field(default_factory=dict)
    packages: dict[str, Optional[str]] = Field(default_factory=dict)
    python: str = ""
    git_commit: Optional[str] = None
    device: str = ""
    seeds: dict[str, Any] = Field(default_factory=dict)
    suite: list[dict[str, Any]] = Field(default_factory=list)
    models: list[dict[str, Any]] = Field(default_factory=list)  # each a ModelMeta (read loosely: older runs lack newer keys)
    tasks: list[ManifestTask] = Field(default_factory=list)
    failures: list[dict[str, Any]] = Field(default_factory=list)
    duplicate_weights: list[list[str]] = Field(default_factory=list)
    trust_remote_code: list[str] = Field(default_factory=list)
    other_runs: dict[str, dict[str, Any]] = Field(default_factory=dict)  # other configs that wrote here, by name


def display_name(task: str, aggregate: str) -> str:
    """A task, or a group's aggregate, as tables and plots name it."""
    return f"{task} ({aggregate})" if aggregate else task


def dumps_records(records: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records).encode()


class RunStore:
    """One run directory. Nothing is created until the first result is written."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.damaged: list[str] = []  # stored results found unreadable (said in the run log, then recomputed)

    def _paths(self, model: str, task: str) -> tuple[Path, Path]:
        d = self.root / "models" / safe_name(model)
        return d / f"{safe_name(task)}.jsonl", d / f"{safe_name(task)}.json"

    def check_ours(self) -> None:
        """Refuse an existing, non-empty folder this harness did not make (a project folder, ``.``, a task
        folder): its ``scores.csv`` or ``manifest.json`` would be replaced. Ours: it holds the marker file (written
        with the first result) or a manifest with this harness's ``scoring_version``."""
        if not self.root.is_dir() or not any(self.root.iterdir()) or (self.root / MARKER).is_file():
            return
        try:
            if "scoring_version" in json.loads((self.root / "manifest.json").read_text()):
                return
        except (OSError, ValueError, TypeError):
            pass
        raise HarnessError("is not empty and is not a results folder of this harness (its files would be "
                           "overwritten): pick a new or empty folder", source=self.root, where="output")

    def check_writable(self) -> None:
        """Fail before any model runs if the output folder cannot be created or written (creates nothing)."""
        import tempfile

        probe = self.root.resolve()
        while not probe.exists():
            probe = probe.parent
        try:
            if not probe.is_dir():
                raise OSError(f"{probe} is not a directory")
            with tempfile.TemporaryFile(dir=probe):
                pass
        except OSError as exc:
            raise HarnessError(f"output directory is not writable ({exc.strerror or exc})", source=self.root,
                               where="output") from None

    def clean_tmp(self) -> None:
        """Remove the temporary files a killed run of this harness left behind: only where it writes (the run
        folder; ``models/<model>/`` and its chunk folders once the folder is marked as ours), only the names its
        ``atomic_write`` makes there (``.tmp-scores.csv.<pid>``, ``.tmp-<task>.jsonl.<pid>``, ...), and only when
        that process is gone (a concurrent run may be writing it)."""
        top = "|".join(re.escape(n) for n in ("scores.csv", "manifest.json", MARKER))
        patterns = [(self.root, re.compile(re.escape(TMP_PREFIX) + f"({top})" + r"\.\d+"))]
        if (self.root / MARKER).is_file():  # models/<model>/ is ours only in a folder we marked
            patterns += [(d, re.compile(re.escape(TMP_PREFIX) + r"[A-Za-z0-9._@-]+\.jsonl?\.\d+"))
                         for d in [*(self.root / "models").glob("*/"), *(self.root / "models").glob("*/*.chunks/")]]
        for folder, ours in patterns:
            for tmp in folder.glob(f"{TMP_PREFIX}*") if folder.is_dir() else []:
                if ours.fullmatch(tmp.name) and tmp.is_file() and not _alive(int(tmp.name.rsplit(".", 1)[1])):
                    tmp.unlink(missing_ok=True)

    def summary(self, model: str, task: str, key: Optional[str] = None) -> Optional[PairSummary]:
        """The stored summary of a completed pair (with ``key``: only if it matches), else None."""
        rec_path, sum_path = self._paths(model, task)
        if not sum_path.is_file():
            return None
        try:
            summary = json.loads(sum_path.read_text())
            if not isinstance(summary, dict):
                raise ValueError("not an object")
            if key is not None and summary.get("key") != key:
                return None
            if digest(rec_path.read_bytes()) != summary.get("records_sha256"):
                raise ValueError(f"{rec_path.name} does not match the hash its summary recorded")
        except (OSError, ValueError, RecursionError) as exc:
            self.damaged.append(f"{sum_path}: unreadable or damaged ({exc}): recomputed")
            return None
        return PairSummary(**summary)  # type: ignore[typeddict-item]

    def records(self, model: str, task: str) -> list[Record]:
        """A stored pair's per-example records, parsed as the type its output wrote (see ``harness.outputs``)."""
        rec_path, sum_path = self._paths(model, task)
        raw = [json.loads(line) for line in rec_path.read_text(encoding="utf-8").splitlines() if line]
        try:
            return parse_records(str(json.loads(sum_path.read_text()).get("output")), raw)
        except ValueError as exc:
            raise HarnessError(f"a record does not parse ({exc})", source=rec_path) from None

    def mark(self) -> None:
        """Mark the folder as this harness's (before its first result), so later runs may write into it."""
        if not (self.root / MARKER).is_file():
            atomic_write(self.root / MARKER, json.dumps({"scaling_harness": SCORING_VERSION}).encode())

    def write(self, model: str, task: str, records: Iterable[Mapping[str, Any]], summary: PairSummary) -> None:
        self.mark()
        rec_path, sum_path = self._paths(model, task)
        data = dumps_records(records)
        atomic_write(rec_path, data)
        atomic_write(sum_path, json.dumps({**summary, "records_sha256": digest(data)}, indent=1, sort_keys=True).encode())

    def other_rows(self, models: set[str], tasks: set[str]) -> list[dict[str, str]]:
        """Rows of the stored ``scores.csv`` that this run does not recompute (another config's models or tasks
        written into the same folder), kept as they are."""
        try:
            text = (self.root / "scores.csv").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return []
        rows = list(csv.DictReader(io.StringIO(text)))
        return [r for r in rows if not (r.get("model") in models and r.get("task") in tasks)]

    def _chunk_dir(self, model: str, task: str) -> Path:
        return self.root / "models" / safe_name(model) / f"{safe_name(task)}.chunks"

    def write_chunk(self, model: str, task: str, key: str, size: int, index: int,
                    records: Iterable[Mapping[str, Any]]) -> None:
        """One finished chunk of a task's documents, so a run stopped inside a long task resumes after it."""
        self.mark()
        atomic_write(self._chunk_dir(model, task) / f"{key}.{size}.{index}.jsonl", dumps_records(records))

    def chunks(self, model: str, task: str, key: str, size: int) -> dict[int, list[dict[str, Any]]]:
        """The chunks stored for this pair's key and chunk size, by index (unreadable ones are left out)."""
        out = {}
        folder = self._chunk_dir(model, task)
        for f in folder.glob(f"{key}.{size}.*.jsonl") if folder.is_dir() else []:
            index = f.name[len(f"{key}.{size}."):-len(".jsonl")]
            try:
                out[int(index)] = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line]
            except (OSError, ValueError):
                continue
        return out

    def drop_chunks(self, model: str, task: str) -> None:
        """The pair is written whole: its chunks are no longer needed."""
        import shutil

        shutil.rmtree(self._chunk_dir(model, task), ignore_errors=True)

    def write_scores(self, rows: Iterable[Mapping[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=SCORE_COLUMNS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SCORE_COLUMNS})
        atomic_write(self.root / "scores.csv", buf.getvalue().encode())

    def manifest(self) -> Optional[Manifest]:
        """The stored manifest, or None where there is none; one that does not parse is named in one line."""
        path = self.root / "manifest.json"
        if not path.is_file():
            return None
        try:
            return Manifest.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            if any(e.get("type") == "json_invalid" for e in exc.errors()):
                raise HarnessError("not valid JSON", source=path) from None
            raise pydantic_error(exc, path) from None

    def write_manifest(self, manifest: Manifest) -> None:
        """Write the run's manifest; the manifests of other configs that wrote into this folder are kept under
        ``other_runs`` (by config name), as their rows are kept in ``scores.csv``."""
        try:
            old = json.loads((self.root / "manifest.json").read_text())
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict):
            others = {**old.pop("other_runs", {})}
            if old.get("name") != manifest.name:
                others[str(old.get("name"))] = old
            others.pop(manifest.name, None)
            manifest = manifest.model_copy(update={"other_runs": others})
        data = manifest.model_dump(mode="json", exclude_defaults=False)
        if not data["other_runs"]:
            del data["other_runs"]
        for task in data["tasks"]:  # only a benchmark's tasks carry a canary
            if task.get("canary") is None:
                task.pop("canary", None)
        atomic_write(self.root / "manifest.json", json.dumps(data, indent=1, sort_keys=True, default=str).encode())
