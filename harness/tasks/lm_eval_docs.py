"""Documents of an lm-eval task, rendered as lm-eval renders them: its ``doc_to_text``/``doc_to_target``/
``doc_to_choice`` (field, sandboxed Jinja, number, list, or a known function), its description, and its few-shot
sampler, so each document's context and continuations equal the requests lm-eval builds."""

from __future__ import annotations

import ast
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from harness.errors import HarnessError
from harness.extraction import regex_sub
from harness.files import hf_datasets, read_file
from harness.tasks.lm_eval import FUNCTION_PREFIX, OUTPUTS, function_name
from harness.tasks.lm_eval_functions import FUNCTIONS, MULTIPLE_INPUT
from harness.tasks.sandbox import LimitedEnvironment, _guard, bounded_join, limited
from harness.tasks.schema import LmEvalRef

Document = dict[str, Any]
FEWSHOT_SEED = 1234  # lm-eval's default fewshot_random_seed


_ENV = LimitedEnvironment()
_ENV.filters["regex_replace"] = _guard("regex_replace", lambda string, pattern, repl, count=0: regex_sub(
    pattern, repl, string, count))  # lm-eval registers it: the filtered string first, as Jinja passes it


class _Renderer:
    """lm-eval's ``doc_to_text``/``doc_to_target``/``doc_to_choice`` for one task: a field name, a Jinja template
    (sandboxed), an integer, a list, or a known function; errors name the file, the key and the row."""

    def __init__(self, cfg: dict[str, Any], path: Path, features: set[str]):
        self.cfg, self.path, self.features = cfg, path, features
        self.has_choices = cfg.get("doc_to_choice") is not None
        self._compiled: dict[str, Callable[[Document], str]] = {}

    def _template(self, text: str, key: str) -> Callable[[Document], str]:
        if text not in self._compiled:
            try:
                tmpl = _ENV.from_string(text)
            except Exception as exc:
                raise HarnessError(f"invalid template: {exc}", source=self.path, where=key) from None
            self._compiled[text] = lambda doc: bounded_join(tmpl.generate(**doc))
        return self._compiled[text]

    def call(self, fn: Callable[[], Any], key: str, row: int) -> Any:
        try:
            return limited(fn)
        except HarnessError:
            raise
        except Exception as exc:
            raise HarnessError(f"cannot render: {_reason(exc)}", source=self.path, where=f"{key}: row {row}") from None

    def field(self, doc: Document, key: str, row: int) -> Any:
        """The value of ``key`` (``doc_to_text``, ``doc_to_target``, ``doc_to_choice``) for one document."""
        value = self.cfg.get(key)
        if isinstance(value, (int, list)) and not isinstance(value, bool):
            return value
        if isinstance(value, dict):
            return list(value.values())
        if not isinstance(value, str):
            raise HarnessError(f"must be a field name, a template or a number (got {value!r:.60})", source=self.path,
                               where=key)
        if value in self.features:
            return doc[value]
        if value.startswith(FUNCTION_PREFIX):
            fn = FUNCTIONS[str(function_name(value, self.path, key))]
            return self.call(lambda: fn(doc), key, row)
        text = self.call(lambda: self._template(value, key)(doc), key, row)
        if key.endswith("doc_to_choice"):
            return self.call(lambda: ast.literal_eval(text), key, row)
        if text.isdigit() and self.has_choices:
            return int(text)
        if key.endswith("doc_to_target") and len(text) >= 2 and text[0] == "[" and text[-1] == "]":
            try:
                return ast.literal_eval(text)
            except (SyntaxError, ValueError):
                return text
        return text

    def resolve(self, doc: Document, text: Optional[str], key: str = "description") -> str:
        """lm-eval's ``resolve_field`` (description, gen_prefix): a field, else a template."""
        if not text:
            return ""
        return str(doc[text]) if text in doc else self.call(lambda: self._template(text, key)(doc), key, 0)


def _joins(text: str, prefix: str) -> bool:
    """lm-eval's ``requires_delimiter``: neither side has whitespace at the boundary."""
    return bool(text) and bool(prefix) and not (text[-1].isspace() or prefix[0].isspace())


def _turn(q: str, answer: Optional[str], gen_prefix: str, tdelim: str, fdelim: str) -> str:
    """One question (and answer) as lm-eval's ``build_qa_turn`` renders it as plain text."""
    has_answer = answer is not None and answer != ""
    delim = tdelim if (has_answer and not gen_prefix) or (gen_prefix and _joins(q, gen_prefix)) else ""
    if not has_answer:
        return q + delim + gen_prefix
    assert answer is not None
    joined = answer if not gen_prefix else gen_prefix + (" " if _joins(gen_prefix, answer) else "") + answer
    return q + delim + joined + fdelim


def _split(ref: LmEvalRef, split: str, path: Path) -> list[Document]:
    """One split: a local file when ``data`` names one, else ``datasets.load_dataset`` on the task's reference."""
    if split in ref.data:
        return read_file(Path(ref.data[split]))
    cfg = ref.config
    kwargs = dict(cfg.get("dataset_kwargs") or {})
    kwargs.pop("trust_remote_code", None)  # datasets >= 4 has no dataset scripts; lm-eval drops it too
    try:
        rows = hf_datasets().load_dataset(cfg.get("dataset_path"), cfg.get("dataset_name"), split=split, **kwargs)
    except Exception as exc:
        given = f"; --data gives {', '.join(sorted(ref.data))}" if ref.data else ""
        raise HarnessError(f"could not load dataset '{cfg.get('dataset_path')}' split '{split}': "
                           f"{type(exc).__name__}: {str(exc)[:300]} (point it at a local file with --data "
                           f"{split}=FILE{given})", source=path, where="dataset_path") from None
    return [dict(r) for r in rows]


def _processed(ref: LmEvalRef, split: str, path: Path, process: Any, key: str) -> list[Document]:
    docs = _split(ref, split, path)
    name = function_name(process, path, key)
    if name is not None:
        try:
            docs = FUNCTIONS[name](docs)
        except Exception as exc:  # a row without the fields the function reads
            raise HarnessError(f"{name} failed on split '{split}': {_reason(exc)}", source=path, where=key) from None
    return docs


def _reason(exc: Exception) -> str:
    return f"missing field {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__


def documents(ref: LmEvalRef) -> list[Document]:
    """The evaluated split's documents, each with what lm-eval builds for it: ``lm_context`` (description, shots,
    question; ``lm_contexts`` for multiple input), ``lm_choices``, ``lm_gold``, ``lm_target``, ``lm_references``."""
    cfg, path = ref.config, Path(ref.file)
    split = cfg.get("test_split") or cfg.get("validation_split")
    if not split:
        raise HarnessError("the task names neither a test_split nor a validation_split", source=path,
                           where="test_split")
    docs = _processed(ref, split, path, cfg.get("process_docs"), "process_docs")
    if not docs:
        raise HarnessError(f"split '{split}' is empty", source=path, where="test_split")
    r = _Renderer(cfg, path, set(docs[0]))
    fs = cfg.get("fewshot_config") or {}
    k = ref.num_fewshot if ref.num_fewshot is not None else int(cfg.get("num_fewshot") or 0)
    shots = _Shots(ref, fs, k)
    multiple_input = isinstance(cfg.get("doc_to_text"), int) or (
        function_name(cfg.get("doc_to_text"), path, "doc_to_text") in MULTIPLE_INPUT)
    output = OUTPUTS[cfg.get("output_type", "generate_until")]
    out = []
    for row, doc in enumerate(docs):
        prefix = r.resolve(doc, cfg.get("description")) + shots.text(doc, row)  # no delimiter between
        gen_prefix = r.resolve(doc, cfg.get("gen_prefix"), "gen_prefix")
        choices = [str(c) for c in r.field(doc, "doc_to_choice", row)] if r.has_choices else None
        target = r.field(doc, "doc_to_target", row)
        rendered: Document = {"doc": doc}
        if multiple_input:
            gold = r.field(doc, "doc_to_text", row)
            assert choices is not None
            rendered.update(lm_contexts=[prefix + c + gen_prefix for c in choices], lm_choices=choices, lm_gold=gold,
                            lm_target=str(target))
        else:
            text = r.field(doc, "doc_to_text", row)
            if not isinstance(text, str):
                raise HarnessError(f"doc_to_text gave {text!r:.40}, not text", source=path, where=f"doc_to_text: row {row}")
            rendered["lm_context"] = prefix + _turn(text, None, gen_prefix, cfg.get("target_delimiter", " "), "")
            if output == "multiple_choice":
                rendered.update(lm_choices=choices, lm_gold=_gold(target, choices, path, row))
            else:
                refs = [str(t) for t in target] if isinstance(target, list) else [str(target)]
                if choices is not None and isinstance(target, int):
                    refs = [choices[target]]
                if not refs:
                    raise HarnessError("doc_to_target gave no target", source=path, where=f"doc_to_target: row {row}")
                rendered.update(lm_target=refs[0], lm_references=refs)
        out.append(rendered)
    return out


def _gold(target: Any, choices: Optional[list[str]], path: Path, row: int) -> int:
    if choices is None:
        raise HarnessError("a multiple_choice task needs doc_to_choice", source=path, where="doc_to_choice")
    if isinstance(target, str) and target in choices:
        return choices.index(target)
    if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(choices):
        return target
    raise HarnessError(f"target {target!r:.40} is neither a choice nor a choice index (0..{len(choices) - 1})",
                       source=path, where=f"doc_to_target: row {row}")


class _Shots:
    """lm-eval's few-shot examples: its pool (the few-shot split, else train, validation, test), its samplers
    (``default``: one ``random.Random(1234)`` drawn in document order; ``first_n``), the evaluated document left
    out only when the few-shot split is the test split, each shot ``question + delimiter + answer + delimiter``."""

    def __init__(self, ref: LmEvalRef, fs: dict[str, Any], k: int):
        cfg, path = ref.config, Path(ref.file)
        self.k, self.fs = k, fs
        self.rnd = random.Random(FEWSHOT_SEED)
        self.sampler = fs.get("sampler", "default")
        fs_split = fs.get("split", cfg.get("fewshot_split"))
        self.exclude_eval = fs_split == cfg.get("test_split")
        self.pool: list[Document] = []
        if k == 0:
            return
        if fs_split is not None:
            self.pool = _processed(ref, fs_split, path, fs.get("process_docs", cfg.get("process_docs")),
                                   "fewshot_config.process_docs")
        elif isinstance(fs.get("samples"), list):
            self.pool = list(fs["samples"])
        else:
            split = cfg.get("training_split") or cfg.get("validation_split") or cfg.get("test_split")
            if not split:
                raise HarnessError("few-shot needs a split to draw from", source=path, where="fewshot_split")
            self.pool = _processed(ref, split, path, cfg.get("process_docs"), "process_docs")
        if len(self.pool) < k + (1 if self.exclude_eval and self.sampler == "default" else 0):
            raise HarnessError(f"{k}-shot but the few-shot pool has {len(self.pool)} documents", source=path,
                               where="num_fewshot")
        self.renderer = _Renderer({**cfg, **{key: fs[key] for key in ("doc_to_text", "doc_to_target",
                                  "doc_to_choice") if fs.get(key) is not None}}, path, set(self.pool[0]))

    def sample(self, doc: Document) -> list[Document]:
        eval_doc = doc if self.exclude_eval else None
        if self.sampler == "first_n":
            pool = [d for d in self.pool if d != eval_doc] if eval_doc is not None else self.pool
            if len(pool) < self.k:
                raise HarnessError(f"{self.k}-shot but the few-shot pool has {len(pool)} other documents",
                                   source=self.renderer.path, where="num_fewshot")
            return pool[: self.k]
        if eval_doc is None:
            return self.rnd.sample(self.pool, self.k)
        picked = [d for d in self.rnd.sample(self.pool, self.k + 1) if d != eval_doc][: self.k]
        if len(picked) < self.k:  # copies of the evaluated document were drawn: draw again without any
            others = [d for d in self.pool if d != eval_doc]
            if len(others) < self.k:
                raise HarnessError(f"{self.k}-shot but the few-shot pool has {len(others)} documents other than the "
                                   "evaluated one", source=self.renderer.path, where="num_fewshot")
            picked = self.rnd.sample(others, self.k)
        return picked

    def text(self, doc: Document, row: int) -> str:
        if not self.k:
            return ""
        cfg, out = self.renderer.cfg, []
        tdelim = self.fs.get("target_delimiter", cfg.get("target_delimiter", " "))
        fdelim = self.fs.get("fewshot_delimiter", cfg.get("fewshot_delimiter", "\n\n"))
        for shot in self.sample(doc):
            q = self.renderer.field(shot, "doc_to_text", row)
            c = self.renderer.field(shot, "doc_to_choice", row) if self.renderer.has_choices else None
            a = self.renderer.field(shot, "doc_to_target", row)
            if isinstance(q, int) and c is not None:  # multiple input: the gold choice's context
                q, c = c[q], None
            answer = c[a] if c and isinstance(a, int) else a[0] if isinstance(a, list) else a
            gen_prefix = self.renderer.resolve(shot, self.fs.get("gen_prefix", cfg.get("gen_prefix")), "gen_prefix")
            out.append(_turn(str(q), None if answer is None else str(answer), gen_prefix, tdelim, fdelim))
        return "".join(out)
