"""Encoder-decoder models (T5, Flan-T5, BART): log-likelihoods and greedy generation with the request types of
the causal backend, following lm-eval's seq2seq conventions: the context goes to the encoder with the
tokenizer's special tokens, the continuation (trailing context whitespace moved into it, no special tokens, so
EOS is not scored) is the decoder's labels, shifted by the model with its decoder start token; padded encoder
positions are masked. Whole-text perplexity is refused: it is not comparable with a decoder-only model's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import torch

from harness.errors import HarnessError
from harness.models.backend import GenerationRequest, LogLikelihood
from harness.models.base import TransformersBackend, register_backend
from harness.models.encoding import encode_texts
from harness.models.generation import cut_at_stop
from harness.models.suite import ModelSpec


@register_backend
class Seq2SeqBackend(TransformersBackend):
    """An encoder-decoder model loaded once: the base's loading, batching and tokenization; scoring and generation
    its own."""

    arch = "seq2seq"
    auto_class = "AutoModelForSeq2SeqLM"

    def __init__(self, spec: ModelSpec, *, device: str = "cpu", dtype: str = "float32",
                 batch_size: Union[int, str] = "auto", token_budget: Optional[int] = None):
        if spec.quantization is not None:
            raise HarnessError("quantization of encoder-decoder models is not supported", source=spec.model,
                               where="quantization")
        super().__init__(spec, device=device, dtype=dtype, batch_size=batch_size, token_budget=token_budget)

    def describe(self) -> str:
        return "encoder-decoder: context to the encoder, continuation as decoder labels"

    def encode_pairs(self, requests: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """lm-eval's seq2seq encoding: context and continuation encoded apart; an empty context is the prefix token
        (unless the continuation starts with it)."""
        out = []
        for context, continuation in requests:
            if not context:
                cont = self.tokenize(continuation)
                out.append(([self.bos_id], cont) if not cont or cont[0] != self.bos_id else (cont[:1], cont[1:]))
                continue
            n_spaces = len(context) - len(context.rstrip())
            if n_spaces:
                context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
            out.append((self.encode(context), self.tokenize(continuation)))
        return out

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[LogLikelihood]:
        pairs = self.encode_pairs(requests)
        return [r._replace(truncated=True) if max(len(c), len(x)) > self.max_length else r
                for r, (c, x) in zip(self.score_tokens(pairs), pairs)]

    def _item(self, ctx: tuple[int, ...], cont: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The encoder input and the labels, each cut to the model's length."""
        return ctx[-self.max_length:], cont[-self.max_length:]

    def _cost(self, item: tuple[tuple[int, ...], tuple[int, ...]]) -> int:
        return len(item[0]) + len(item[1])

    @torch.inference_mode()
    def _score_batch(self, items: Sequence[tuple[tuple[int, ...], tuple[int, ...]]]) -> list[LogLikelihood]:
        width = max(len(c) for c, _ in items)
        n_labels = max(max(len(x) for _, x in items), 1)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full((len(items), n_labels), self.pad_id, dtype=torch.long)
        rows: list[int] = []
        pos: list[int] = []
        targets: list[int] = []
        sizes: list[int] = []
        for r, (ctx, cont) in enumerate(items):
            ids[r, : len(ctx)] = torch.tensor(ctx)
            mask[r, : len(ctx)] = 1
            labels[r, : len(cont)] = torch.tensor(cont, dtype=torch.long)
            rows += [r] * len(cont)
            pos += range(len(cont))
            targets += cont
            sizes.append(len(cont))
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                            labels=labels.to(self.device)).logits
        at = (torch.tensor(rows, dtype=torch.long, device=self.device), torch.tensor(pos, dtype=torch.long,
                                                                                    device=self.device))
        return self._gather(logits[at], targets, sizes)

    def loglikelihood_rolling(self, texts: Sequence[str], window: Optional[int] = None,
                              stride: Optional[int] = None) -> list[LogLikelihood]:
        raise HarnessError("whole-text perplexity is not comparable on an encoder-decoder model (what would the "
                           "encoder see?); score perplexity tasks on decoder-only models")

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Greedy ``model.generate`` (one beam), batched; each text cut at its first stop sequence. Sampled
        requests are refused: only the decoder-only engine draws from per-request seeded streams."""
        if any(r.sampling is not None for r in requests):
            raise HarnessError("sampled generation (do_sample / temperature > 0) runs on decoder-only models only; "
                               "this encoder-decoder model decodes greedily", where="generation_kwargs")
        out: list[Optional[str]] = [None] * len(requests)
        encoded = [e[-self.max_length:] for e in encode_texts(self.tokenizer, [r.context for r in requests])]
        lengths = [len(e) + r.max_new_tokens for e, r in zip(encoded, requests)]
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.max_new_tokens, []).append(i)
        for max_new, members in groups.items():
            def step(b: list[int], n: int = max_new) -> list[str]:
                return self._generate_batch([encoded[i] for i in b], n)

            for batch in self.batches(lengths, sorted(members, key=lambda i: -lengths[i])):
                texts = self.run_batched(step, batch)
                for i, text in zip(batch, texts):
                    out[i] = cut_at_stop(text, requests[i].until)
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[list[int]], max_new: int) -> list[str]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, p in enumerate(prompts):
            ids[r, : len(p)] = torch.tensor(p)
            mask[r, : len(p)] = 1
        gen = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                  max_new_tokens=max_new, do_sample=False, num_beams=1)
        return list(self.tokenizer.batch_decode(gen[:, 1:], skip_special_tokens=True))  # after the start token
