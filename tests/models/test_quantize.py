"""Weight-only int8/int4 quantization (torchao): parameter counts stay unquantized, weights take fewer bytes,
scores move a little, results are keyed apart, and a config's variants run into sibling folders that
``compare`` reads."""

from __future__ import annotations

import json

import pytest
import yaml

from harness.errors import HarnessError
from harness.models.causal import CausalBackend
from harness.models.suite import ModelSpec, Quantization

pytest.importorskip("torchao")  # the 'quant' extra (installed by CI)

REQUESTS = [("Question: What is 2 + 2?\nAnswer:", " 4"), ("the cat sat on the ", "mat"),
            ("a red " * 10, "blue green answer")]


def test_int8_and_int4_keep_counts_shrink_weights_and_move_scores_a_little(tiny_llama):
    full = CausalBackend(ModelSpec(model=str(tiny_llama)), device="cpu")
    ref = [r.logprob for r in full.loglikelihood(REQUESTS)]
    for bits in (8, 4):
        q = CausalBackend(ModelSpec(model=str(tiny_llama), quantization=Quantization(bits=bits)), device="cpu")
        assert q.parameter_counts() == full.parameter_counts()
        assert q.weight_bytes < full.weight_bytes and f"int{bits} weights" in q.describe()
        got = [r.logprob for r in q.loglikelihood(REQUESTS)]
        assert got != ref and max(abs(a - b) for a, b in zip(got, ref)) < 0.5 * len(REQUESTS[0][0])
        q.close()
    full.close()


def test_a_group_size_that_does_not_divide_a_layer_is_one_line(tiny_llama):
    with pytest.raises(HarnessError, match="not a multiple of group_size 1000"):
        CausalBackend(ModelSpec(model=str(tiny_llama), quantization=Quantization(bits=4, group_size=1000)), device="cpu")


def test_a_model_without_linear_layers_is_refused_not_recorded_as_quantized(tiny_models):
    with pytest.raises(HarnessError, match="GPT2LMHeadModel has no nn.Linear layers"):
        CausalBackend(ModelSpec(model=str(tiny_models["gpt2"]), quantization=Quantization(bits=8)), device="cpu")


def test_variants_run_into_sibling_folders_keyed_apart_and_compare_reads_them(tiny_models, workdir, capsys):
    from harness.cli import main
    from harness.testing import build_tiny_model

    wide = build_tiny_model(workdir / "wide", "llama", hidden=64)
    suite = [{"model": str(tiny_models["neox"]), "label": "neox", "family": "tiny"},
             {"model": str(tiny_models["llama"]), "label": "llama", "family": "tiny"},
             {"model": str(wide), "label": "wide", "family": "tiny"}]
    (workdir / "q.yaml").write_text(yaml.safe_dump({
        "name": "q", "suite": suite, "tasks": ["toy_mc"], "output": "results/q",
        "run": {"dtype": "float32", "limit": 12, "quantization": [None, {"bits": 4}]}}))
    assert main(["run", "q.yaml"]) == 0
    out = capsys.readouterr().out
    assert out.count("(3 computed, 0 reused") == 2  # the int4 run reuses nothing of the float32 one
    for variant, q in (("float32", None), ("int4", "int4")):
        manifest = json.loads((workdir / "results" / "q" / variant / "manifest.json").read_text())
        assert {m["quantization"] for m in manifest["models"]} == {q}
    f32 = {m["label"]: m for m in json.loads((workdir / "results/q/float32/manifest.json").read_text())["models"]}
    i4 = {m["label"]: m for m in json.loads((workdir / "results/q/int4/manifest.json").read_text())["models"]}
    assert all(i4[k]["params"] == f32[k]["params"] and i4[k]["weight_bytes"] < f32[k]["weight_bytes"] for k in f32)
    summary = json.loads((workdir / "results/q/int4/models/llama/toy_mc.json").read_text())
    assert summary["peak_memory_bytes"] > 50 * 2**20  # the process's peak resident set since the model loaded
    assert main(["compare", "results/q/float32", "results/q/int4"]) == 0
    assert "task×metric curves in both" in capsys.readouterr().out
