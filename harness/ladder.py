"""The toy ladder: a family of tiny Llama-style LMs trained from scratch on the CPU, deterministically.

The corpus is the train split of the toy tasks, rendered by the tasks' own templates (so training and
evaluation formats agree), with every evaluated item removed. Models are saved in Hugging Face format
under ``$HARNESS_CACHE/ladders/<name>/<recipe hash>/`` and rebuilt when the recipe changes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from harness.errors import HarnessError
from harness.files import atomic_write, cache_dir, digest
from harness.models.suite import METADATA_FILE, ModelSpec, count_parameters
from harness.tasks import load_documents, load_task_file, prepare
from harness.tasks.prompts import Templates
from harness.tasks.sources.native import PACKAGE_TASKS

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


@dataclass(frozen=True)
class Size:
    name: str
    d_model: int
    n_layers: int
    n_heads: int
    lr: Optional[float] = None  # peak learning rate, when not the recipe's (wide models train stably with less)


@dataclass(frozen=True)
class Recipe:
    name: str
    tasks: tuple[str, ...]  # task files (relative to tasks/) whose train splits form the corpus
    sizes: tuple[Size, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 60
    train_docs: int = 20_000  # per task, before removing evaluated items; tasks are sampled uniformly
    max_len: int = 64
    answer_loss: bool = False  # train on the answer tokens only (the prompt's digits are random: noise to predict)
    threads: int = 1  # torch threads per training process (float rounding, hence the weights, depend on it)
    workers: int = 2

    def hash(self, task_dir: Path) -> str:
        """The recipe plus the content of every task file it trains on."""
        files = {t: (task_dir / t).read_text() for t in self.tasks}
        return digest({**asdict(self), "workers": None, "files": files, "version": 2})


TOY_TASKS = ("toy/toy_add.yaml",)
RECIPES = {
    "toy": Recipe("toy", TOY_TASKS, sizes=(
        Size("xxs", 8, 1, 1), Size("xs", 12, 1, 2), Size("s", 16, 2, 2), Size("m", 24, 2, 2),
        Size("l", 96, 3, 4), Size("xl", 96, 4, 4)), seeds=(0, 1, 2), steps=700, answer_loss=True),
}


def ladder_root() -> Path:
    return cache_dir() / "ladders"


def model_dirs(recipe: Recipe, root: Path, tdir: Path) -> list[tuple[Size, int, Path]]:
    base = root / recipe.name / recipe.hash(tdir)
    return [(s, seed, base / f"{s.name}-seed{seed}") for s in recipe.sizes for seed in recipe.seeds]


def train_cost(recipe: Recipe, size: Size) -> float:
    """Relative training time of one model: a fixed overhead per step plus the work of its parameters."""
    return recipe.steps * (120_000 + 12 * size.n_layers * size.d_model ** 2)


def ensure_ladder(name_or_recipe: str | Recipe, *, force: bool = False, root: Optional[Path] = None,
                  tdir: Optional[Path] = None, log: Optional[Callable[[str], None]] = None,
                  progress: Optional[Callable[[float, float], None]] = None) -> list[ModelSpec]:
    """Build whatever is missing of a ladder (all of it with ``force``) and return its suite, small to large.
    ``progress(done, total)`` is called as models finish, in units of estimated training time."""
    recipe = RECIPES.get(name_or_recipe) if isinstance(name_or_recipe, str) else name_or_recipe
    if recipe is None:
        raise HarnessError(f"unknown ladder '{name_or_recipe}' (known: {', '.join(RECIPES)})", where="suite.ladder")
    root, tdir = root or ladder_root(), tdir or PACKAGE_TASKS
    log = log or (lambda m: None)
    dirs = model_dirs(recipe, root, tdir)
    if force and dirs:
        shutil.rmtree(dirs[0][2].parent, ignore_errors=True)
    missing = [(s, seed, d) for s, seed, d in dirs if not (d / METADATA_FILE).is_file()]
    if missing:
        t0 = time.perf_counter()
        log(f"training ladder '{recipe.name}': {len(missing)} model(s) into {dirs[0][2].parent}")
        corpus_file, tok_dir = _prepare_corpus(recipe, dirs[0][2].parent, tdir)
        workers = max(1, min(recipe.workers, os.cpu_count() or 1, len(missing)))
        jobs = [(recipe, s, seed, str(d), str(corpus_file), str(tok_dir)) for s, seed, d in missing]
        total, done = sum(train_cost(recipe, s) for s, _, _ in missing), 0.0
        if progress:
            progress(done, total)
        metas: Iterator[dict]
        if workers == 1:
            metas = map(_train_job, jobs)
        else:
            import multiprocessing as mp

            pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
            metas = pool.map(_train_job, jobs)
        for (size, _, _), meta in zip(missing, metas):
            log(f"  trained {meta['size']} seed {meta['seed']}: {meta['params']:,} params, "
                f"loss {meta['final_loss']:.3f}, {meta['train_seconds']:.0f}s")
            done += train_cost(recipe, size)
            if progress:
                progress(done, total)
        if workers > 1:
            pool.shutdown()
        log(f"ladder '{recipe.name}' built in {time.perf_counter() - t0:.0f}s")
    return [ModelSpec(model=str(d), label=d.name) for _, _, d in dirs]


def list_built(root: Optional[Path] = None) -> list[tuple[dict, Path]]:
    root = root or ladder_root()
    out = []
    for meta_file in sorted(root.glob(f"*/*/*/{METADATA_FILE}")):
        out.append((json.loads(meta_file.read_text()), meta_file.parent))
    return sorted(out, key=lambda mp: (mp[0]["ladder"], mp[0]["params"], mp[0]["seed"]))


# ---------------------------------------------------------------------------- corpus and tokenizer

def _prepare_corpus(recipe: Recipe, base: Path, tdir: Path) -> tuple[Path, Path]:
    """Render the train split of every task; drop texts that equal an evaluated item; build the tokenizer."""
    base.mkdir(parents=True, exist_ok=True)
    corpus_file, tok_dir = base / "corpus.json", base / "tokenizer"
    if corpus_file.is_file() and (tok_dir / "tokenizer.json").is_file():
        return corpus_file, tok_dir
    corpus: dict[str, list[tuple[str, str]]] = {}  # task -> (prompt, prompt + answer)
    for rel in recipe.tasks:
        for task in load_task_file(tdir / rel):
            spec = task.spec
            evaluated = {i.context + i.delimiter + (i.target or (i.choices[i.gold] if i.choices and i.gold is not None
                                                                 else ""))
                         for i in prepare(task).instances}
            train_spec = spec.dataset.model_copy(update={"args": {**spec.dataset.args, "n": recipe.train_docs}})
            tmpl = Templates(task)
            for row, doc in enumerate(load_documents(train_spec, task.source, split="train")):
                prompt = tmpl.prompt(doc, row)
                text = prompt + spec.target_delimiter + tmpl.answer_text(doc, row)
                if text not in evaluated and "\n" not in text:
                    corpus.setdefault(task.name, []).append((prompt, text))
    build_char_tokenizer([t for pairs in corpus.values() for _, t in pairs]).save_pretrained(tok_dir)
    atomic_write(corpus_file, json.dumps(corpus).encode())
    return corpus_file, tok_dir


def build_char_tokenizer(texts: list[str]):
    """Character-level tokenizer that adds BOS like a Llama tokenizer does, so prompts match training."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("".join(texts)) | set("\n "))
    vocab = {t: i for i, t in enumerate([PAD, BOS, EOS] + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=PAD))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)


# ---------------------------------------------------------------------------- training

def _train_job(job: tuple) -> dict:
    recipe, size, seed, out_dir, corpus_file, tok_dir = job
    return train_model(recipe, size, seed, Path(out_dir), Path(corpus_file), Path(tok_dir))


def train_model(recipe: Recipe, size: Size, seed: int, out_dir: Path, corpus_file: Path, tok_dir: Path,
                checkpoints: Sequence[int] = ()) -> dict:
    """Train one model (single thread, fixed seed: bit-for-bit reproducible) and save it atomically; also save it
    after each step in ``checkpoints``, as ``<out_dir>-checkpoints/step<N>`` (with its step and tokens so far)."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(tok_dir)
    corpus = json.loads(corpus_file.read_text())
    seqs, starts = [], []  # per task: token ids (+ EOS), and where the answer starts (the loss starts there or at 0)
    for pairs in corpus.values():
        seqs.append([ids + [tok.eos_token_id] for ids in tok([t for _, t in pairs])["input_ids"]])
        starts.append([len(ids) if recipe.answer_loss else 0 for ids in tok([p for p, _ in pairs])["input_ids"]])
    config = LlamaConfig(vocab_size=len(tok), hidden_size=size.d_model, intermediate_size=4 * size.d_model,
                         num_hidden_layers=size.n_layers, num_attention_heads=size.n_heads,
                         max_position_embeddings=recipe.max_len, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=size.lr or recipe.lr, betas=(0.9, 0.95), weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < recipe.warmup:
            return (step + 1) / recipe.warmup
        progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = np.random.default_rng(seed)
    tokens, losses = 0, []
    model.train()
    for step in range(1, recipe.steps + 1):
        which = rng.integers(0, len(seqs), recipe.batch_size)  # a task uniformly, then one of its texts
        picked = [(t, rng.integers(0, len(seqs[t]))) for t in which]
        batch = [seqs[t][i] for t, i in picked]
        width = max(len(s) for s in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id)
        for r, s in enumerate(batch):
            ids[r, : len(s)] = torch.tensor(s)
        mask = (ids != tok.pad_token_id).long()
        labels = ids.masked_fill(mask == 0, -100)
        for r, (t, i) in enumerate(picked):
            labels[r, : starts[t][i]] = -100  # with answer_loss: the prompt is context, not a target
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        tokens += int(mask.sum())
        losses.append(loss.item())
        if step in checkpoints and step != recipe.steps:
            folder = out_dir.with_name(f"{out_dir.name}-checkpoints") / f"step{step}"
            _save(model, tok, folder, _meta(recipe, size, seed, model, tokens, step, losses, t0, out_dir))
            model.train()
    meta = _meta(recipe, size, seed, model, tokens, recipe.steps, losses, t0, out_dir)
    _save(model, tok, out_dir, meta)
    if recipe.steps in checkpoints:
        _save(model, tok, out_dir.with_name(f"{out_dir.name}-checkpoints") / f"step{recipe.steps}", meta)
    return meta


def _meta(recipe: Recipe, size: Size, seed: int, model: Any, tokens: int, step: int, losses: list[float],
          t0: float, out_dir: Path) -> dict:
    import numpy as np

    total, nonemb, _ = count_parameters(model)
    return {"ladder": recipe.name, "size": size.name, "seed": seed, "params": total, "nonembedding_params": nonemb,
            "tokens": tokens, "flops": 6.0 * total * tokens, "steps": recipe.steps, "step": step,
            "recipe": asdict(recipe), "recipe_hash": out_dir.parent.name, "final_loss": float(np.mean(losses[-20:])),
            "train_seconds": round(time.perf_counter() - t0, 1)}


def _save(model: Any, tok: Any, out_dir: Path, meta: dict) -> None:
    """Model, tokenizer and metadata, written beside the folder and renamed over it."""
    model.eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
