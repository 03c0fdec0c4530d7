"""The package's shape: stages import only downward, no import circle, modules a reader can hold in their head."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "harness"

# Each stage of the data flow, lowest first. A module may import its own stage or a lower one; stages that
# share a rank are independent of each other.
RANK = {"_version": 0, "errors": 0, "files": 1, "extraction": 1, "metrics": 2, "models": 3, "outputs": 4, "tasks": 5,
        "config": 6, "store": 6, "scoring": 6, "scoring_lm_eval": 6, "ladder": 7, "runner": 8, "analysis": 8, "report": 9,
        "testing": 10, "cli": 11, "__main__": 12}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def imports(name: str) -> set[str]:
    """Every harness module ``name`` imports, at any depth (lazy imports included); ``from pkg import sub``
    counts as importing ``pkg.sub``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("harness")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("harness"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports(name) for name in MODULES}


def stage(name: str) -> str:
    return name.split(".")[1] if "." in name else "harness"


def test_no_import_circle():
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join(path[path.index(nxt):] + [nxt]) if nxt in path
                            else f"import circle through {nxt}")
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_imports_go_only_downward():
    wrong = []
    for name, deps in GRAPH.items():
        if name == "harness":
            continue  # the public API re-exports every stage
        for dep in deps:
            a, b = stage(name), stage(dep)
            assert b != "harness", f"{name} imports the package root; import the stage module instead"
            if a != b and (RANK[b] > RANK[a] or RANK[b] == RANK[a]):
                wrong.append(f"{name} -> {dep}")
    assert not wrong, "upward or sideways imports: " + ", ".join(sorted(wrong))


def test_every_stage_has_a_rank_and_modules_stay_small():
    assert {stage(n) for n in MODULES} - {"harness"} <= set(RANK)
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert max(sizes.values()) <= 400, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_output_types_are_registered_in_one_place():
    """Each module of ``harness/outputs`` (but its base) registers exactly one output type, the registry holds
    exactly those, and no module elsewhere branches on an output type's name: what an output type means lives
    in its own file."""
    from harness.outputs import OUTPUTS

    registered = {}
    for path in sorted((PKG / "outputs").glob("*.py")):
        if path.stem in ("__init__", "base"):
            continue
        tree = ast.parse(path.read_text())
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef)
                   and any(isinstance(d, ast.Name) and d.id == "register" for d in n.decorator_list)]
        assert len(classes) == 1, f"{path.name}: one registered output type per file (found {len(classes)})"
        registered[path.stem] = classes[0].name
    assert {type(o).__module__.rpartition(".")[2] for o in OUTPUTS.values()} == set(registered)
    assert {type(o).__name__ for o in OUTPUTS.values()} == set(registered.values())
    assert set(OUTPUTS) == {"multiple_choice", "generate", "loglikelihood", "perplexity"}

    def names(node: ast.AST) -> set[str]:
        items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return {i.value for i in items if isinstance(i, ast.Constant) and i.value in OUTPUTS}

    branching = []
    for name, path in MODULES.items():
        if name.startswith("harness.outputs"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(names(n) for n in [node.left, *node.comparators]):
                branching.append(f"{name}:{node.lineno}")
    assert not branching, "output types compared by name outside harness/outputs: " + ", ".join(branching)


def test_every_harness_import_in_the_repo_resolves():
    """Lazy imports inside functions (benchmarks, CLI) fail only when they run: check each name exists."""
    import importlib

    root = PKG.parent
    missing = []
    for path in sorted([*root.glob("harness/**/*.py"), *root.glob("benchmarks/*.py"), *root.glob("tests/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("harness"):
                module = importlib.import_module(node.module)  # type: ignore[arg-type]
                for alias in node.names:
                    if not hasattr(module, alias.name) and f"{node.module}.{alias.name}" not in MODULES:
                        missing.append(f"{path.relative_to(root)}: from {node.module} import {alias.name}")
    assert not missing, missing
