"""lm-eval's catalogue as this harness sees it: every registered task, whether it can run here (text only, no
beam search, the packages its Python imports installed, user Python trusted) and why not. The modules are
read, never imported; the listing is cached per index and set of installed packages."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.files import atomic_write, cache_dir, digest
from harness.tasks.sources.lm_eval import OUTPUTS, check_trust
from harness.tasks.sources.lm_eval_index import require_lm_eval, task_manager, user_folders

CATALOGUE_RULES = 3  # bump when what makes a task runnable here changes (cached listings are then recomputed)


@dataclass(frozen=True)
class Listed:
    """One registered lm-eval task as ``harness tasks list --source lm_eval`` reports it."""

    name: str
    output: str
    status: str  # "ok" | "refused"
    reason: str
    path: str


def catalogue(trust_task_code: bool = False) -> list[Listed]:
    """Every registered lm-eval task (groups and tags are names for tasks) and whether it can run here: its YAML
    chain loads with its Python (installed packages' ``utils.py``, task classes), it is text-only, and (for the
    user's own folders) its Python is trusted. Kept per index under the cache."""
    import json

    import lm_eval
    from lm_eval.tasks._index import Kind

    tm, installed = task_manager(user_folders()), require_lm_eval()
    entries = sorted((n, e) for n, e in tm.task_index.items() if e.kind in (Kind.TASK, Kind.PY_TASK))
    key = digest([CATALOGUE_RULES, lm_eval.__version__, trust_task_code, [(n, str(e.yaml_path)) for n, e in entries],
                  [str(p) for p in user_folders()], _installed_packages()])
    path = cache_dir() / "lm_eval_index" / f"catalogue-{key}.json"
    if path.is_file():
        try:
            return [Listed(**row) for row in json.loads(path.read_text())]
        except (ValueError, TypeError):
            pass
    out = []
    for name, entry in entries:
        cfg = entry.cfg or {}
        where = str(entry.yaml_path or "")
        output = OUTPUTS.get(str(cfg.get("output_type") or "generate_until"), str(cfg.get("output_type")))
        reason = ""
        gen: dict[str, Any] = cfg["generation_kwargs"] if isinstance(cfg.get("generation_kwargs"), dict) else {}
        if cfg.get("doc_to_image") or cfg.get("doc_to_audio"):
            reason = "multimodal (images or audio): this harness scores text"
        elif _positive((gen.get("num_beams") or 1) - 1):
            reason = "beam search (num_beams > 1): the engine decodes greedily or samples"
        elif entry.yaml_path is not None:
            try:
                if not trust_task_code:
                    check_trust(Path(entry.yaml_path), installed)
                missing = sorted({m for f in _python_files(cfg) for m in _missing_imports(f)})
                if missing:
                    reason = f"needs the package(s) {', '.join(missing)} (pip install {' '.join(missing)})"
            except HarnessError:
                reason = "runs Python of your own: needs --trust-task-code"
        out.append(Listed(name, output, "refused" if reason else "ok", reason, where))
    try:
        atomic_write(path, json.dumps([vars(x) for x in out]).encode())
    except OSError:
        pass
    return out


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def _installed_packages() -> list[str]:
    """Names of the installed distributions: a listing is recomputed when they change."""
    from importlib import metadata

    return sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())


def _python_files(cfg: Any) -> set[Path]:
    """The Python modules a task's config names (``!function`` values, read unresolved as ``/dir/module.name``)."""
    found: set[Path] = set()
    if isinstance(cfg, dict):
        for value in cfg.values():
            found |= _python_files(value)
    elif isinstance(cfg, list):
        for value in cfg:
            found |= _python_files(value)
    elif isinstance(cfg, str) and cfg.startswith("/") and "." in cfg.rsplit("/", 1)[-1]:
        module = Path(cfg.rsplit(".", 1)[0] + ".py")
        if module.is_file():
            found.add(module)
    return found


PIP_NAMES = {"antlr4": "antlr4-python3-runtime", "math_verify": "math-verify", "sklearn": "scikit-learn",
             "bert_score": "bert-score", "yaml": "pyyaml"}  # import names that are not their package's name


@functools.cache
def _missing_imports(module: Path) -> tuple[str, ...]:
    """Packages (pip names) that ``module`` and the task modules it imports (modules beside it, lm-eval's own
    ``lm_eval.tasks`` modules) import, read and never run, that are not installed."""
    return tuple(sorted(PIP_NAMES.get(n, n) for n in _imports(module, set())))


def _imports(module: Path, seen: set[Path]) -> set[str]:
    import ast

    if module in seen or not module.is_file():
        return set()
    seen.add(module)
    try:
        tree = ast.parse(module.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return set()
    tasks_root = Path(importlib.util.find_spec("lm_eval").origin or ".").parent.parent  # type: ignore[union-attr]
    missing: set[str] = set()

    def follow(path: Path, names: tuple[str, ...] = ()) -> bool:
        """Walk a module that is a file here (or, for a package folder, the modules ``names`` it imports)."""
        if path.with_suffix(".py").is_file():
            missing.update(_imports(path.with_suffix(".py"), seen))
            return True
        if path.is_dir():
            for name in names:
                missing.update(_imports(path / f"{name}.py", seen))
            missing.update(_imports(path / "__init__.py", seen))
            return True
        return False

    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):
            return True

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = module.parent
            for _ in range(node.level - 1):
                base = base.parent
            follow(base.joinpath(*(node.module or "").split(".")) if node.module else base,
                   tuple(a.name for a in node.names))
            continue
        dotted: list[tuple[str, tuple[str, ...]]]
        if isinstance(node, ast.Import):
            dotted = [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            dotted = [(node.module, tuple(a.name for a in node.names))]
        else:
            continue
        for name, names in dotted:
            top = name.split(".")[0]
            if name.startswith("lm_eval.tasks."):
                follow(tasks_root.joinpath(*name.split(".")), names)
            elif not follow(module.parent.joinpath(*name.split(".")), names) and absent(top):
                missing.add(top)
    return missing
