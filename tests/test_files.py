"""Ground-floor helpers: YAML reading is bounded (aliases, nesting) and every failure is one line with the file."""

from __future__ import annotations

import time

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.files import atomic_write, digest, read_yaml, safe_name

BOMB = "".join(f"{k}: &{k} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['x'] * 9)}]\n"
               for p, k in zip([None, "a", "b", "c", "d", "e", "f"], "abcdefg"))


def test_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB + "name: t\n")
    t0 = time.perf_counter()
    with pytest.raises(HarnessError, match=r"bomb.yaml: line \d+: invalid YAML: aliases expand to more than"):
        read_yaml(path)
    assert time.perf_counter() - t0 < 5


def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "deep.yaml").write_text("name: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(HarnessError, match="nested deeper than 64 levels"):
        read_yaml(tmp_path / "tasks" / "deep.yaml")
    assert main(["tasks", "list"]) == 0  # an unrelated broken file does not break the listing
    captured = capsys.readouterr()
    assert "toy_add" in captured.out and "deep.yaml" in captured.err and "Traceback" not in captured.err


def test_ordinary_aliases_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {x: 1, y: [1, 2]}\nu: *b\nv: *b\n")
    assert read_yaml(path) == {"base": {"x": 1, "y": [1, 2]}, "u": {"x": 1, "y": [1, 2]}, "v": {"x": 1, "y": [1, 2]}}


def test_atomic_write_digest_and_safe_name(tmp_path):
    atomic_write(tmp_path / "a" / "f.json", b"{}")
    assert (tmp_path / "a" / "f.json").read_bytes() == b"{}" and len(list((tmp_path / "a").iterdir())) == 1
    assert digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1}) and len(digest(b"x")) == 16
    assert safe_name("org/model name@v1") == "org_model_name@v1"
