"""``harness tasks show --json``: the rendered instances as data, exactly what is scored."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli import main
from harness.tasks import prepare, resolve_tasks


def shown(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["tasks", "show", *args, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_show_json_multiple_choice_and_generation(workdir, capsys):
    mc = shown(capsys, "toy_mc", "--n", "3")
    assert [r["doc_id"] for r in mc] == [0, 1, 2]
    first = mc[0]
    assert first["context"] == "Question: What is 1 + 2?\nAnswer:"
    assert first["continuations"] == [" 3", " 4", " 2", " banana split"]  # delimiter included, as scored
    assert first["gold"] == 0 and first["target"] == "3"

    gen = shown(capsys, "toy_add", "--n", "4")
    (task,) = resolve_tasks(["toy_add"], workdir)
    insts = prepare(task, 4).instances
    assert [r["context"] for r in gen] == [i.context for i in insts]
    assert gen[0]["context"].count("Q: What is") == 3  # two few-shot examples, then the question
    assert gen[0]["continuations"] == [" " + insts[0].target] and gen[0]["gold"] == 0
    assert gen[0]["target"] == insts[0].target


def test_show_json_toy_tasks_shipped_with_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no ./tasks: only the packaged ones
    rows = shown(capsys, "toy_*", "--n", "2")
    assert {r["task"] for r in rows} == {"toy_add", "toy_add_choice", "toy_add_carry"}
    add = next(r for r in rows if r["task"] == "toy_add")
    choice = next(r for r in rows if r["task"] == "toy_add_choice")
    assert add["context"] == choice["context"]  # the same problems, two ways
    assert add["continuations"] == [add["target"]]  # target_delimiter is "" for the toy tasks
    assert len(choice["continuations"]) == 4 and choice["continuations"][choice["gold"]] == add["target"]


def test_version_and_packaged_config_by_name(tmp_path, monkeypatch, capsys):
    import pytest

    from harness.config import load_config, resolve_config
    from harness.errors import HarnessError

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("harness ")
    monkeypatch.chdir(tmp_path)
    config = load_config(resolve_config("quickstart"))
    assert config.name == "quickstart" and config.tasks == ["toy_*"]
    with pytest.raises(HarnessError, match="packaged: .*quickstart"):
        resolve_config("quikstart")
    (tmp_path / "mine.yaml").write_text("name: mine\nsuite: {ladder: toy}\ntasks: [toy_add]\n")
    assert load_config(resolve_config("mine.yaml")).name == "mine"  # a path still works
    checkout = Path(__file__).resolve().parents[2]  # the shipped config is the checkout's configs/quickstart.yaml
    assert resolve_config("quickstart").resolve() == (checkout / "configs" / "quickstart.yaml").resolve()


def test_lm_eval_listing_without_lm_eval_says_so(monkeypatch, capsys):
    from harness.tasks.sources import lm_eval_index

    monkeypatch.setattr(lm_eval_index, "installed_tasks", lambda: None)
    for listing in (["tasks", "list", "--source", "lm_eval"], ["tasks", "list", "--source", "lm_eval", "--json"],
                    ["tasks", "show", "lm_eval:arc_easy"]):
        assert main(listing) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "need lm-eval: pip install" in err


def test_validate_names_both_files_that_define_one_task(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "d.jsonl").write_text('{"q": "x", "opts": ["a", "b"], "gold": 1}\n')
    for f in ("a", "b"):
        (tmp_path / "tasks" / f"{f}.yaml").write_text(
            "name: dup\ndataset: {path: d.jsonl}\nprompt: '{{q}}'\nchoices: '{{opts}}'\nanswer: '{{gold}}'\n"
            "output: multiple_choice\nmetrics: [acc]\n")
    assert main(["tasks", "validate"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "b.yaml: name: task name 'dup' is also defined in" in err and "a.yaml" in err
