"""PEFT LoRA adapters as suite entries: three checkpoints of one fine-tuning run on a tiny Llama, evaluated in one
run with the base loaded once, keyed apart by their files, placed on x by their step, and scored as PEFT's own
merged models score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.files import safe_name
from harness.testing import build_tiny_model, write_toy_tasks

pytest.importorskip("peft")  # the 'adapters' extra (installed by CI)
STEPS = (100, 200, 300)


@pytest.fixture(scope="module")
def lora(tmp_path_factory) -> tuple[Path, list[Path], list[Path]]:
    """The base, three LoRA checkpoints (random non-zero weights, ``trainer_state.json`` with their step) and
    each merged into the base by PEFT (``merge_and_unload``), saved as a plain model."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("lora")
    base = build_tiny_model(root / "base", "llama")
    adapters, merged = [], []
    for i, step in enumerate(STEPS):
        torch.manual_seed(i)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))
        folder = root / "run" / f"checkpoint-{step}"
        model.save_pretrained(folder)
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        adapters.append(folder)
        full = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder).merge_and_unload()
        full.save_pretrained(root / f"merged-{step}")
        AutoTokenizer.from_pretrained(base).save_pretrained(root / f"merged-{step}")
        merged.append(root / f"merged-{step}")
    return base, adapters, merged


def test_three_adapters_one_base_load_scored_as_merged(lora, tmp_path, monkeypatch, capsys):
    from harness.models import base as hf

    base, adapters, merged = lora
    write_toy_tasks(tmp_path / "tasks")
    monkeypatch.chdir(tmp_path)
    loads = []
    real = hf.load_pretrained
    monkeypatch.setattr(hf, "load_pretrained", lambda spec, *a, **k: (loads.append(spec.model), real(spec, *a, **k))[1])
    suite = ([{"model": str(base), "adapter": str(a), "family": "lora"} for a in adapters]
             + [{"model": str(m), "label": f"merged-{s}", "family": "merged", "step": s}
                for m, s in zip(merged, STEPS)])
    out = tmp_path / "out"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "lora", "suite": suite, "tasks": ["toy_mc", "toy_add"],
                                   "run": {"device": "cpu"}, "output": str(out)}))
    assert main(["run", str(cfg)]) == 0
    log = " ".join(capsys.readouterr().err.split())  # the log lines may wrap
    assert loads.count(str(base)) == 1  # the base loaded once for the three adapters
    assert log.count("weights kept from the previous model)") == 2 and log.count("weights loaded)") == 1, log

    manifest = json.loads((out / "manifest.json").read_text())
    metas = {m["label"]: m for m in manifest["models"]}
    names = [f"base+checkpoint-{s}" for s in STEPS]
    assert [metas[n]["step"] for n in names] == list(STEPS)  # from each checkpoint's trainer_state.json
    assert len({metas[n]["adapter_hash"] for n in names}) == 3 and all(metas[n]["adapter"] for n in names)
    for name, step in zip(names, STEPS):  # each adapter scores as PEFT's own merged model
        for task in ("toy_mc", "toy_add"):
            ours = [json.loads(x) for x in (out / "models" / safe_name(name) / f"{task}.jsonl").read_text().splitlines()]
            ref = [json.loads(x) for x in (out / "models" / f"merged-{step}" / f"{task}.jsonl").read_text().splitlines()]
            if task == "toy_mc":
                assert [r["logprobs"] for r in ours] == [pytest.approx(r["logprobs"], abs=1e-4) for r in ref]
            else:
                assert [r["generation"] for r in ours] == [r["generation"] for r in ref]
    mc = {n: json.loads((out / "models" / safe_name(n) / "toy_mc.jsonl").read_text().splitlines()[0])["logprobs"] for n in names}
    assert mc[names[0]] != mc[names[1]] != mc[names[2]]  # the adapters change the model: results keyed apart

    assert main(["run", str(cfg)]) == 0  # every pair reused under its key
    assert "(0 computed, 12 reused" in capsys.readouterr().out
    assert main(["classify", str(out), "--x", "step", "--metric", "acc"]) == 0


def test_a_folder_that_is_not_an_adapter_is_one_line(lora, tmp_path, monkeypatch, capsys):
    base, _, _ = lora
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "bad", "suite": [{"model": str(base), "adapter": str(base)}],
                                   "tasks": ["toy_mc"], "run": {"device": "cpu"}, "output": str(tmp_path / "out")}))
    write_toy_tasks(tmp_path / "tasks")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "adapter_config.json" in err


def test_no_base_is_kept_after_the_run(lora, tmp_path, monkeypatch):
    """The base an adapter entry leaves for the next one is released when the run ends."""
    from harness.models import adapters

    base, checkpoints, _ = lora
    write_toy_tasks(tmp_path / "tasks")
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "one", "suite": [{"model": str(base), "adapter": str(checkpoints[0])}],
                                   "tasks": ["toy_mc"], "run": {"device": "cpu"}, "output": str(tmp_path / "out")}))
    assert main(["run", str(cfg)]) == 0
    assert adapters._KEPT == {}
