"""Encoding many texts with their shared head encoded once gives the tokenizer's own ids, for every kind of
tokenizer; where the cut is not exact, every text is encoded whole."""

import random

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from harness.models.encoding import LOOKAHEAD, MIN_SHARED_CHARS, encode_texts, head_cuts

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
WORDS = ["the", "cat", "Answer:", "Q.", "12", "3,4", "é", "naïve", "中文", "(a)", "it's", "--", "x_y", "\n", "\n\n",
         "  ", "\t", "A.", "B.", "well-known", "1999", "ok!"]


def corpus(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))) for _ in range(n)]


def build(kind: str) -> PreTrainedTokenizerFast:
    """A small tokenizer of ``kind``, trained here: byte-level BPE (GPT-2), Llama-3's split regex, SentencePiece's
    Metaspace (Unigram), Llama-2's legacy normalizer (prepends to every text), BERT's WordPiece (appends [SEP])."""
    lines = corpus(random.Random(0), 400)
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    if kind in ("bytelevel", "llama3"):
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = (pre_tokenizers.ByteLevel(add_prefix_space=False) if kind == "bytelevel" else
                             pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_SPLIT), "isolated"),
                                                      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    elif kind == "metaspace":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
        trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>")
    elif kind == "llama2":
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials)
    else:  # wordpiece
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials)
    tok.train_from_iterator(lines, trainer)
    if kind == "wordpiece":
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
            ("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                       sep_token="[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


class Counting:
    """The tokenizer, counting the characters it is given."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast):
        self.tokenizer, self.chars = tokenizer, 0

    def __call__(self, text, **kwargs):
        self.chars += len(text) if isinstance(text, str) else sum(map(len, text))
        return self.tokenizer(text, **kwargs)


def few_shot_texts(seed: int, n: int = 60) -> list[str]:
    """A shared few-shot block, then each document's own text, with its choices appended (as lm-eval's
    context + continuation encoding does); the block's end and the tails start anywhere in a word or space run."""
    rng = random.Random(seed)
    head = " ".join(corpus(rng, 8))[: rng.randint(400, 900)]
    texts = []
    for doc in corpus(rng, n):
        ctx = head + doc[: rng.randint(0, 30)] + rng.choice(["", " ", "\n", "Answer:", "  "])
        texts += [ctx] + [ctx + rng.choice(["", " "]) + c for c in corpus(rng, 3)]
    return texts


@pytest.mark.parametrize("kind", ["bytelevel", "llama3", "metaspace", "llama2", "wordpiece"])
@pytest.mark.parametrize("special", [True, False])
def test_same_ids_as_encoding_each_text_whole(kind, special):
    tokenizer = build(kind)
    exact = kind in ("bytelevel", "llama3", "metaspace") or (kind == "wordpiece" and not special)
    for seed in range(8):
        texts = few_shot_texts(seed)
        counting = Counting(tokenizer)
        got = encode_texts(counting, texts, special)
        assert got == [tokenizer(t, add_special_tokens=special)["input_ids"] for t in texts], (kind, seed)
        whole = sum(map(len, dict.fromkeys(texts)))
        if exact:  # the head was encoded once: a fraction of the characters went to the tokenizer
            assert counting.chars < 0.5 * whole, (kind, seed)


def test_no_cut_without_a_long_shared_head():
    assert head_cuts(["x" * 1000, "x" * 1000 + "y", "x" * 1000 + "z"]) == [0, 0, 0]  # no space starts a word
    short = "a b " * (MIN_SHARED_CHARS // 8)
    assert head_cuts([short + "c", short + "d", short + "e"]) == [0, 0, 0]
    long = "a b " * 100
    cuts = head_cuts([long + "c", long + "d", "another text " * 30, long + "e"])
    assert cuts[2] == 0  # it shares no head with the others
    for at in cuts[:2] + cuts[3:]:
        assert 0 < at <= len(long) - LOOKAHEAD and long[at] == " " and long[at + 1].isalpha()


def test_heads_within_heads_are_encoded_once():
    """A few-shot block, then each document's question, then its choices: the block is encoded once, and each
    question about once (not once per choice), with the tokenizer's ids."""
    tokenizer = build("bytelevel")
    rng = random.Random(5)
    block = " ".join(corpus(rng, 10))
    questions = [" ".join(corpus(rng, 4))[:400] + " Answer:" for _ in range(30)]
    choices = [[" " + c for c in corpus(rng, 4)] for _ in questions]
    texts = [block + q for q in questions] + [block + q + c for q, cs in zip(questions, choices) for c in cs]
    counting = Counting(tokenizer)
    assert encode_texts(counting, texts) == [tokenizer(t)["input_ids"] for t in texts]
    once = len(block) + sum(map(len, questions)) + sum(len(c) for cs in choices for c in cs)
    probes = 3 * 3 * max(map(len, texts))  # three texts encoded whole at each of the three levels
    assert counting.chars < 1.3 * once + probes < 0.3 * sum(map(len, texts))


def test_empty_and_repeated_texts():
    tokenizer = build("bytelevel")
    assert encode_texts(tokenizer, []) == []
    texts = ["same text " * 40] * 5 + ["same text " * 40 + "and more"]
    assert encode_texts(tokenizer, texts) == [tokenizer(t)["input_ids"] for t in texts]
