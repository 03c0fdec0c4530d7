"""Download BIG-bench's JSON tasks once: the bigbench 1.0.0 sdist from PyPI (its sha256 checked), else GitHub's
archive of the repository, else a copy the user gives. Streamed: only the ``task.json`` files are kept, each
resolved inside the cache (an archive cannot write elsewhere)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from harness.errors import HarnessError
from harness.files import cache_dir

SDIST_URL = ("https://files.pythonhosted.org/packages/95/f8/c019b3579df548a04cac12342cfcb878e50ddf6cfcd7fddba8cfc721c157/"
             "bigbench-1.0.0.tar.gz")
SDIST_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
GITHUB_URL = "https://github.com/google/BIG-bench/archive/refs/heads/main.tar.gz"  # the repository's own archive
_TASKS_DIR = "bigbench/benchmark_tasks/"


def fetch(progress: Optional[Callable[[int, int], None]] = None, url: str = SDIST_URL,
          sha256: Optional[str] = SDIST_SHA256) -> tuple[Path, str]:
    """Download the sdist (or any .tar.gz holding ``bigbench/benchmark_tasks``: a local path or URL), check its
    sha256 (``None``: any), and keep only its ``task.json`` files under the cache. Streams: the archive is never
    written to disk whole. ``progress(done_bytes, total_bytes)`` is called as it arrives. Returns the tasks folder
    and the archive's sha256."""
    import urllib.request

    if "://" not in url:  # a local file
        url = Path(url).expanduser().resolve().as_uri()

    dest = cache_dir() / "bigbench"
    staging = dest / ".tmp-fetch"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0)
            reader = _Hashing(response, digest, total, progress)
            with tarfile.open(fileobj=reader, mode="r|gz") as archive:  # type: ignore[call-overload]
                for member in archive:
                    rel = member.name.split(_TASKS_DIR, 1)[-1] if _TASKS_DIR in member.name else None
                    if rel is None or not member.isfile() or not rel.endswith("task.json") or ".." in rel:
                        continue
                    target = _inside(staging / "benchmark_tasks", rel)
                    if target is None:  # an absolute path, a '..' or an empty component would land elsewhere
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = archive.extractfile(member)
                    assert source is not None
                    with open(target, "wb") as out:
                        shutil.copyfileobj(source, out)
            reader.drain()
    except (OSError, tarfile.TarError, EOFError) as exc:  # network, disk, or a truncated/corrupt archive
        shutil.rmtree(staging, ignore_errors=True)
        raise HarnessError(f"could not download BIG-bench: {exc}", source=url) from None
    if sha256 is not None and digest.hexdigest() != sha256:
        shutil.rmtree(staging, ignore_errors=True)
        raise HarnessError(f"sha256 mismatch (got {digest.hexdigest()}, expected {sha256})", source=url)
    if not (staging / "benchmark_tasks").is_dir():
        shutil.rmtree(staging, ignore_errors=True)
        raise HarnessError(f"no {_TASKS_DIR}*/task.json in the archive", source=url)
    shutil.rmtree(dest / "benchmark_tasks", ignore_errors=True)
    os.replace(staging / "benchmark_tasks", dest / "benchmark_tasks")
    shutil.rmtree(staging, ignore_errors=True)
    return dest / "benchmark_tasks", digest.hexdigest()


def fetch_default(progress: Optional[Callable[[int, int], None]] = None,
                  log: Callable[[str], None] = lambda _: None) -> tuple[Path, str]:
    """``fetch`` from the bigbench 1.0.0 sdist on PyPI (its sha256 checked); where that cannot be had (the index
    refuses it, or no network), from GitHub's archive of the BIG-bench repository; where neither can, one line
    saying how to pass a local copy."""
    try:
        return fetch(progress, SDIST_URL, SDIST_SHA256)
    except HarnessError as first:
        if "sha256 mismatch" in str(first):
            raise
        log(f"the sdist could not be had ({str(first).split(': ', 1)[-1]}): trying GitHub's archive {GITHUB_URL}")
        try:
            return fetch(progress, GITHUB_URL, None)
        except HarnessError as second:
            raise HarnessError(f"could not download BIG-bench from PyPI ({first}) nor from GitHub ({second}): "
                               "download either archive elsewhere and pass it with 'harness bigbench fetch --source "
                               "FILE' (or set BIGBENCH_ROOT to an unpacked bigbench/benchmark_tasks folder)") from None


def _inside(folder: Path, rel: str) -> Optional[Path]:
    """``folder/rel`` when it resolves inside ``folder`` (symlinks followed), else None."""
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\0" in rel:
        return None
    target = folder.joinpath(*parts)
    base = folder.resolve()
    resolved = target.resolve()
    return target if resolved != base and resolved.is_relative_to(base) else None


class _Hashing:
    """A file-like wrapper that hashes and reports what is read through it."""

    def __init__(self, raw: Any, digest: Any, total: int, progress: Optional[Callable[[int, int], None]]):
        self.raw, self.digest, self.total, self.progress, self.done = raw, digest, total, progress, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        self.done += len(data)
        if self.progress is not None:
            self.progress(self.done, self.total)
        return data

    def drain(self) -> None:
        """Read what the archive reader left (padding after the last member) so the hash covers every byte."""
        while self.read(1 << 20):
            pass
