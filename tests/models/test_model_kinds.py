"""Model kinds beyond dense attention, built tiny from transformers' own config classes: mixtures of experts
(Mixtral, Qwen2-MoE, OLMoE) counted by the parameters a token uses; state-space (Mamba, Mamba-2) and hybrid
(Jamba: Mamba and attention layers, experts) models scored exactly, the engine's attention paths used only
where a probe shows they hold, and the path named in the run log."""

from __future__ import annotations

import pytest
import torch
from test_causal import REQUESTS, naive, shot_requests  # tests/models: on sys.path under pytest

from harness.models.backend import GenerationRequest, Sampling
from harness.models.causal import CausalBackend
from harness.models.generation import cut_at_stop
from harness.models.suite import ModelSpec
from harness.testing import build_tiny_model

H, LAYERS = 32, 2  # build_tiny_model's defaults
MOE = ["mixtral", "qwen2_moe", "olmoe", "jamba"]
STATE = ["mamba", "mamba2", "jamba"]


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    built: dict[str, object] = {}

    def get(arch: str):
        if arch not in built:
            built[arch] = build_tiny_model(tmp_path_factory.mktemp(arch) / arch, arch)
        return built[arch]

    return get


def idle_by_hand(arch: str) -> int:
    """Parameters of the experts a token does not run, from the configs in ``harness.testing.tiny_config``: each
    expert is a gated MLP (three matrices hidden × its width); 2 of 4 experts run per token."""
    width = {"mixtral": 2 * H, "qwen2_moe": H, "olmoe": 2 * H, "jamba": 2 * H}[arch]
    moe_layers = {"jamba": 1}.get(arch, LAYERS)  # Jamba: experts on every second layer (offset 1)
    return moe_layers * (4 - 2) * 3 * H * width


@pytest.mark.parametrize("arch", MOE)
def test_active_parameters_equal_a_hand_count(arch, kinds):
    from transformers import AutoModelForCausalLM

    from harness.models.suite import count_parameters

    model = AutoModelForCausalLM.from_pretrained(kinds(arch))
    total, nonembedding, active = count_parameters(model)
    assert total == sum(p.numel() for p in model.parameters())
    assert active == total - idle_by_hand(arch) and nonembedding < total


@pytest.mark.parametrize("arch", ["mixtral", "qwen2_moe", "olmoe", "mamba", "mamba2", "jamba"])
@pytest.mark.parametrize("batch_size", [1, 8])
def test_scores_equal_the_naive_reference(arch, batch_size, kinds):
    """Log-likelihoods (plain and behind a shared few-shot block) within 1e-4 of one sequence at a time, greedy
    flags identical, at batch sizes 1 and 8; the log line says which path the engine took."""
    b = CausalBackend(ModelSpec(model=str(kinds(arch))), batch_size=batch_size)
    reqs = REQUESTS + shot_requests(3)
    for (c, x), got in zip(reqs, b.loglikelihood(reqs)):
        lp, greedy = naive(b, c, x)
        assert abs(got.logprob - lp) <= 1e-4 and got.is_greedy == greedy, (arch, c[-20:], x)
    how = b.describe()
    if arch in STATE:
        assert not b.packing and not b.prefix_reuse and "Mixer" in how and "right-padded sequence per choice" in how
    else:  # attention with experts: the packed and shared-prefix paths hold (probed) and are used
        assert b.packing and b.prefix_reuse and "packed" in how
    b.close()


def hf_generate(b: CausalBackend, prompt: str, until: tuple[str, ...], max_new: int) -> str:
    from transformers import GenerationConfig

    ids = torch.tensor([b.encode(prompt)])
    config = GenerationConfig(max_new_tokens=max_new, do_sample=False, pad_token_id=b.pad_id,
                              eos_token_id=b.tokenizer.eos_token_id)
    gen = b.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
    return cut_at_stop(b.tokenizer.decode(gen[0, ids.shape[1]:], skip_special_tokens=True), until)


@pytest.mark.parametrize("arch", ["mixtral", "mamba", "mamba2", "jamba"])
def test_generation_equals_hf_generate_at_any_batch_size(arch, kinds):
    """Greedy generations equal Hugging Face's ``generate`` on each prompt alone, at batch sizes 1 and 8; sampled
    ones are the same at both batch sizes."""
    prompts = [f"Q: What is {i} + {3 * i}?\nA:" for i in range(6)] + ["the cat", "a red a red blue"]
    until = ("\n",)
    outs, sampled = {}, {}
    for batch_size in (1, 8):
        b = CausalBackend(ModelSpec(model=str(kinds(arch))), batch_size=batch_size)
        outs[batch_size] = b.generate([GenerationRequest(p, until, 8) for p in prompts])
        sampled[batch_size] = b.generate([GenerationRequest(p, until, 8, Sampling(1.0, 0, 1.0, seed=i))
                                          for i, p in enumerate(prompts)])
        if batch_size == 1:
            assert outs[1] == [hf_generate(b, p, until, 8) for p in prompts]
        b.close()
    assert outs[1] == outs[8] and sampled[1] == sampled[8]
    assert sampled[1] != outs[1]


def test_a_suite_mixing_dense_and_moe_models_plots_active_parameters(kinds, tmp_path, monkeypatch, capsys):
    """Dense Llamas and Mixtrals of two widths in one family: scores.csv records each model's active parameters
    (all of a dense model's), ``classify --x active_params`` places them by those, and says what the axis is."""
    import csv

    from harness.cli import main
    from harness.testing import write_config, write_toy_tasks

    models = [build_tiny_model(tmp_path / f"{arch}-{h}", arch, hidden=h)
              for arch in ("llama", "mixtral") for h in (16, 32)]
    write_toy_tasks(tmp_path / "tasks")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(write_config(tmp_path, models, ["toy_mc"], family="mix"))]) == 0
    with open(tmp_path / "results" / "t" / "scores.csv") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    for name, row in rows.items():
        assert (int(row["active_params"]) < int(row["params"])) == name.startswith("mixtral"), name
    capsys.readouterr()
    assert main(["classify", str(tmp_path / "results" / "t"), "--x", "active_params", "--metric", "acc"]) == 0
    printed = " ".join(capsys.readouterr().err.split())  # notes go to the log
    assert "x = parameters per token: 2 mixture-of-experts model(s)" in printed
    assert main(["classify", str(tmp_path / "results" / "t"), "--metric", "acc"]) == 0
    assert "--x active_params plots parameters per token" in " ".join(capsys.readouterr().err.split())


def test_the_run_log_names_the_path_a_state_space_model_takes(kinds, tmp_path, monkeypatch, capsys):
    """``harness run`` on a Mamba model (multiple choice and generation): scored, and the log says how."""
    from harness.cli import main
    from harness.testing import write_config, write_toy_tasks

    write_toy_tasks(tmp_path / "tasks")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(write_config(tmp_path, [kinds("mamba")], ["toy_mc", "toy_add"]))]) == 0
    log = " ".join(capsys.readouterr().err.split())
    assert "state-space/recurrent layers (MambaMixer): one right-padded sequence per choice" in log
    assert (tmp_path / "results" / "t" / "models" / "mamba" / "toy_add.jsonl").is_file()
