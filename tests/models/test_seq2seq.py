"""Encoder-decoder models (tiny T5 and BART built here): log-likelihoods against a naive one-pair-at-a-time
computation and against lm-eval's seq2seq backend, greedy generation against ``model.generate``, the run
choosing the backend from the model's config, and perplexity refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.errors import HarnessError
from harness.models.backend import GenerationRequest
from harness.models.loading import load_backend, spec_architecture
from harness.models.seq2seq import Seq2SeqBackend
from harness.models.suite import ModelSpec

REQUESTS = [("Question: what is 2 plus 2?\nAnswer:", " 4"), ("Question: what is 2 plus 2?\nAnswer:", " five"),
            ("the cat sat on the ", "mat"), ("", "the dog sat"), ("a red " * 20, "blue green answer")]
MC = [(f"Question: what is {i} plus {i}?\nAnswer:", f" {c}") for i in range(6) for c in (2 * i, 2 * i + 1, "cat")]


def build(folder: Path, arch: str, tokenizer_from: Path) -> Path:
    """A random-init T5 or BART whose tokenizer appends EOS to every encoded text (as T5's does)."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        PreTrainedTokenizerFast,
        T5Config,
        T5ForConditionalGeneration,
    )

    tok = Tokenizer.from_file(str(tokenizer_from / "tokenizer.json"))
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                        unk_token="<unk>")
    torch.manual_seed(0)
    if arch == "t5":
        model = T5ForConditionalGeneration(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64,
                                                    num_layers=2, num_heads=2, pad_token_id=0, eos_token_id=2,
                                                    decoder_start_token_id=0))
    else:
        model = BartForConditionalGeneration(BartConfig(
            vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, pad_token_id=0, bos_token_id=1,
            eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=None, max_position_embeddings=256))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["t5", "bart"])
def seq2seq(request, tmp_path_factory, tiny_llama) -> Path:
    return build(tmp_path_factory.mktemp(request.param), request.param, tiny_llama)


def naive(backend: Seq2SeqBackend, context: str, continuation: str) -> tuple[float, bool]:
    (ctx, cont), = backend.encode_pairs([(context, continuation)])
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([ctx]), labels=torch.tensor([cont])).logits[0]
    logp = F.log_softmax(logits.float(), -1)
    return sum(logp[i, t].item() for i, t in enumerate(cont)), all(logp[i].argmax().item() == t for i, t in enumerate(cont))


def test_loglikelihood_equals_one_pair_at_a_time(seq2seq):
    backend = Seq2SeqBackend(ModelSpec(model=str(seq2seq)), device="cpu", batch_size=3)
    (ctx, cont), = backend.encode_pairs([("Answer is ", "yes")])
    assert ctx[-1] == backend.tokenizer.eos_token_id and backend.tokenizer.eos_token_id not in cont  # EOS not scored
    assert backend.tokenizer.decode(cont).startswith(" ")  # the trailing space moved into the continuation
    for (c, x), res in zip(REQUESTS + MC, backend.loglikelihood(REQUESTS + MC)):
        lp, greedy = naive(backend, c, x)
        assert abs(res.logprob - lp) <= 1e-4 and res.is_greedy == greedy
    backend.close()


@pytest.mark.slow
def test_loglikelihood_and_accuracy_equal_lm_eval(seq2seq):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    backend = Seq2SeqBackend(ModelSpec(model=str(seq2seq)), device="cpu", batch_size=8)
    ours = backend.loglikelihood(MC + REQUESTS[:3])
    backend.close()
    lm = HFLM(pretrained=str(seq2seq), backend="seq2seq", device="cpu", batch_size=8, dtype="float32")
    theirs = lm.loglikelihood([Instance("loglikelihood", {}, args, 0) for args in MC + REQUESTS[:3]])
    assert np.abs(np.array([o.logprob for o in ours]) - np.array([t[0] for t in theirs])).max() <= 1e-4
    assert [o.is_greedy for o in ours] == [t[1] for t in theirs]
    ours_mc = np.array([o.logprob for o in ours[: len(MC)]]).reshape(-1, 3)
    theirs_mc = np.array([t[0] for t in theirs[: len(MC)]]).reshape(-1, 3)
    lengths = np.array([[len(x) for _, x in MC[i:i + 3]] for i in range(0, len(MC), 3)])
    assert (ours_mc.argmax(1) == theirs_mc.argmax(1)).all()  # acc
    assert ((ours_mc / lengths).argmax(1) == (theirs_mc / lengths).argmax(1)).all()  # acc_norm


def test_generation_equals_model_generate(seq2seq):
    backend = Seq2SeqBackend(ModelSpec(model=str(seq2seq)), device="cpu", batch_size=2)
    prompts = [c for c, _ in REQUESTS if c] + ["short"]
    got = backend.generate([GenerationRequest(p, ("\n",), 6) for p in prompts])
    for p, text in zip(prompts, got):
        ids = torch.tensor([backend.tokenizer(p)["input_ids"]])
        with torch.no_grad():
            ref = backend.model.generate(input_ids=ids, max_new_tokens=6, do_sample=False, num_beams=1)
        assert text == backend.tokenizer.decode(ref[0, 1:], skip_special_tokens=True).split("\n")[0]
    backend.close()


def test_the_run_picks_the_backend_and_refuses_perplexity(seq2seq, tiny_llama):
    assert spec_architecture(ModelSpec(model=str(seq2seq))) == "seq2seq"
    assert spec_architecture(ModelSpec(model=str(tiny_llama))) == "causal"
    assert spec_architecture(ModelSpec(model=str(seq2seq), arch="causal")) == "causal"
    backend = load_backend(ModelSpec(model=str(seq2seq)), device="cpu", dtype="float32", batch_size=4, token_budget=None)
    assert isinstance(backend, Seq2SeqBackend) and "encoder-decoder" in backend.describe()
    with pytest.raises(HarnessError, match="not comparable on an encoder-decoder model"):
        backend.loglikelihood_rolling(["some text"])
    backend.close()


def test_a_mixed_suite_records_the_architecture_and_splits_curves(seq2seq, tiny_models, workdir):
    import yaml

    from harness.analysis import load_results
    from harness.analysis.results import curves
    from harness.cli import main

    suite = [{"model": str(tiny_models["llama"]), "label": "dec"}, {"model": str(tiny_models["gpt2"]), "label": "dec2"},
             {"model": str(seq2seq), "label": "encdec"}]
    for entry in suite:
        entry["family"] = "tiny"  # one family: curves split by architecture only
    (workdir / "c.yaml").write_text(yaml.safe_dump({"name": "mixed", "suite": suite, "tasks": ["toy_mc"],
                                                   "run": {"limit": 8}}))
    assert main(["run", "c.yaml"]) == 0
    import pandas as pd

    scores = pd.read_csv(workdir / "results" / "mixed" / "scores.csv")
    assert dict(zip(scores["model"], scores["arch"])) == {"dec": "causal", "dec2": "causal", "encdec": "seq2seq"}
    names = {c.task for c in curves(load_results(workdir / "results" / "mixed"))}
    assert names == {"toy_mc@causal", "toy_mc@seq2seq"}
