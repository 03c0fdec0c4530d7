"""Against the real BIG-bench data (``harness bigbench fetch``; CI fetches it in ``.ci/run`` where it can, else these
are skipped and say why): for ten tasks that together use every formatting field (example and choice prefixes,
choices appended or not, separators, task prefixes, output regexes, stop strings, subtasks, fractional
target_scores), the prompts hash as BIG-bench's own functions' did when ``bigbench_golden.json`` was recorded
(hashes only: no BIG-bench text is committed)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from harness.tasks.sources import bigbench as bb

GOLDEN = json.loads((Path(__file__).parent / "bigbench_golden.json").read_text())
pytestmark = pytest.mark.skipif(not bb.root().is_dir(), reason="BIG-bench not fetched: run 'harness bigbench fetch' (where PyPI refuses the "
                                "sdist, pass GitHub's archive: --source BIG-bench-main.tar.gz)")


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_real_task_prompts(key):
    """The first five documents' prompts, choices and targets hash to what BIG-bench's own functions gave when the
    hashes were recorded (``bigbench_golden.json``); every document carries the task's canary."""
    task, subtask, shots = key.split(":")
    data = bb.read_task(bb.task_path(task))
    part = bb.part(data, subtask or None, bb.task_path(task))
    docs = bb.format_examples(copy.deepcopy(part), int(shots))
    mine = [(d["input"], d.get("choices"), d["targets"]) for d in docs]
    assert hashlib.sha256(json.dumps(mine[:5]).encode()).hexdigest() == GOLDEN[key]
    assert all(d["canary"] == data["canary"] for d in bb.documents(task, subtask or None)[:3])


def test_the_index_lists_every_json_task():
    entries = bb.index()
    assert len(entries) >= 160 and not [e for e in entries if "error" in e]
    by_name = {e["name"]: e for e in entries}
    assert "mathematics" in by_name["modified_arithmetic"]["keywords"] and len(by_name["modified_arithmetic"]["subtasks"]) == 6


@pytest.mark.parametrize("name,at_least", [("bigbench_emergent", 6), ("bigbench_json", 900)])
def test_packaged_bigbench_configs_resolve(name, at_least):
    from harness.config import load_config, resolve_config
    from harness.tasks import resolve_tasks

    config = load_config(resolve_config(name))
    tasks = resolve_tasks(config.tasks, Path.cwd())
    assert len(tasks) >= at_least and all(t.name.startswith("bigbench.") for t in tasks)
