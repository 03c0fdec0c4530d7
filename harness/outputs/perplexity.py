"""``perplexity``: the log-prob of the whole text, scored in windows (rolling log-likelihood), with its length
in tokens, bytes and words so bits per byte and the perplexities are corpus-level ratios."""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.models.backend import Backend
from harness.outputs.base import BaseRecord, Instance, Output, Settings, register


class PerplexityRecord(BaseRecord):
    """The whole text's log-prob and its length in tokens, bytes and words."""

    logprob: float
    n_tokens: int
    n_bytes: int
    n_words: int


@register
class Perplexity(Output):
    name = "perplexity"
    record = PerplexityRecord
    continuation = False

    def evaluate(self, backend: Backend, instances: Sequence[Instance], spec: Settings) -> list[BaseRecord]:
        lls = backend.loglikelihood_rolling([i.context for i in instances], spec.perplexity.window,
                                            spec.perplexity.stride)
        return [PerplexityRecord(doc_id=i.doc_id, doc_hash=i.doc_hash, logprob=r.logprob, n_tokens=r.n_tokens,
                                 n_bytes=len(i.context.encode("utf-8")), n_words=len(re.split(r"\s+", i.context)),
                                 metrics={}) for i, r in zip(instances, lls)]
