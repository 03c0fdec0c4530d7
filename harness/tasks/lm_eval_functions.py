"""Safe re-implementations of the lm-eval task functions (``!function``) the common families need.

lm-eval imports the Python file next to a task YAML; this harness never does. A function is known here by its
lm-eval name, ``FOLDER/MODULE.FUNCTION`` (the YAML's folder, then what follows ``!function``): e.g.
``hellaswag/utils.process_docs``. Each one below is a transcription of lm-eval 0.4's, checked against it in
``tests/tasks/test_lm_eval.py``. Any other function is refused, naming the file, the key and the function."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Document = dict[str, Any]
FUNCTIONS: dict[str, Callable[..., Any]] = {}
MULTIPLE_INPUT: set[str] = set()  # doc_to_text functions that return the gold choice's index (choices in context)


def function(name: str, multiple_input: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a re-implementation under its lm-eval name."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        FUNCTIONS[name] = fn
        if multiple_input:
            MULTIPLE_INPUT.add(name)
        return fn

    return register


# ---------------------------------------------------------------- hellaswag (and its translations' layout)

def _hellaswag_clean(text: str) -> str:
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


@function("hellaswag/utils.process_docs")
def hellaswag_process_docs(docs: list[Document]) -> list[Document]:
    """Activity label, both context halves (second capitalized), WikiHow bracket artifacts removed."""
    out = []
    for doc in docs:
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        out.append({**doc, "query": _hellaswag_clean(doc["activity_label"] + ": " + ctx),
                    "choices": [_hellaswag_clean(e) for e in doc["endings"]], "gold": int(doc["label"])})
    return out


# ---------------------------------------------------------------- winogrande: the choices go into the context

@function("winogrande/preprocess_winogrande.doc_to_text", multiple_input=True)
def winogrande_doc_to_text(doc: Document) -> int:
    return {"1": 0, "2": 1}[doc["answer"]]


@function("winogrande/preprocess_winogrande.doc_to_target")
def winogrande_doc_to_target(doc: Document) -> str:
    idx = doc["sentence"].index("_") + 1
    return str(doc["sentence"][idx:].strip())


@function("winogrande/preprocess_winogrande.doc_to_choice")
def winogrande_doc_to_choice(doc: Document) -> list[str]:
    idx = doc["sentence"].index("_")
    return [doc["sentence"][:idx] + opt for opt in (doc["option1"], doc["option2"])]


# ---------------------------------------------------------------- copa (SuperGLUE)

def _copa_choice(choice: str) -> str:
    return choice[0].lower() + choice[1:]


@function("copa/utils.doc_to_text")
def copa_doc_to_text(doc: Document) -> str:
    connector = {"cause": "because", "effect": "therefore"}[doc["question"]]
    return str(doc["premise"].strip()[:-1] + f" {connector}")


@function("copa/utils.doc_to_target")
def copa_doc_to_target(doc: Document) -> str:
    return " " + _copa_choice(doc["choice1"] if doc["label"] == 0 else doc["choice2"])


@function("copa/utils.doc_to_choice")
def copa_doc_to_choice(doc: Document) -> list[str]:
    return [" " + _copa_choice(doc["choice1"]), " " + _copa_choice(doc["choice2"])]


# ---------------------------------------------------------------- logiqa

@function("logiqa/utils_logiqa.doc_to_text")
def logiqa_doc_to_text(doc: Document) -> str:
    prompt = "Passage: " + doc["context"] + "\n" + "Question: " + doc["question"] + "\nChoices:\n"
    for letter, option in zip("ABCD", doc["options"]):
        prompt += f"{letter}. {option}\n"
    return prompt + "Answer:"


@function("logiqa/utils_logiqa.doc_to_target")
def logiqa_doc_to_target(doc: Document) -> int:
    return ["a", "b", "c", "d"].index(doc["label"].strip())
