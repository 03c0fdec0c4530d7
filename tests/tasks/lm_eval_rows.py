"""Hand-written rows in the real schema of each dataset behind twelve common lm-eval tasks, a few per split."""

from __future__ import annotations

from typing import Any

Rows = dict[str, list[dict[str, Any]]]
SUBJECTS = ["cells", "magnets", "rivers", "volcanoes", "planets", "seeds"]


def _arc(n: int, offset: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        s = SUBJECTS[(i + offset) % len(SUBJECTS)]
        labels = ["A", "B", "C", "D"] if i % 3 else ["1", "2", "3", "4"]
        out.append({"id": f"Q{offset}-{i}", "question": f"Which statement about {s} is true? (#{offset + i})",
                    "choices": {"text": [f"{s} grow", f"{s} shrink", f"{s} melt away", f"{s} are blue"],
                                "label": labels}, "answerKey": labels[(i + offset) % 4]})
    return out


def _hellaswag(n: int, offset: int) -> list[dict[str, Any]]:
    return [{"ind": offset + i, "activity_label": "Making a cake" if i % 2 else "Washing hands",
             "ctx_a": f"A person stands in a kitchen [header] with {SUBJECTS[i % 6]}.",
             "ctx_b": "then they" if i % 2 else "the man", "ctx": "",
             "endings": [f"pour flour [title] into the bowl {i}.", "  walk away.", "sing [step] loudly.",
                         f"wash the {SUBJECTS[(i + 1) % 6]}."],
             "source_id": f"src{i}", "split": "val", "split_type": "indomain", "label": str((i + offset) % 4)}
            for i in range(n)]


def _winogrande(n: int, offset: int) -> list[dict[str, Any]]:
    return [{"sentence": f"Sarah gave Maria the {SUBJECTS[i % 6]} because _ was leaving town ({offset + i}).",
             "option1": "Sarah", "option2": "Maria", "answer": str(1 + (i + offset) % 2)} for i in range(n)]


def _mmlu(n: int, offset: int) -> list[dict[str, Any]]:
    return [{"question": f"  What is {i + offset} + {i}?  ", "subject": "abstract_algebra",
             "choices": [str(2 * i + offset), str(2 * i + offset + 1), "0", "none of these"],
             "answer": (i + offset) % 4} for i in range(n)]


def rows() -> dict[str, Rows]:
    """task → split → rows."""
    return {
        "arc_easy": {"train": _arc(4, 0), "validation": _arc(2, 10), "test": _arc(5, 20)},
        "arc_challenge": {"train": _arc(4, 30), "validation": _arc(2, 40), "test": _arc(5, 50)},
        "hellaswag": {"train": _hellaswag(4, 0), "validation": _hellaswag(5, 10)},
        "piqa": {"train": [{"goal": f"How do I dry {s}?", "sol1": f"Put {s} in the sun.", "sol2": f"Soak {s}.",
                            "label": i % 2} for i, s in enumerate(SUBJECTS[:4])],
                 "validation": [{"goal": f"To open a jar of {s}", "sol1": "twist the lid", "sol2": "shout at it",
                                 "label": (i + 1) % 2} for i, s in enumerate(SUBJECTS)]},
        "winogrande": {"train": _winogrande(4, 0), "validation": _winogrande(5, 7)},
        "sciq": {split: [{"question": f"What do {s} need? ({split} {i})", "distractor1": "salt",
                          "distractor2": "sand", "distractor3": "noise", "correct_answer": "water",
                          "support": ("\n  " if i % 2 else "") + f"All {s} need water to live."}
                         for i, s in enumerate(SUBJECTS[:n])] for split, n in (("train", 4), ("validation", 2),
                                                                                  ("test", 5))},
        "boolq": {split: [{"question": f"is the {s} bigger than a house", "passage": f"The {s} is small. ({i})",
                           "idx": i, "label": i % 2} for i, s in enumerate(SUBJECTS[:n])]
                  for split, n in (("train", 4), ("validation", 5))},
        "copa": {split: [{"premise": f"The {s} broke.", "choice1": f"Someone dropped the {s}.",
                          "choice2": "It was sunny.", "question": "cause" if i % 2 else "effect", "idx": i,
                          "label": i % 2} for i, s in enumerate(SUBJECTS[:n])]
                 for split, n in (("train", 4), ("validation", 5))},
        "logiqa": {split: [{"label": "abcd"[i % 4], "context": f"All {s} are red. Some red things fly.",
                            "question": f"Which follows about {s}?",
                            "options": [f"{s} fly", f"{s} are red", "nothing", "all fly"]}
                           for i, s in enumerate(SUBJECTS[:n])]
                   for split, n in (("train", 4), ("validation", 2), ("test", 5))},
        "openbookqa": {split: [{"id": f"{split}-{i}", "question_stem": f"The {s} is used for",
                                "choices": {"text": ["eating", "reading", "light", "sound"],
                                            "label": ["A", "B", "C", "D"]},
                                "answerKey": (" " if i == 1 else "") + "ABCD"[i % 4]}
                               for i, s in enumerate(SUBJECTS[:n])]
                       for split, n in (("train", 4), ("validation", 2), ("test", 5))},
        "lambada_openai": {"test": [{"text": f"She opened the box of {s} and looked at the {s}"}
                                    for s in SUBJECTS[:5]]},
        "mmlu_abstract_algebra": {"dev": _mmlu(5, 0), "test": _mmlu(5, 100)},
    }
