"""Classify every curve of a results source: the analysis pipeline behind ``harness classify``, ``report`` and
``compare``, taking paths and options (not command-line arguments)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

from harness.analysis.results import Results, curves, load_results
from harness.analysis.scaling import Classification, Curve, Rules, classify
from harness.errors import HarnessError


class LabelledCurve(NamedTuple):
    curve: Curve
    classification: Classification


@dataclass
class Classified:
    """A results source with its labelled curves, and why the curves that were not labelled were skipped."""

    results: Results
    curves: list[LabelledCurve] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def classifications(self) -> list[Classification]:
        return [lc.classification for lc in self.curves]


def classify_results(res: Results, *, x: str = "params", metrics: Optional[Sequence[str]] = None,
                     tasks: Optional[Sequence[str]] = None, chance: Optional[dict[str, float]] = None,
                     bootstrap: int = 400) -> Classified:
    """Label every curve of ``res``; curves with fewer than 3 sizes are skipped with a reason."""
    out = Classified(res)
    for curve in curves(res, x, metrics, tasks, chance):
        try:
            out.curves.append(LabelledCurve(curve, classify(curve, Rules(bootstrap=bootstrap))))
        except HarnessError as err:
            out.skipped.append(str(err))
    return out


def load_classified(path: Path, *, sizes: Optional[dict[str, float]] = None, x: str = "params",
                    metrics: Optional[Sequence[str]] = None, tasks: Optional[Sequence[str]] = None,
                    chance: Optional[dict[str, float]] = None, bootstrap: int = 400) -> Classified:
    """Read a results source and label its curves; an error when not one curve has 3 model sizes."""
    res = load_results(Path(path), sizes, x)
    out = classify_results(res, x=x, metrics=metrics, tasks=tasks, chance=chance, bootstrap=bootstrap)
    if not out.curves:
        raise HarnessError("no curve with at least 3 model sizes" + (f" ({out.skipped[0]})" if out.skipped else ""),
                           source=res.source)
    return out
