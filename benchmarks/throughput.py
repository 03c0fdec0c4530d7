"""Wall time of this harness against lm-evaluation-harness on the same local model and the same local data.

    python benchmarks/throughput.py                      # the ~7M-parameter model, CPU, float32
    python benchmarks/throughput.py --models small,base  # also the ~110M model
    python benchmarks/throughput.py --device cuda --dtype bfloat16
    python benchmarks/throughput.py --models 1b --device cuda --dtype bfloat16 --peak-tflops 989 --cases mc5 --docs 3000 --no-lm-eval
    python benchmarks/throughput.py --cases mc,single --lm-eval-yaml   # also: lm-eval's YAML run by this harness

Cases, each as whole processes (``harness run`` vs ``lm_eval --model hf``), one after the other:
  mc       multiple choice, ~200-token context per document, 4 choices of 10-20 tokens
  single   MMLU-like question with choices " A"/" B"/" C"/" D" (one token each)
  gen      greedy generation until a newline (max 48 tokens)
  mc5      5 fixed shots (a ~500-token block every document starts with), a ~60-token question, 4 answers
           of 3-7 words
  single5  the same 5-shot block, MMLU-like question, one-token answers
  gen3     3 fixed shots before a generation prompt
For the shot cases the in-process line also times this harness with the shared-prefix reuse turned off.
Printed per case: both wall times, their ratio, the max |Δ| of per-choice log-likelihoods and whether acc /
acc_norm (or the generations) are identical, and the time of a process that only imports torch and transformers
and loads the model (lm-eval's time over it bounds every whole-process ratio); and, in-process, our evaluation
time against a plain batched forward pass over the same unique tokens (the floor; where a block is shared, also the floor plus the least
attention to it any exact scoring does: every unique token's queries against the block, one fused call per batch
and layer), and the time and TFLOP/s of our forward passes alone
(``--peak-tflops``: their share of the device's peak). ``--no-lm-eval`` keeps to the in-process lines (thousands of
documents, where the forward passes dominate: ``--docs 3000``). Models are built and briefly trained here (BPE
tokenizer trained offline, Llama architecture), so nothing comes from the hub. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODELS = {"small": dict(hidden=256, layers=4, heads=4, inter=688, vocab=8192, steps=150),
          "base": dict(hidden=768, layers=12, heads=12, inter=2048, vocab=16384, steps=0),
          "1b": dict(hidden=2048, layers=22, heads=32, inter=5632, vocab=16384, steps=0)}  # TinyLlama-1.1B's shape


def words(rng: random.Random, n: int = 6000) -> list[str]:
    """Pseudo-words, enough of them that the BPE vocabulary fills up as a real one does."""
    syll = ["ka", "lo", "mi", "ne", "ru", "to", "sa", "vi", "de", "po", "gu", "ha", "ze", "fi", "bo", "tre", "spa"]
    found: set[str] = set()
    while len(found) < n:
        found.add("".join(rng.choice(syll) for _ in range(rng.randint(1, 4))))
    return sorted(found)


def make_data(folder: Path, n_docs: int, seed: int = 0) -> dict[str, Path]:
    """Local JSONL for the three cases, and a training corpus of lines (so the model learns to end them)."""
    rng = random.Random(seed)
    vocab = words(rng)
    text = lambda k: " ".join(rng.choice(vocab) for _ in range(k))  # noqa: E731
    mc = [{"context": text(170) + "\nAnswer:", "choices": [text(rng.randint(8, 14)) for _ in range(4)],
           "label": rng.randrange(4)} for _ in range(n_docs)]
    single = [{"question": text(120), "options": [text(6) for _ in range(4)], "label": rng.randrange(4)}
              for _ in range(n_docs)]
    gen = [{"prompt": "\n".join(text(rng.randint(4, 12)) for _ in range(6)) + "\n" + text(2), "target": text(3)}
           for _ in range(n_docs)]
    shots = "\n\n".join(f"{text(60)}\nAnswer: {text(rng.randint(3, 7))}" for _ in range(5)) + "\n\n"
    mc5 = [{"context": shots + text(45) + "\nAnswer:", "choices": [text(rng.randint(3, 7)) for _ in range(4)],
            "label": rng.randrange(4)} for _ in range(n_docs)]
    shots_abcd = "".join(f"{text(50)}\nA. {text(3)}\nB. {text(3)}\nC. {text(3)}\nD. {text(3)}\nAnswer: "
                         f"{rng.choice('ABCD')}\n\n" for _ in range(5))
    single5 = [{"question": shots_abcd + text(45), "options": [text(3) for _ in range(4)], "label": rng.randrange(4)}
               for _ in range(n_docs)]
    shots_gen = "".join("\n".join(text(rng.randint(4, 12)) for _ in range(6)) + "\n" + text(3) + "\n\n"
                        for _ in range(3))
    gen3 = [{"prompt": shots_gen + "\n".join(text(rng.randint(4, 12)) for _ in range(6)) + "\n" + text(2),
             "target": text(3)} for _ in range(n_docs)]
    corpus = ["\n".join(text(rng.randint(4, 12)) for _ in range(8)) for _ in range(3000)]
    corpus += [f"{text(30)}\nA. {text(3)}\nB. {text(3)}\nC. {text(3)}\nD. {text(3)}\nAnswer: {rng.choice('ABCD')}"
               for _ in range(500)]
    paths = {}
    for name, rows in (("mc", mc), ("single", single), ("gen", gen), ("mc5", mc5), ("single5", single5),
                       ("gen3", gen3), ("corpus", [{"text": t} for t in corpus])):
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def build_model(folder: Path, corpus: Path, spec: dict, seed: int = 0) -> Path:
    """A Llama-architecture model with a BPE tokenizer trained on the corpus, briefly trained on it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if (folder / "config.json").exists():
        return folder
    lines = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=spec["vocab"], special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                        unk_token="<unk>")
    torch.manual_seed(seed)
    on_gpu = not spec["steps"] and torch.cuda.is_available()  # an untrained big model: built on the GPU, saved bf16
    with torch.device("cuda" if on_gpu else "cpu"):
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=spec["hidden"], intermediate_size=spec["inter"],
            num_hidden_layers=spec["layers"], num_attention_heads=spec["heads"], max_position_embeddings=1024,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    if on_gpu:
        model = model.to(torch.bfloat16)
    if spec["steps"]:
        ids = [t for line in lines for t in [tokenizer.bos_token_id] + tokenizer(line)["input_ids"]]
        data = torch.tensor(ids[: len(ids) // 64 * 64]).view(-1, 64)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
        gen = torch.Generator().manual_seed(seed)
        for step in range(spec["steps"]):
            batch = data[torch.randint(0, len(data), (16,), generator=gen)]
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            if step % 100 == 0 or step == spec["steps"] - 1:
                print(f"  train step {step}: loss {loss.item():.3f}", flush=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


OURS = {
    "mc": "name: bench_mc\ndataset: {{path: {data}}}\nprompt: '{{{{context}}}}'\nchoices: '{{{{choices}}}}'\n"
          "answer: '{{{{label}}}}'\noutput: multiple_choice\nmetrics: [acc, acc_norm]\n",
    "single": "name: bench_single\ndataset: {{path: {data}}}\n"
              "prompt: \"{{{{question}}}}\\nA. {{{{options[0]}}}}\\nB. {{{{options[1]}}}}\\nC. {{{{options[2]}}}}\\n"
              "D. {{{{options[3]}}}}\\nAnswer:\"\nchoices: [A, B, C, D]\nanswer: '{{{{label}}}}'\n"
              "output: multiple_choice\nmetrics: [acc, acc_norm]\n",
    "gen": "name: bench_gen\ndataset: {{path: {data}}}\nprompt: '{{{{prompt}}}}'\ntarget: '{{{{target}}}}'\n"
           "output: generate\ngeneration: {{until: [\"\\n\"], max_new_tokens: 48}}\nmetrics: [exact_match]\n",
}
THEIRS = {
    "mc": "doc_to_text: '{{{{context}}}}'\ndoc_to_choice: '{{{{choices}}}}'\ndoc_to_target: '{{{{label}}}}'\n"
          "output_type: multiple_choice\nmetric_list:\n  - {{metric: acc}}\n  - {{metric: acc_norm}}\n",
    "single": "doc_to_text: \"{{{{question}}}}\\nA. {{{{options[0]}}}}\\nB. {{{{options[1]}}}}\\nC. {{{{options[2]}}}}\\n"
              "D. {{{{options[3]}}}}\\nAnswer:\"\ndoc_to_choice: [A, B, C, D]\ndoc_to_target: '{{{{label}}}}'\n"
              "output_type: multiple_choice\nmetric_list:\n  - {{metric: acc}}\n  - {{metric: acc_norm}}\n",
    "gen": "doc_to_text: '{{{{prompt}}}}'\ndoc_to_target: '{{{{target}}}}'\noutput_type: generate_until\n"
           "generation_kwargs: {{until: [\"\\n\"], max_gen_toks: 48, do_sample: false}}\n"
           "metric_list:\n  - {{metric: exact_match}}\n",
}


for _case, _base in (("mc5", "mc"), ("single5", "single"), ("gen3", "gen")):
    OURS[_case] = OURS[_base].replace(f"name: bench_{_base}", f"name: bench_{_case}")
    THEIRS[_case] = THEIRS[_base]


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall


def process_floor(model: Path, env: dict) -> float:
    """A process that only starts Python, imports torch and transformers and loads the model and its tokenizer:
    what every harness pays before its first request, so lm-eval's time over this is the most any whole-process
    ratio can reach on this machine."""
    code = ("import torch, transformers; from transformers import AutoModelForCausalLM, AutoTokenizer; "
            f"AutoModelForCausalLM.from_pretrained({str(model)!r}); AutoTokenizer.from_pretrained({str(model)!r})")
    return timed([sys.executable, "-c", code], env)


def lm_eval_yaml(work: Path, case: str, data: Path) -> Path:
    """The case as an lm-eval task YAML (``lme_CASE``), in a folder of its own: what lm-eval runs, and what this
    harness runs as ``lm_eval:lme_CASE`` with ``$HARNESS_LM_EVAL_TASKS`` pointing there."""
    inc = work / "theirs" / case
    inc.mkdir(parents=True, exist_ok=True)
    (inc / "task.yaml").write_text(f"task: lme_{case}\ndataset_path: json\ndataset_kwargs: {{data_files: {{test: {data}}}}}\n"
                                   f"test_split: test\n" + THEIRS[case].format())
    return inc


def run_ours(work: Path, model: Path, case: str, data: Path, args: argparse.Namespace, env: dict,
             from_lm_eval: bool = False) -> tuple[float, list]:
    """``harness run`` on the case's native task file, or (``from_lm_eval``) on its lm-eval YAML."""
    import yaml

    (work / "ours").mkdir(exist_ok=True)
    task = work / "ours" / f"{case}.yaml"
    task.write_text(OURS[case].format(data=data))
    kind = "lm-eval-yaml" if from_lm_eval else "native"
    out = work / "results" / f"ours-{kind}-{model.name}-{case}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = work / f"ours-{kind}-{model.name}-{case}.yaml"
    entry = f"lm_eval:lme_{case}" if from_lm_eval else str(task)
    cfg.write_text(yaml.safe_dump({"name": case, "suite": [{"model": str(model), "label": "m"}], "tasks": [entry],
                                   "run": {"device": args.device, "dtype": args.dtype}, "output": str(out)}))
    if from_lm_eval:
        env = {**env, "HARNESS_LM_EVAL_TASKS": str(lm_eval_yaml(work, case, data))}
    wall = timed([sys.executable, "-m", "harness", "run", str(cfg)], env)
    name = f"lme_{case}" if from_lm_eval else f"bench_{case}"
    recs = [json.loads(line) for line in (out / "models" / "m" / f"{name}.jsonl").read_text().splitlines()]
    return wall, sorted(recs, key=lambda r: r["doc_id"])


def warm_index(work: Path, case: str, data: Path, env: dict) -> float:
    """lm-eval's index of its tasks, built (or read) before the timed run: the harness keeps it under its cache,
    so only the first run after installing lm-eval or changing a task folder pays for building it."""
    env = {**env, "HARNESS_LM_EVAL_TASKS": str(lm_eval_yaml(work, case, data))}
    return timed([sys.executable, "-m", "harness", "tasks", "list", "--source", "lm_eval", "--match", f"lme_{case}"],
                 env)


def native_vs_lm_eval_yaml(model: Path, case: str, work: Path, data: Path, args: argparse.Namespace,
                           repeats: int = 5) -> tuple[float, float]:
    """In-process evaluation time (median of ``repeats``, interleaved) of the same task defined natively and as
    an lm-eval YAML (lm-eval builds the requests and scores them; the engine answers), on one loaded model."""
    import statistics

    from harness.models.causal import CausalBackend
    from harness.models.suite import ModelSpec
    from harness.scoring import evaluate
    from harness.scoring_lm_eval import evaluate_lm_eval
    from harness.tasks import load_task_file, prepare, resolve_tasks

    os.environ["HARNESS_LM_EVAL_TASKS"] = str(lm_eval_yaml(work, case, data))
    native = prepare(load_task_file(work / "ours" / f"{case}.yaml")[0])
    (from_yaml,) = resolve_tasks([f"lm_eval:lme_{case}"], Path.cwd())
    backend = CausalBackend(ModelSpec(model=str(model)), device=args.device, dtype=args.dtype)
    evaluate(backend, native)  # warm-up
    times: dict[str, list[float]] = {"native": [], "yaml": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        evaluate(backend, native)
        times["native"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        evaluate_lm_eval(backend, from_yaml)  # type: ignore[arg-type]
        times["yaml"].append(time.perf_counter() - t0)
    backend.close()
    return statistics.median(times["native"]), statistics.median(times["yaml"])


def run_lm_eval(work: Path, model: Path, case: str, data: Path, args: argparse.Namespace, env: dict) -> tuple[float, list]:
    inc = lm_eval_yaml(work, case, data)
    out = work / "results" / f"lm-eval-{model.name}-{case}"
    shutil.rmtree(out, ignore_errors=True)  # a kept --work folder: never time a resumed run
    dtype = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}[args.dtype]
    wall = timed([sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model},dtype={dtype}",
                  "--tasks", f"lme_{case}", "--include_path", str(inc), "--device", args.device,
                  "--batch_size", str(args.lm_eval_batch_size), "--output_path", str(out), "--log_samples"], env)
    (samples,) = list(out.rglob(f"samples_lme_{case}_*.jsonl"))
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    return wall, sorted(rows, key=lambda r: r["doc_id"])


def agreement(case: str, ours: list, theirs: list) -> str:
    if case.startswith("gen"):
        same = sum(o["generation"] == t["filtered_resps"][0] for o, t in zip(ours, theirs))
        stopped = sum(len(o["generation_ids"]) < 47 for o in ours)
        return f"identical generations {same}/{len(ours)} ({stopped} stopped before the limit)"
    delta = max(abs(float(r[0]) - lp) for o, t in zip(ours, theirs) for r, lp in zip(t["filtered_resps"], o["logprobs"]))
    acc = all(o["metrics"]["acc"] == t["acc"] for o, t in zip(ours, theirs))
    norm = all(o["metrics"]["acc_norm"] == t["acc_norm"] for o, t in zip(ours, theirs))
    return f"max |Δ loglik| {delta:.1e}; acc identical: {acc}; acc_norm identical: {norm}"


def floor(model: Path, case: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """In-process: our evaluation (model loaded) vs a plain forward pass over the same unique tokens,
    in length-sorted batches of the same token budget (base model + output layer at the scored positions).
    Tokens every context shares (a few-shot block) count once, and the floor's rows do not attend to them (a
    lower bound; ``attention_to_block`` times that attention alone). Each is timed ``args.repeats`` times,
    alternately, and the medians kept. Also, where there is such a block, our evaluation with its reuse off."""
    import statistics

    import torch

    from harness.models.causal import MIN_SHARED_PREFIX, CausalBackend, shared_prefix
    from harness.models.suite import ModelSpec
    from harness.scoring import evaluate
    from harness.tasks import load_task_file, prepare

    torch.set_num_threads(os.cpu_count() or 1)
    (task,) = load_task_file(work / "ours" / f"{case}.yaml")
    prepared = prepare(task)
    backend = CausalBackend(ModelSpec(model=str(model)), device=args.device, dtype=args.dtype)
    evaluate(backend, prepared)  # warm-up
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def timed(fn: Any) -> float:
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    rows_per_batch: list[int] = []
    batches = backend.batches

    def counted(lengths: Any, order: Any) -> Any:  # the batch sizes the token budget chose
        for b in batches(lengths, order):
            rows_per_batch.append(len(b))
            yield b

    backend.batches = counted  # type: ignore[method-assign]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    timed(lambda: evaluate(backend, prepared))
    backend.batches = batches  # type: ignore[method-assign]
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    forward_s = [0.0]
    logits_at = backend.logits_at

    def timed_forward(*a: Any, **k: Any) -> Any:  # the model's forward passes alone (synchronised around each)
        sync()
        t = time.perf_counter()
        out = logits_at(*a, **k)
        sync()
        forward_s[0] += time.perf_counter() - t
        return out

    backend.logits_at = timed_forward  # type: ignore[method-assign]
    evaluate(backend, prepared)  # a timed evaluation, for the forward passes' share
    backend.logits_at = logits_at  # type: ignore[method-assign]
    without = None
    contexts = [backend.encode_pair(i.context, i.continuations[0])[0] for i in prepared.instances]
    n_shared = shared_prefix(contexts, MIN_SHARED_PREFIX)
    if n_shared:
        backend.prefix_reuse = False
        without = timed(lambda: evaluate(backend, prepared))
        backend.prefix_reuse = True
    rows: list[list[int]] = []
    scored: list[int] = []
    for inst, ctx in zip(prepared.instances, contexts):  # the context once, then every choice but its last token
        conts = [backend.encode_pair(inst.context, c)[1] for c in inst.continuations]
        rows.append(ctx[n_shared:] + [t for c in conts for t in c[:-1]])
        scored.append(sum(map(len, conts)))
    order = sorted(range(len(rows)), key=lambda r: -len(rows[r]))
    base, head = backend.model.base_model, backend.model.get_output_embeddings()

    @torch.inference_mode()
    def plain_forward() -> None:
        if n_shared:  # the shared block once, in a batch of its own
            head(base(input_ids=torch.tensor([contexts[0][:n_shared]], device=backend.device)).last_hidden_state[:, -1])
        i = 0
        while i < len(order):
            n = max(1, backend.token_budget // len(rows[order[i]]))
            batch = order[i:i + n]
            width = max(len(rows[r]) for r in batch)
            ids = torch.tensor([rows[r] + [backend.pad_id] * (width - len(rows[r])) for r in batch], device=backend.device)
            hidden = base(input_ids=ids).last_hidden_state
            at_rows = [j for j, r in enumerate(batch) for _ in range(scored[r])]
            at_pos = [len(rows[r]) - 1 - k % len(rows[r]) for r in batch for k in range(scored[r])]
            head(hidden[at_rows, at_pos]).float().log_softmax(-1)  # as many output positions as we score
            i += n

    times: dict[str, list[float]] = {"ours": [], "plain": [], "block": []}
    for _ in range(args.repeats):  # alternately, so that a slower spell of the machine hits each alike
        times["ours"].append(timed(lambda: evaluate(backend, prepared)))
        times["plain"].append(timed(plain_forward))
        if n_shared:
            times["block"].append(attention_to_block(backend, [len(rows[r]) for r in order], n_shared, sync))
    ours, plain = statistics.median(times["ours"]), statistics.median(times["plain"])
    block_attention = statistics.median(times["block"]) if n_shared else 0.0
    tokens = sum(map(len, rows)) + n_shared
    non_embedding = backend.parameter_counts().nonembedding
    cfg = backend.model.config
    flops = 2 * non_embedding * tokens + 2 * cfg.hidden_size * cfg.vocab_size * sum(scored)  # weight matmuls only
    info = {"ours": ours, "plain": plain, "block_attention": block_attention, "tokens": tokens, "without": without,
            "peak_gib": peak, "tflops": flops / ours / 1e12, "forward_s": forward_s[0],
            "forward_tflops": flops / forward_s[0] / 1e12, "rows_per_batch": max(rows_per_batch, default=0),
            "budget": backend.token_budget, "how": backend.describe()}
    backend.close()
    return info


def attention_to_block(backend: Any, lengths: list[int], n_shared: int, sync: Any) -> float:
    """The least any exact scoring adds to the plain forward when rows follow a shared block: in every layer, the
    unique tokens' queries (batched as the floor batches them) attending to the block's keys and values, one fused
    attention call per batch and layer (torch's SDPA). Timed with random values of the model's shapes."""
    import torch
    import torch.nn.functional as F

    cfg = backend.model.config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    dtype = backend.model.dtype
    batches, i = [], 0
    while i < len(lengths):  # the floor's batches: their token counts
        n = max(1, backend.token_budget // lengths[i])
        batches.append(sum(lengths[i:i + n]))
        i += n
    key = torch.randn(1, kv_heads, n_shared, dim, dtype=dtype, device=backend.device)
    queries = [torch.randn(1, heads, t, dim, dtype=dtype, device=backend.device) for t in batches]
    with torch.inference_mode():
        F.scaled_dot_product_attention(queries[0], key, key, enable_gqa=kv_heads != heads)  # warm-up
        sync()
        t0 = time.perf_counter()
        for _ in range(cfg.num_hidden_layers):
            for q in queries:
                F.scaled_dot_product_attention(q, key, key, enable_gqa=kv_heads != heads)
        sync()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="small", help="comma-separated: small (~7M), base (~110M), 1b (~1.2B, TinyLlama's shape; random weights, built on the GPU)")
    ap.add_argument("--cases", default="mc,single,gen,mc5,single5,gen3")
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--lm-eval-batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3,
                    help="in-process timings of ours and of the floor, taken alternately; medians are printed")
    ap.add_argument("--peak-tflops", type=float, default=0.0,
                    help="the device's dense peak for --dtype (H100/H200 bf16: 989), to print the share reached")
    ap.add_argument("--work", type=Path, default=None, help="keep models and results here (default: a temp dir)")
    ap.add_argument("--no-lm-eval", action="store_true",
                    help="in-process measurements only (no whole-process runs of either harness): for many documents")
    ap.add_argument("--lm-eval-yaml", action="store_true",
                    help="also run each case from its lm-eval YAML (lm_eval:lme_CASE) and compare with the native task")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="harness-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["HARNESS_DATA_PATH"] = str(work)  # the native task files read the data written under work/
    # tokenizers' own threads stay on (the default): batched tokenization is part of the harness's work
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(work / "hf-datasets"), "HARNESS_CACHE": str(work / "cache")}
    data = make_data(work, args.docs)
    table = []
    for name in args.models.split(","):
        print(f"model {name}: building in {work / name}", flush=True)
        model = build_model(work / name, data["corpus"], MODELS[name])
        n_params = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(model).parameters())
        floor_wall = None if args.no_lm_eval else min(process_floor(model, env) for _ in range(3))
        for case in args.cases.split(","):
            line = f"{name} ({n_params / 1e6:.1f}M) {case}"
            if args.no_lm_eval:
                (work / "ours").mkdir(exist_ok=True)
                (work / "ours" / f"{case}.yaml").write_text(OURS[case].format(data=data[case]))
            else:
                ours_wall, ours = run_ours(work, model, case, data[case], args, env)
                lme_wall, theirs = run_lm_eval(work, model, case, data[case], args, env)
                line += (f": harness {ours_wall:.1f}s, lm-eval {lme_wall:.1f}s, "
                         f"speed-up {lme_wall / ours_wall:.2f}x; {agreement(case, ours, theirs)}; a process that only "
                         f"imports and loads the model {floor_wall:.1f}s (best of 3): no whole-process ratio here "
                         f"exceeds {lme_wall / floor_wall:.1f}x")
            if args.lm_eval_yaml and not args.no_lm_eval:
                index_wall = warm_index(work, case, data[case], env)
                yaml_wall, from_yaml = run_ours(work, model, case, data[case], args, env, from_lm_eval=True)
                shared = [sorted(set(o["metrics"]) & set(r["metrics"])) for r, o in zip(from_yaml, ours)]
                same = (all(keys for keys in shared)  # lm-eval's metrics under their names, beside the partners
                        and all(abs(r["metrics"][k] - o["metrics"][k]) <= 1e-4
                                for r, o, keys in zip(from_yaml, ours, shared) for k in keys)
                        and [r.get("logprobs") or r["resps"][0][0] for r in from_yaml]
                        == [r.get("logprobs") or r.get("generation") for r in ours])
                t_native, t_yaml = native_vs_lm_eval_yaml(model, case, work, data[case], args)
                line += (f"; the lm-eval YAML run by this harness: {yaml_wall:.1f}s (native {ours_wall:.1f}s; "
                         f"speed-up {lme_wall / yaml_wall:.2f}x; lm-eval's index read beforehand, untimed: "
                         f"{index_wall:.1f}s, built once per install and task folder), "
                         f"records {'identical' if same else 'DIFFERENT'}, in-process median {t_yaml:.3f}s vs "
                         f"native {t_native:.3f}s ({t_yaml / t_native:.3f}x)")
            if not case.startswith("gen"):
                f = floor(model, case, work, args)
                line += (f"; in-process (medians of {args.repeats}) {f['ours']:.2f}s vs plain forward {f['plain']:.2f}s over {f['tokens']:,} unique "
                         f"tokens = {f['ours'] / f['plain']:.2f}x the floor ({f['tokens'] / f['ours']:,.0f} tokens/s, "
                         f"{f['tflops']:.3g} TFLOP/s in weight matmuls")
                line += f" = {f['tflops'] / args.peak_tflops:.0%} of {args.peak_tflops:g} peak)" if args.peak_tflops else ")"
                if f["block_attention"]:
                    both = f["plain"] + f["block_attention"]
                    line += (f"; the floor plus the rows' attention to the shared block ({f['block_attention']:.2f}s) "
                             f"{both:.2f}s = {f['ours'] / both:.2f}x")
                line += f"; its forward passes alone {f['forward_s']:.2f}s, {f['forward_tflops']:.3g} TFLOP/s"
                line += f" = {f['forward_tflops'] / args.peak_tflops:.0%} of peak" if args.peak_tflops else ""
                if f["without"] is not None:
                    line += f"; without shared-prefix reuse {f['without']:.2f}s ({f['without'] / f['ours']:.2f}x slower)"
                if f["peak_gib"] is not None:
                    line += (f"; peak GPU memory {f['peak_gib']:.1f} GiB, token budget {f['budget']:,} → up to "
                             f"{f['rows_per_batch']} rows per batch; {f['how']}")
            print(line, flush=True)
            table.append(line)
    print("\n".join(["", f"device {args.device}, dtype {args.dtype}, {args.docs} documents per case:"] + table))


if __name__ == "__main__":
    main()
