"""The HF backend against a naive one-sequence-at-a-time float32 reference, on three architectures.

``HARNESS_TEST_DEVICE=cuda`` runs these on a GPU (CI runs them on CPU)."""

import os
import random

import pytest
import torch
import torch.nn.functional as F

from harness.models.backend import GenerationRequest
from harness.models.causal import CausalBackend
from harness.models.generation import cut_at_stop
from harness.models.suite import ModelSpec, count_parameters

DEVICE = os.environ.get("HARNESS_TEST_DEVICE", "cpu")
REQUESTS = [
    ("Question: What is 2 + 2?\nAnswer:", " 4"),
    ("Question: What is 2 + 2?\nAnswer:", " banana split with extra words"),
    ("the cat sat on the ", "mat"),  # trailing space moves into the continuation
    ("", "the dog sat"),  # empty context: scored after the prefix token
    ("a red " * 30, "blue green answer"),
    ("Q: What is 10 + 7?\nA:", " 17"),
]


def naive(backend: CausalBackend, context: str, continuation: str) -> tuple[float, bool]:
    ctx, cont = backend.encode_pair(context, continuation)
    ids = torch.tensor([ctx + cont], device=backend.device)
    with torch.no_grad():
        logp = F.log_softmax(backend.model(input_ids=ids).logits[0].float(), -1)
    pos = range(len(ctx) - 1, len(ctx) + len(cont) - 1)
    lp = sum(logp[p, t].item() for p, t in zip(pos, cont))
    greedy = all(logp[p].argmax().item() == t for p, t in zip(pos, cont))
    return lp, greedy


@pytest.fixture(scope="module", params=["gpt2", "neox", "llama"])
def backend(request, tiny_models):
    b = CausalBackend(ModelSpec(model=str(tiny_models[request.param])), device=DEVICE, batch_size=64)
    yield b
    b.close()


def test_loglikelihood_equals_naive_reference(backend):
    got = backend.loglikelihood(REQUESTS)
    for (c, x), res in zip(REQUESTS, got):
        lp, greedy = naive(backend, c, x)
        assert abs(res.logprob - lp) <= 1e-4, (c, x)
        assert res.is_greedy == greedy


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_batch_size_invariance(backend, batch_size):
    reqs = REQUESTS * 3
    random.Random(batch_size).shuffle(reqs)
    ref = {r: ll.logprob for r, ll in zip(reqs, backend.loglikelihood(reqs))}
    old = backend.max_rows
    backend.max_rows = batch_size
    try:
        got = backend.loglikelihood(reqs)
    finally:
        backend.max_rows = old
    assert max(abs(g.logprob - ref[r]) for r, g in zip(reqs, got)) <= 1e-4


def test_rolling_loglikelihood_equals_full_sequence(backend):
    text = "the cat sat on the mat and the dog sat on the red mat"
    ids = [backend.bos_id] + backend.tokenize(text)
    with torch.no_grad():
        logp = F.log_softmax(backend.model(input_ids=torch.tensor([ids], device=backend.device)).logits[0].float(), -1)
    full = sum(logp[i, ids[i + 1]].item() for i in range(len(ids) - 1))
    (one,) = backend.loglikelihood_rolling([text])
    assert one.n_tokens == len(ids) - 1 and abs(one.logprob - full) <= 1e-4
    # small disjoint windows lose context, so the total changes, but every token is scored once
    (win,) = backend.loglikelihood_rolling([text], window=4)
    assert win.n_tokens == len(ids) - 1 and win.logprob != pytest.approx(full)
    (slide,) = backend.loglikelihood_rolling([text], window=8, stride=2)
    assert slide.n_tokens == len(ids) - 1


def test_generation_greedy_and_batch_invariant(backend):
    reqs = [GenerationRequest(c, ("\n",), 8) for c, _ in REQUESTS if c] * 2
    one = [backend.generate([r])[0] for r in reqs]
    many = backend.generate(reqs)
    assert one == many
    # greedy: the first generated token is the argmax of the next-token distribution
    ctx = backend.encode(reqs[0].context)
    with torch.no_grad():
        nxt = backend.model(input_ids=torch.tensor([ctx], device=backend.device)).logits[0, -1].argmax().item()
    full = backend.tokenizer.decode([nxt], skip_special_tokens=True)
    assert many[0].startswith(full.split("\n")[0]) or full.startswith("\n")
    assert all("\n" not in g for g in many)


def test_generation_equals_hf_generate_and_drops_finished_rows(backend, monkeypatch):
    """The decoding loop gives HF ``generate``'s greedy tokens, and rows leave the batch when they finish."""
    from transformers import DynamicCache, GenerationConfig

    prompts = [f"Q: What is {i} + {2 * i}?\nA:" for i in range(12)] + ["the cat", "a red a red"]
    until = ("\n", " is")
    ref = []
    for p in prompts:  # one prompt at a time, no stop criteria, cut afterwards
        ids = torch.tensor([backend.encode(p)], device=backend.device)
        config = GenerationConfig(max_new_tokens=10, do_sample=False, pad_token_id=backend.pad_id,
                                  eos_token_id=backend.tokenizer.eos_token_id)
        gen = backend.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
        ref.append(cut_at_stop(backend.tokenizer.decode(gen[0, ids.shape[1]:], skip_special_tokens=True), until))
    kept = []
    real = DynamicCache.batch_select_indices
    monkeypatch.setattr(DynamicCache, "batch_select_indices", lambda self, idx: (kept.append(len(idx)), real(self, idx))[1])
    got = backend.generate([GenerationRequest(p, until, 10) for p in prompts])
    assert got == ref
    stopped_early = sum(len(backend.tokenize(g)) < 9 for g in got)
    assert (len(kept) > 0) == (stopped_early > 0) and all(k < len(prompts) for k in kept)


def test_stop_sequences_cut_each_row():
    assert cut_at_stop("12 + 3\nQ: next", ["\n"]) == "12 + 3"
    assert cut_at_stop("abc END def STOP", ["STOP", "END"]) == "abc "
    assert cut_at_stop("no stop here", ["\n", ""]) == "no stop here"


def test_generation_stops_at_stop_string(tiny_llama):
    b = CausalBackend(ModelSpec(model=str(tiny_llama)), device=DEVICE)
    free = b.generate([GenerationRequest("the cat", (), 12)])[0]
    assert len(free) > 2
    stop = free[1:3]  # a stop string the model will produce
    cut = b.generate([GenerationRequest("the cat", (stop,), 12)])[0]
    assert cut == free[: free.find(stop)]
    b.close()


MC = [(f"Question: what is {a} plus {b}? Think of the numbers {a} and {b}.\nAnswer:", f" {c}")
      for a, b in [(1, 2), (3, 4), (10, 7), (22, 5), (9, 9), (40, 2), (6, 13), (8, 8)]
      for c in (a + b, a * b, "banana split", a + b + 1)]


@pytest.mark.parametrize("packing", [True, False])
def test_out_of_memory_halves_and_gives_identical_results(tiny_llama, monkeypatch, packing):
    b = CausalBackend(ModelSpec(model=str(tiny_llama)), device=DEVICE, batch_size=16)
    assert b.packing  # the probe accepts llama
    b.packing = packing
    requests = REQUESTS * 2 + MC
    ref = b.loglikelihood(requests)
    name = "_score_packed_batch" if packing else "_score_batch"
    real = getattr(b, name)
    tried, ran = [], []

    def flaky(items, *args):
        tried.append(len(items))
        if len(items) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        ran.append(len(items))
        return real(items, *args)

    monkeypatch.setattr(b, name, flaky)
    got = b.loglikelihood(requests)
    assert [g.logprob for g in got] == [r.logprob for r in ref]
    assert tried[0] > 3 and max(ran) <= 3 and b.max_rows <= 3
    b.close()
    small = CausalBackend(ModelSpec(model=str(tiny_llama)), device=DEVICE, batch_size=3)  # smaller from the start
    small.packing = packing
    assert [g.logprob for g in got] == [r.logprob for r in small.loglikelihood(requests)]
    small.close()


@pytest.mark.parametrize("arch", ["gpt2", "neox", "llama"])
def test_shared_context_packing_matches_one_sequence_per_choice(tiny_models, arch):
    b = CausalBackend(ModelSpec(model=str(tiny_models[arch])), device=DEVICE)
    assert b.packing, f"{arch}: packed scoring should pass the probe"
    packed = b.loglikelihood(MC + REQUESTS)
    b.packing = False
    plain = b.loglikelihood(MC + REQUESTS)
    for (ctx, cont), p, q in zip(MC + REQUESTS, packed, plain):
        assert p.n_tokens == q.n_tokens and p.is_greedy == q.is_greedy
        assert abs(p.logprob - q.logprob) <= 1e-4, (ctx, cont)
        assert abs(p.logprob - naive(b, ctx, cont)[0]) <= 1e-4
    b.close()


def test_parameter_counts(tiny_models):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"])
    total, nonemb, active = count_parameters(m)
    emb = m.transformer.wte.weight.numel() + m.transformer.wpe.weight.numel()  # lm_head is tied to wte
    assert total == sum(p.numel() for p in m.parameters()) and nonemb == total - emb and active == total


def test_missing_model_path_is_a_clear_error(tmp_path):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="does not exist"):
        CausalBackend(ModelSpec(model=str(tmp_path / "nope")), device=DEVICE)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(HarnessError, match="could not load model"):
        CausalBackend(ModelSpec(model=str(tmp_path / "broken")), device=DEVICE)


SHOTS = "".join(f"Question: What is {a} plus {b}?\nAnswer: the red cat sat on {a + b} mats\n\n"
                for a, b in ((2, 3), (10, 7), (4, 4), (6, 1), (8, 9)))  # the same block before every question


def shot_requests(n_docs: int = 7) -> list[tuple[str, str]]:
    return [(SHOTS + f"Question: What is {i} plus {i + 2}?\nAnswer:", f" {choice}")
            for i in range(n_docs) for choice in ("the dog sat", "blue green answer is", f"{2 * i + 2} mats", "a")]


@pytest.mark.parametrize("batch_size", [1, 3, 64])
@pytest.mark.parametrize("shared_attention", [True, False], ids=["one-copy", "repeated-cache"])
def test_shared_prefix_reuse_scores_as_each_document_alone(backend, batch_size, shared_attention):
    """Contexts sharing a few-shot block: the block's keys and values are computed once and reused (attended as
    one copy, or repeated per row as a cache), and every score equals scoring without reuse and the naive
    reference (|Δ| ≤ 1e-4), with the same greedy flags, at any batch size."""
    from harness.models.causal import MIN_SHARED_PREFIX, shared_prefix

    reqs = shot_requests()
    assert backend.prefix_reuse and backend.shared_attention and "attended as one copy" in backend.describe()
    assert shared_prefix([backend.encode_pair(c, x)[0] for c, x in reqs], MIN_SHARED_PREFIX) >= MIN_SHARED_PREFIX
    old = backend.max_rows
    backend.max_rows, backend.shared_attention = batch_size, shared_attention
    try:
        reused = backend.loglikelihood(reqs)
        backend.prefix_reuse = False
        plain = backend.loglikelihood(reqs)
    finally:
        backend.max_rows, backend.prefix_reuse, backend.shared_attention = old, True, True
    assert backend._prefix[0], "the prefix cache was built"
    for a, b in zip(reused, plain):
        assert abs(a.logprob - b.logprob) <= 1e-4 and a.is_greedy == b.is_greedy and a.token_greedy == b.token_greedy
    for (c, x), a in list(zip(reqs, reused))[::5]:
        lp, greedy = naive(backend, c, x)
        assert abs(a.logprob - lp) <= 1e-4 and a.is_greedy == greedy


def test_grouped_query_attention_shares_the_prefix_exactly(tiny_llama, tmp_path):
    """Heads that share a key/value head (Llama-2-70B, Llama-3, Mistral) attend the prefix's single copy too."""
    import shutil

    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=8,
                                 num_key_value_heads=2, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_llama / name, tmp_path / name)
    b = CausalBackend(ModelSpec(model=str(tmp_path)), device=DEVICE, batch_size=5)
    assert b.shared_attention, b.describe()
    reqs = shot_requests(4)
    for (c, x), got in zip(reqs, b.loglikelihood(reqs)):
        lp, greedy = naive(b, c, x)
        assert abs(got.logprob - lp) <= 1e-4 and got.is_greedy == greedy
    b.close()


def test_a_model_whose_attention_cannot_share_the_prefix_repeats_it(tiny_llama, monkeypatch):
    """Where the one-copy attention fails its probe (here: no kernel returns the log-sum-exp), the prefix's cache
    is repeated per row instead, the log says so, and scores are unchanged."""
    from harness.models import prefix

    def broken(*args, **kwargs):
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(prefix, "attend", broken)
    b = CausalBackend(ModelSpec(model=str(tiny_llama)), device=DEVICE)
    assert b.prefix_reuse and not b.shared_attention and "repeated per row" in b.describe()
    reqs = shot_requests(3)
    for (c, x), got in zip(reqs, b.loglikelihood(reqs)):
        assert abs(got.logprob - naive(b, c, x)[0]) <= 1e-4
    b.close()


@pytest.mark.parametrize("shared_attention", [True, False], ids=["one-copy", "repeated-cache"])
@pytest.mark.parametrize("questions", [range(5), (3, 10, 250, 7, 4000, 1)], ids=["same-length", "left-padded"])
def test_shared_prefix_generation_equals_generation_without_reuse(backend, shared_attention, questions, monkeypatch):
    """The block prefilled once, attended as one copy or as a repeated cache: the same generations as without
    reuse, and the same next-token logits at every step (≤ 1e-5), with prompts of one length (no padding: a causal
    prefill) and of several (left padding: padding queries have no key of their own)."""
    reqs = [GenerationRequest(SHOTS + f"Question: What is {i} plus {i + 2}?\nAnswer:", ("\n",), 8) for i in questions]
    steps: list[torch.Tensor] = []
    logits_at = backend.logits_at

    def recorded(*args, **kwargs):
        out = logits_at(*args, **kwargs)
        steps.append(out.float().cpu())
        return out

    monkeypatch.setattr(backend, "logits_at", recorded)
    assert backend.shared_attention
    backend.shared_attention = shared_attention
    try:
        backend.generate(reqs[:2])  # the block's cache is computed (and kept) here
        steps.clear()
        with_reuse = backend.generate(reqs)
        reused_steps, steps[:] = list(steps), []
        backend.prefix_reuse = False
        without = backend.generate(reqs)
    finally:
        backend.prefix_reuse = backend.shared_attention = True
    assert with_reuse == without
    assert len(reused_steps) == len(steps) >= 2  # the prompts' pass and decoding steps (8 here: no row stops early)
    for a, b in zip(reused_steps, steps):  # float32 rounding is ~1e-7 here; a non-causal prefill moves them ~6e-5
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=0), float((a - b).abs().max())


def test_own_part_masks():
    """Generation's masks for the rows' own keys: transformers' boolean ones become additive with the dtype's lowest
    value (not -inf: a padding query with no key of its own must get a log-sum-exp near it, not the kernel's 0);
    none for several queries is causal, aligned to the last key; none for one query stays none."""
    from harness.models.prefix import attend, own_mask

    q, k = torch.randn(2, 2, 3, 8), torch.randn(2, 2, 5, 8)
    causal = own_mask(None, q, k)
    assert causal is not None and causal.dtype == q.dtype
    assert ((causal[0, 0] == 0) == torch.ones(3, 5, dtype=torch.bool).tril(2)).all()
    assert own_mask(None, q[:, :, :1], k) is None
    allowed = torch.ones(2, 1, 3, 5, dtype=torch.bool)
    allowed[1, :, 0] = False  # a padding query: no key of its own
    mask = own_mask(allowed, q, k)
    assert mask is not None and mask.dtype == q.dtype and (mask[1, 0, 0] == torch.finfo(q.dtype).min).all()
    _, lse = attend(q, k, k, mask, 0.3)
    assert lse[1, :, 0].max() < -1e37 and torch.isfinite(lse[0]).all()  # its prefix part then gets all the weight


def test_shared_prefix_needs_a_long_common_start_and_a_token_of_each_own():
    from harness.models.causal import shared_prefix

    assert shared_prefix([[1, 2, 3, 4], [1, 2, 3, 5]], 2) == 3
    assert shared_prefix([[1, 2, 3], [1, 2, 3, 4]], 2) == 2  # the shorter keeps its last token
    assert shared_prefix([[1, 2, 3], [1, 9, 3]], 2) == 0
    assert shared_prefix([[1, 2, 3, 4]], 1) == 0


@pytest.mark.parametrize("arch", ["bart", "t5"])
def test_encoder_decoder_models_are_refused_not_scored_as_a_decoder(arch, tmp_path, tiny_llama):
    """A BART folder would load through AutoModelForCausalLM as its decoder alone (and a T5 one fail obscurely):
    both are one line naming the model and why, before any weights load."""
    import shutil

    from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

    from harness.errors import HarnessError

    folder = tmp_path / arch
    if arch == "bart":
        model = BartForConditionalGeneration(BartConfig(vocab_size=512, d_model=16, encoder_layers=1, decoder_layers=1,
                                                        encoder_attention_heads=2, decoder_attention_heads=2,
                                                        encoder_ffn_dim=32, decoder_ffn_dim=32))
    else:
        model = T5ForConditionalGeneration(T5Config(vocab_size=512, d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                                    num_heads=2, decoder_start_token_id=0))
    model.save_pretrained(folder)
    for f in tiny_llama.iterdir():  # a tokenizer to go with it
        if "token" in f.name:
            shutil.copy(f, folder / f.name)
    with pytest.raises(HarnessError, match=f"encoder-decoder model \\({arch}\\).*Seq2SeqBackend") as err:
        CausalBackend(ModelSpec(model=str(folder)), device=DEVICE)
    assert str(folder) in str(err.value) and "\n" not in str(err.value)


def test_shared_prefix_in_bfloat16_agrees_with_the_repeated_cache(tiny_llama):
    """In a 16-bit dtype the one-copy attention (its two parts merged by their log-sum-exps) and the repeated cache agree to
    16-bit rounding."""
    if DEVICE == "cpu" and torch.backends.cpu.get_cpu_capability() != "AVX512":
        pytest.skip("torch's CPU attention kernels take bfloat16 only with AVX-512 (pack_vnni2), plain SDPA included")
    b = CausalBackend(ModelSpec(model=str(tiny_llama)), device=DEVICE, dtype="bfloat16", batch_size=8)
    assert b.shared_attention, b.describe()
    reqs = shot_requests(4)
    shared = b.loglikelihood(reqs)
    b.shared_attention = False
    repeated = b.loglikelihood(reqs)
    b.prefix_reuse = False
    plain = b.loglikelihood(reqs)
    for s, r, p in zip(shared, repeated, plain):
        assert abs(s.logprob - r.logprob) <= 2e-2 * max(1.0, abs(r.logprob))
        assert abs(s.logprob - p.logprob) <= 2e-2 * max(1.0, abs(p.logprob))
    b.close()
