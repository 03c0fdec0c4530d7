"""A 2-model mini ladder trains in seconds, reloads with from_pretrained, evaluates, and is reproducible."""

import dataclasses
import hashlib

import pytest

from harness.ladder import RECIPES, TOY_TASKS, Recipe, Size, ensure_ladder, list_built
from harness.models.causal import CausalBackend
from harness.scoring import evaluate
from harness.tasks import load_task_file, prepare
from harness.tasks.sources.native import PACKAGE_TASKS

MINI = Recipe("mini", TOY_TASKS, (Size("a", 8, 1, 1), Size("b", 16, 1, 2)), seeds=(0,), steps=15,
              batch_size=16, train_docs=200, workers=1)


def weights(spec) -> str:
    return hashlib.sha256((spec.path / "model.safetensors").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("ladders")
    return root, ensure_ladder(MINI, root=root)


def test_mini_ladder_builds_reloads_and_evaluates(mini):
    root, specs = mini
    assert [s.name for s in specs] == ["a-seed0", "b-seed0"]
    metas = [m for m, _ in list_built(root)]
    assert [m["size"] for m in metas] == ["a", "b"] and metas[0]["params"] < metas[1]["params"]
    assert all(m["tokens"] > 0 and m["flops"] == 6.0 * m["params"] * m["tokens"] for m in metas)
    (task,) = load_task_file(PACKAGE_TASKS / "toy" / "toy_add.yaml")
    p = prepare(task, limit=5)
    for spec in specs:
        backend = CausalBackend(spec, device="cpu")
        records = evaluate(backend, p)
        backend.close()
        assert len(records) == 5 and all(r["target_logprob"] < 0 for r in records)
        assert backend.tokenizer("12+34=")["input_ids"][0] == backend.tokenizer.bos_token_id  # BOS as in training


def test_same_seed_same_weights_and_cache_reuse(mini, tmp_path):
    root, specs = mini
    logs = []
    again = ensure_ladder(MINI, root=root, log=logs.append)
    assert [s.model for s in again] == [s.model for s in specs] and logs == []  # cached: nothing trained
    other = ensure_ladder(MINI, root=tmp_path)  # a fresh build elsewhere
    assert [weights(s) for s in other] == [weights(s) for s in specs]


def test_recipe_change_rebuilds(mini):
    root, specs = mini
    changed = dataclasses.replace(MINI, steps=16)
    logs = []
    new = ensure_ladder(changed, root=root, log=logs.append)
    assert any("training ladder" in line for line in logs)
    assert new[0].model != specs[0].model and weights(new[0]) != weights(specs[0])


def test_unknown_ladder_is_a_clear_error():
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="unknown ladder 'huge'"):
        ensure_ladder("huge")
    assert "toy" in RECIPES and len(RECIPES["toy"].sizes) >= 6


def test_progress_reports_estimated_time_and_answer_loss_changes_training(tmp_path):
    calls = []
    recipe = dataclasses.replace(MINI, answer_loss=True, sizes=(Size("a", 8, 1, 1), Size("b", 16, 1, 2, lr=1e-3)))
    specs = ensure_ladder(recipe, root=tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] and len(calls) == 3  # start, then each model
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert calls[2][0] - calls[1][0] > calls[1][0]  # the wider model is estimated to cost more
    plain = ensure_ladder(dataclasses.replace(MINI), root=tmp_path)
    assert weights(specs[0]) != weights(plain[0])  # the loss covers the answer only: other weights


def test_checkpoints_of_one_run_as_a_suite_on_the_tokens_axis_with_a_duplicate_flagged(tmp_path, monkeypatch):
    """One toy training run saves 4 checkpoints; a suite of them (one folder listed twice under another name) runs,
    records step and tokens, classifies on the tokens axis, and flags the identical weights in the log and the
    manifest."""
    import json
    import shutil

    import yaml

    from harness.analysis import load_classified
    from harness.cli import main
    from harness.ladder import _prepare_corpus, train_model

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    recipe = Recipe("ckpt", TOY_TASKS, sizes=(Size("s", 16, 2, 2),), seeds=(0,), steps=160, train_docs=2000,
                    answer_loss=True, workers=1)
    base = tmp_path / "run"
    corpus, tok = _prepare_corpus(recipe, base, PACKAGE_TASKS)
    train_model(recipe, recipe.sizes[0], 0, base / "s-seed0", corpus, tok, checkpoints=(20, 40, 80, 160))
    folders = sorted((base / "s-seed0-checkpoints").iterdir(), key=lambda p: int(p.name[4:]))
    assert [p.name for p in folders] == ["step20", "step40", "step80", "step160"]
    shutil.copytree(folders[1], tmp_path / "copy-of-step40")  # the same weights under another name
    suite = [{"model": str(p), "label": p.name} for p in folders] + [{"model": str(tmp_path / "copy-of-step40"),
                                                                      "label": "again40", "step": 40}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "ckpt", "suite": suite, "tasks": ["toy_add"],
                                                    "run": {"limit": 40}}))
    assert main(["run", "c.yaml"]) == 0
    out = tmp_path / "results" / "ckpt"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["duplicate_weights"] == [["step40", "again40"]]
    scores = __import__("pandas").read_csv(out / "scores.csv")
    steps = dict(zip(scores["model"], scores["step"]))
    assert steps == {"step20": 20, "step40": 40, "step80": 80, "step160": 160, "again40": 40}
    tokens = dict(zip(scores["model"], scores["tokens"]))
    assert tokens["step20"] < tokens["step40"] == tokens["again40"] < tokens["step80"] < tokens["step160"]
    labelled = load_classified(out, x="tokens").curves
    assert "exact_match" in {lc.curve.metric for lc in labelled}
    assert all(lc.curve.x_name == "tokens" and len(set(lc.curve.x)) == 4 for lc in labelled)
