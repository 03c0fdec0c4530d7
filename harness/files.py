"""Ground-floor helpers every stage uses: reading YAML and data files (JSON lines, JSON, CSV, Parquet), writing
files atomically, hashing, safe file names, the cache folder, and whether the hub can be reached. Nothing here
imports another module of the package but ``errors``."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from harness.errors import HarnessError

TMP_PREFIX = ".tmp-"  # every temporary file this package writes starts with it
TOO_DEEP = "invalid JSON: nested too deep to read"  # json.loads raises RecursionError past ~1,000 levels


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Can the Hugging Face hub (``$HF_ENDPOINT``) be reached? One TCP connect per process, so a machine without
    network fails in seconds instead of retrying each download for most of a minute."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def hf_datasets() -> Any:
    """The ``datasets`` library (a heavy import, made only when needed), set to read its local cache only when the
    hub cannot be reached: a missing dataset then fails in about a second instead of retrying for ~25 s."""
    import datasets

    if not datasets.config.HF_HUB_OFFLINE and not hub_reachable():
        datasets.config.HF_HUB_OFFLINE = True
    return datasets


def shipped(name: str) -> Path:
    """A folder the project ships (``tasks``, ``configs``): in an installed wheel ``harness/_data/<name>`` (setup.py
    maps it there), in a checkout (an editable install) the top-level ``<name>/`` itself."""
    packaged = Path(__file__).resolve().parent / "_data" / name
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / name


def cache_dir() -> Path:
    """``$HARNESS_CACHE``, else ``~/.cache/scaling-harness``: ladders, the weights-hash cache."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "scaling-harness"))


class _BoundedLoader(yaml.SafeLoader):
    """``safe_load`` that refuses documents nested too deep or whose aliases expand to too many values (a few
    hundred bytes of nested anchors can stand for billions of values once something walks them)."""

    MAX_DEPTH = 64
    MAX_VALUES = 100_000

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._values = 0  # values in the document with every alias expanded
        self._sizes: dict[int, int] = {}  # expanded size of each composed node (for aliases to it)

    def _count(self, n: int, mark: Any) -> None:
        self._values += n
        if self._values > self.MAX_VALUES:
            raise yaml.MarkedYAMLError(problem=f"aliases expand to more than {self.MAX_VALUES:,} values",
                                       problem_mark=mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._count(self._sizes.get(id(node), 1), mark)
            return node
        self._depth += 1
        if self._depth > self.MAX_DEPTH:
            raise yaml.MarkedYAMLError(problem=f"nested deeper than {self.MAX_DEPTH} levels", problem_mark=mark)
        before = self._values
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._sizes[id(node)] = self._values - before + 1
        self._count(1, mark)
        return node


def read_json(path: Path, what: str = "valid JSON") -> Any:
    """A JSON file's content; unreadable, invalid or too deeply nested is one line naming the file (``what``: what
    the file is not, in that line)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise HarnessError(f"not {what} ({exc})", source=path) from None
    except RecursionError:
        raise HarnessError(TOO_DEEP, source=path) from None


def read_yaml(path: Path) -> Any:
    """Safe-load a YAML file (no Python objects from YAML), bounded in depth and alias expansion, with errors
    naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError("file not found", source=path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_BoundedLoader)  # a SafeLoader: no Python objects
    except UnicodeDecodeError as exc:
        raise HarnessError(f"not valid UTF-8 (byte {exc.start})", source=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise HarnessError(f"invalid YAML: {problem}", source=path, where=where) from None


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


def digest(obj: Any) -> str:
    """16 hex digits of sha256 over bytes, or over the sorted-key JSON of anything else."""
    blob = obj if isinstance(obj, bytes) else json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    """Full sha256 of a file, read in 4 MiB chunks (model weights can be many GB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_name(name: str) -> str:
    """A file name for a model, task or metric name: anything but ``A-Za-z0-9._@-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", name)


def read_file(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL, JSON (list of objects), CSV or Parquet file into a list of dicts."""
    if not path.is_file():
        raise HarnessError("data file not found", source=path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[: exc.start].count(b"\n") + 1
            raise HarnessError(f"not valid UTF-8 (byte {exc.start})", source=path, where=f"line {line}") from None
        if suffix == ".json":
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as exc:
                raise HarnessError(f"invalid JSON: {exc.msg}", source=path, where=f"line {exc.lineno}") from None
            except RecursionError:
                raise HarnessError(TOO_DEEP, source=path) from None
            if not isinstance(rows, list):
                raise HarnessError("a .json data file must hold a list of objects", source=path)
            numbered = list(enumerate(rows, 1))
        else:
            numbered = []
            for i, line_text in enumerate(text.splitlines(), 1):
                if line_text.strip():
                    try:
                        numbered.append((i, json.loads(line_text)))
                    except json.JSONDecodeError as exc:
                        raise HarnessError(f"invalid JSON: {exc.msg}", source=path, where=f"line {i}") from None
                    except RecursionError:
                        raise HarnessError(TOO_DEEP, source=path, where=f"line {i}") from None
        for i, row in numbered:
            if not isinstance(row, dict):
                raise HarnessError(f"each row must be a JSON object (got {type(row).__name__})", source=path, where=f"row {i}")
        return [row for _, row in numbered]
    if suffix in (".csv", ".parquet"):
        import pandas as pd

        try:
            df = pd.read_csv(path, keep_default_na=False, dtype=str) if suffix == ".csv" else pd.read_parquet(path)
        except Exception as exc:
            raise HarnessError(f"could not read {suffix[1:]}: {exc}", source=path) from None
        return [{str(k): v for k, v in row.items()} for row in df.to_dict(orient="records")]
    raise HarnessError(f"unsupported data file type '{suffix}' (use .jsonl, .json, .csv or .parquet)", source=path)
