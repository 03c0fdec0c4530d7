"""The README's "Writing a task" files work as written: they validate, render, and run (on a tiny model here;
the README runs them on the toy ladder)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from harness.cli import main
from harness.testing import build_tiny_model

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_files() -> dict[str, str]:
    """Fenced blocks whose info string names a file: ```yaml tasks/x.yaml."""
    return {path: body for _, path, body in re.findall(r"```(\w+) (\S+)\n(.*?)```", README.read_text(), re.S)}


def test_readme_task_examples_validate_render_and_run(tmp_path, monkeypatch, capsys):
    files = readme_files()
    assert {"tasks/sums.jsonl", "tasks/sums_mc.yaml", "tasks/add_gen.yaml", "my_experiment.yaml"} <= set(files)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    for path, body in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    assert main(["tasks", "validate", "tasks/sums_mc.yaml", "tasks/add_gen.yaml"]) == 0
    capsys.readouterr()
    assert main(["tasks", "show", "sums_mc", "--n", "4", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["gold"] for r in rows] == [0, 1, 2, 3] and rows[0]["continuations"][0] == "042"
    assert all(r["target"] == str(int(r["context"][:2]) + int(r["context"][3:5])).zfill(3) for r in rows)

    config = yaml.safe_load(files["my_experiment.yaml"])
    model = build_tiny_model(tmp_path / "digits", "llama", chars="0123456789+=")  # the toy ladder's alphabet
    config["suite"] = [{"model": str(model)}]  # the ladder itself takes minutes to train
    Path("my_experiment.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["run", "my_experiment.yaml"]) == 0
    captured = capsys.readouterr()
    assert "WARNING" not in captured.err  # every character is in the toy alphabet
    assert (tmp_path / "results" / "my-experiment" / "scores.csv").is_file()
