"""Test support: tiny causal LMs built from configs with a tokenizer trained offline (no hub), and the small
files a test or benchmark writes. Used by the test suite and the benchmarks; importable from an install."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional

ARCHS = ("gpt2", "neox", "llama")  # dense decoders: the test suite's tiny models
KINDS = ("mixtral", "qwen2_moe", "olmoe", "mamba", "mamba2", "jamba")  # mixtures of experts, state-space, hybrid


def corpus(n: int = 400) -> list[str]:
    """Arithmetic questions and word salad: enough text for a 400-token BPE vocabulary."""
    rng = random.Random(0)
    words = "the a cat dog sat on mat red blue green answer question is what plus minus".split()
    lines = [f"Q: What is {rng.randrange(100)} + {rng.randrange(100)}?\nA: {rng.randrange(200)}" for _ in range(n)]
    lines += [" ".join(rng.choice(words) for _ in range(12)) for _ in range(n)]
    return lines


def build_tiny_model(folder: Path, arch: str = "llama", hidden: int = 32, layers: int = 2, seed: int = 0,
                     chars: Optional[str] = None, max_positions: int = 256) -> Path:
    """A random-init causal LM of one of ``ARCHS`` or ``KINDS`` (mixtures of experts: ``mixtral``, ``qwen2_moe``,
    ``olmoe``; state-space: ``mamba``, ``mamba2``; hybrid: ``jamba``) saved with its
    tokenizer, loadable by ``from_pretrained(folder)``. The tokenizer is a byte-level BPE, or with ``chars`` the
    toy ladder's character-level one over just those characters (anything else is unknown)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    if arch not in ARCHS + KINDS:
        raise ValueError(f"unknown arch {arch!r} (use one of {ARCHS + KINDS})")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>")
    if chars is not None:
        from harness.ladder import build_char_tokenizer

        tokenizer = build_char_tokenizer([chars])
    ids = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, hidden, layers, max_positions, ids))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_config(arch: str, hidden: int, layers: int, max_positions: int, ids: Mapping[str, Any]) -> Any:
    """The transformers config of a tiny ``arch`` model: two attention heads, feed-forward 2 × hidden; the
    mixtures of experts route each token to 2 of 4 experts (Qwen2-MoE also runs a shared expert)."""
    import transformers as tf

    attention = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
                     max_position_embeddings=max_positions, **ids)
    experts = dict(num_experts_per_tok=2, **attention)
    state = dict(hidden_size=hidden, num_hidden_layers=layers, state_size=8, expand=2, conv_kernel=4, **ids)
    return {
        "gpt2": lambda: tf.GPT2Config(n_embd=hidden, n_layer=layers, n_head=2, n_positions=max_positions, **ids),
        "neox": lambda: tf.GPTNeoXConfig(**attention),
        "llama": lambda: tf.LlamaConfig(**attention),
        "mixtral": lambda: tf.MixtralConfig(num_local_experts=4, num_key_value_heads=1, **experts),
        "qwen2_moe": lambda: tf.Qwen2MoeConfig(num_experts=4, moe_intermediate_size=hidden, num_key_value_heads=2,
                                               shared_expert_intermediate_size=2 * hidden, **experts),
        "olmoe": lambda: tf.OlmoeConfig(num_experts=4, **experts),
        "mamba": lambda: tf.MambaConfig(use_mambapy=True, **state),
        "mamba2": lambda: tf.Mamba2Config(num_heads=4, head_dim=16, n_groups=1, **state),
        "jamba": lambda: tf.JambaConfig(num_experts=4, num_key_value_heads=1, attn_layer_period=2, attn_layer_offset=1,
                                        expert_layer_period=2, expert_layer_offset=1, mamba_d_state=8, mamba_d_conv=4,
                                        mamba_expand=2, use_mamba_kernels=False, **experts),
    }[arch]()


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


MC_ROWS = [{"question": f"What is {a} + {b}?", "options": [str(a + b), str(a + b + 1), str(a * b), "banana split"],
            "label": i % 4} for i, (a, b) in enumerate([(1, 2), (3, 4), (10, 7), (22, 5), (9, 9), (40, 2), (6, 13), (8, 8)])]

MC_TASK = ("name: toy_mc\ndataset: {path: mc.jsonl}\nprompt: \"Question: {{question}}\\nAnswer:\"\n"
           "choices: '{{options}}'\nanswer: '{{label}}'\noutput: multiple_choice\n")


def write_toy_tasks(folder: Path) -> Path:
    """``folder`` with two small task files: toy_mc (multiple choice, 8 rows) and toy_add (2-shot generation, 12)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "mc.jsonl", MC_ROWS)
    (folder / "mc.yaml").write_text(MC_TASK + "metrics: [acc, acc_norm, p_correct, brier, target_logprob, gold_rank]\n")
    (folder / "add.yaml").write_text(
        "name: toy_add\ndataset: {generator: arithmetic, args: {digits: 2, n: 12, seed: 3}}\n"
        "prompt: \"Q: What is {{a}} + {{b}}?\\nA:\"\ntarget: '{{answer}}'\noutput: generate\n"
        "generation: {until: [\"\\n\"], max_new_tokens: 6}\nfewshot: {k: 2, seed: 7}\n"
        "metrics: [exact_match, char_edit_distance, token_edit_distance, target_logprob, target_logprob_per_token]\n")
    return folder


def project_config(model: Path, change: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """A config for ``model`` on toy_mc writing to ``results/t``, with top-level fields replaced by ``change``;
    a suite entry whose model is ``"TINY"`` becomes ``model``."""
    cfg: dict[str, Any] = {"name": "t", "suite": [{"model": str(model)}], "tasks": ["toy_mc"], "run": {"device": "cpu"},
                           "output": "results/t", **(change or {})}
    if isinstance(cfg["suite"], list):
        cfg["suite"] = [{**m, "model": str(model)} if isinstance(m, dict) and m.get("model") == "TINY" else m
                        for m in cfg["suite"]]
    return cfg


def write_config(workdir: Path, models: list[Path], tasks: list[str], family: Optional[str] = "tiny", **run: Any
                 ) -> Path:
    """``workdir/config.yaml`` naming ``models`` (local folders) and ``tasks``, CPU, results under ``workdir``. The
    tiny models stand in for one family of sizes (``family``; None: each model's inferred family)."""
    import yaml

    suite = [{"model": str(m), **({"family": family} if family else {})} for m in models]
    cfg = {"name": "t", "suite": suite, "tasks": tasks,
           "run": {"device": "cpu", **run}, "output": str(workdir / "results" / "t")}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class KillOnce:
    """A backend factory (picklable, for executors that run units elsewhere) whose backend for ``model`` SIGKILLs
    its own process on its ``at``-th scoring call, the first time only: ``marker`` (created then) remembers it."""

    def __init__(self, model: str, marker: Path, at: int = 2):
        self.model, self.marker, self.at = model, Path(marker), at

    def __call__(self, spec: Any, **kwargs: Any) -> Any:
        from harness.models.loading import load_backend

        backend = load_backend(spec, **kwargs)
        if spec.name == self.model and not self.marker.exists():
            calls = [0]
            score = backend.loglikelihood

            def loglikelihood(requests: Any) -> Any:
                import os
                import signal

                calls[0] += 1
                if calls[0] >= self.at and not self.marker.exists():
                    self.marker.write_text(str(os.getpid()))
                    os.kill(os.getpid(), signal.SIGKILL)
                return score(requests)

            backend.loglikelihood = loglikelihood  # type: ignore[method-assign]
        return backend
