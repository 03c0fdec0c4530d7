"""Results on disk: ``results/<run>/`` with atomic per-(model, task) writes and resume by key.

A (model, task) pair is done when its summary exists, carries the expected key, and its records file
matches the hash the summary recorded. Records are written first and the summary last, each through a
temporary file and ``os.replace``, so a killed run leaves either a complete pair or nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Optional

from harness.errors import HarnessError

SCORING_VERSION = 1
TMP_PREFIX = ".tmp-"
SCORE_COLUMNS = ["model", "params", "nonembedding_params", "tokens", "flops", "task", "group", "aggregate",
                 "metric", "value", "stderr", "n", "kind", "higher_is_better", "chance"]


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", name)


def digest(obj: Any) -> str:
    blob = obj if isinstance(obj, bytes) else json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def atomic_write(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{path.name}.{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def dumps_records(records: Iterable[dict]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records).encode()


class RunStore:
    """One run directory. Nothing is created until the first result is written."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _paths(self, model: str, task: str) -> tuple[Path, Path]:
        d = self.root / "models" / safe_name(model)
        return d / f"{safe_name(task)}.jsonl", d / f"{safe_name(task)}.json"

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
        """Remove temporary files a killed run left behind."""
        if self.root.is_dir():
            for tmp in self.root.rglob(f"{TMP_PREFIX}*"):
                tmp.unlink(missing_ok=True)

    def summary(self, model: str, task: str, key: Optional[str] = None) -> Optional[dict]:
        """The stored summary of a completed pair (with ``key``: only if it matches), else None."""
        rec_path, sum_path = self._paths(model, task)
        try:
            summary = json.loads(sum_path.read_text())
            if key is not None and summary.get("key") != key:
                return None
            if digest(rec_path.read_bytes()) != summary.get("records_sha256"):
                return None
        except (OSError, ValueError):
            return None
        return summary

    def records(self, model: str, task: str) -> list[dict]:
        rec_path, _ = self._paths(model, task)
        return [json.loads(line) for line in rec_path.read_text(encoding="utf-8").splitlines() if line]

    def write(self, model: str, task: str, records: list[dict], summary: dict) -> None:
        rec_path, sum_path = self._paths(model, task)
        data = dumps_records(records)
        atomic_write(rec_path, data)
        atomic_write(sum_path, json.dumps({**summary, "records_sha256": digest(data)}, indent=1, sort_keys=True).encode())

    def write_scores(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=SCORE_COLUMNS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SCORE_COLUMNS})
        atomic_write(self.root / "scores.csv", buf.getvalue().encode())

    def write_manifest(self, manifest: dict) -> None:
        atomic_write(self.root / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True, default=str).encode())
