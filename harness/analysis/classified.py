"""Classify every curve of a results source: the analysis pipeline behind ``harness classify``, ``report`` and
``compare``, taking paths and options (not command-line arguments)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional, Union

from harness.analysis.results import Results, curves, load_sources
from harness.analysis.scaling import Classification, Curve, Rules, classify, display_name
from harness.errors import HarnessError
from harness.store import ManifestTask


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


def manifest_tasks(results: Results) -> Optional[list[ManifestTask]]:
    """The task entries a harness run's manifest records (keywords, preferred metric, canary), or None for other
    results sources."""
    manifest = results.store.manifest() if results.store is not None else None
    return None if manifest is None else manifest.tasks


def by_family(classifications: Sequence[Classification]) -> dict[tuple[str, str], Counter[str]]:
    """(family, metric) → how many tasks fall in each category: Wei et al.'s table, family by family."""
    table: dict[tuple[str, str], Counter[str]] = {}
    for c in classifications:
        if c.family:
            table.setdefault((c.family, c.metric), Counter())[c.label] += 1
    return table


def across_families(classifications: Sequence[Classification]) -> list[str]:
    """One line per task and metric measured in several families: how many families show each label, and where
    the emergent ones break (e.g. ``arc_easy / acc: smooth in 3 of 5 families (a, b, c); emergent in 2 (d, e),
    breaking between 1.2e+09 and 6.9e+09 params``)."""
    groups: dict[tuple[str, str, str], list[Classification]] = {}
    for c in classifications:
        if c.family:
            groups.setdefault((c.base_task, c.aggregate, c.metric), []).append(c)
    lines = []
    for (task, aggregate, metric), cs in sorted(groups.items()):
        if len(cs) < 2:
            continue
        parts: list[str] = []
        for label, n in Counter(c.label for c in cs).most_common():
            members = sorted(c.family for c in cs if c.label == label)
            part = f"{label} in {n}" + (f" of {len(cs)} families" if not parts else "") + f" ({', '.join(members)})"
            bands = [b for c in cs if c.label == label and (b := c.diagnostics.break_between) is not None]
            if bands:
                x = cs[0].diagnostics.x
                part += f", breaking between {min(b[0] for b in bands):.2g} and {max(b[1] for b in bands):.2g} {x}"
            parts.append(part)
        lines.append(f"{display_name(task, aggregate)} / {metric}: " + "; ".join(parts))
    return lines


def by_keyword(classified: Classified) -> dict[tuple[str, str], Counter[str]]:
    """(keyword, metric) → how many tasks fall in each category, from the task keywords a run's manifest records
    (Wei et al.'s table). A group counts once per metric, by its macro curve, under its subtasks' keywords."""
    tasks = manifest_tasks(classified.results)
    if tasks is None:
        raise HarnessError("--by keyword needs a harness run folder (its manifest records task keywords)",
                           source=classified.results.source)
    keywords: dict[str, set[str]] = {}
    group_of: dict[str, str] = {}
    for t in tasks:
        keywords.setdefault(t.name, set()).update(t.keywords)
        if t.group:
            keywords.setdefault(t.group, set()).update(t.keywords)
            group_of[t.name] = t.group
    macro = {(c.task, c.metric) for c in classified.classifications if c.aggregate == "macro"}
    table: dict[tuple[str, str], Counter[str]] = {}
    for c in classified.classifications:
        # a group's macro curve stands for its subtasks; a subtask counts alone where its group has no such curve
        if c.aggregate == "macro" or (not c.aggregate and (group_of.get(c.task), c.metric) not in macro):
            for kw in sorted(keywords.get(c.task, ())):
                table.setdefault((kw, c.metric), Counter())[c.label] += 1
    if not table:
        raise HarnessError("no task in these results has keywords", source=classified.results.source)
    return table


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


def load_classified(path: Union[Path, Sequence[Path]], *, sizes: Optional[dict[str, float]] = None,
                    x: str = "params", metrics: Optional[Sequence[str]] = None, tasks: Optional[Sequence[str]] = None,
                    chance: Optional[dict[str, float]] = None, bootstrap: int = 400,
                    families: Optional[dict[str, str]] = None) -> Classified:
    """Read a results source (or several, side by side: see ``load_sources``) and label its curves; an error when
    not one curve has 3 model sizes."""
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    res = load_sources(paths, sizes, x, families)
    out = classify_results(res, x=x, metrics=metrics, tasks=tasks, chance=chance, bootstrap=bootstrap)
    if not out.curves:
        raise HarnessError("no curve with at least 3 model sizes" + (f" ({out.skipped[0]})" if out.skipped else ""),
                           source=res.source)
    return out
