"""Read results: this harness's run folders, lm-evaluation-harness result files (v0.3 and v0.4 layouts), or a
long-format CSV, into one tidy table (and curves) that the classifier, report and compare share.

Model size comes from the file (``params`` column, ``config.model_num_parameters``), else from the
model name (``pythia-1.4b``, ``bloom-1b1``, ``Qwen1.5-0.5B``, ``70m``), else from a user mapping.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from harness.analysis.lm_eval_results import read_lm_eval
from harness.analysis.scaling import Curve, known_chance, metric_info
from harness.errors import HarnessError
from harness.files import TOO_DEEP
from harness.models.suite import parse_size
from harness.store import SCORE_COLUMNS, X_COLUMNS, RunStore


@dataclass
class Results:
    """Scores from one source: a table with ``SCORE_COLUMNS`` and, where kept, per-example values."""

    source: Path
    format: str  # "harness" | "lm-eval" | "csv"
    scores: pd.DataFrame
    store: Optional[RunStore] = None
    samples: dict[tuple[str, str], Path] = field(default_factory=dict)  # lm-eval --log_samples files
    parts: list[Results] = field(default_factory=list)  # several sources read together: each one's own
    left_out: dict[str, str] = field(default_factory=dict)  # family → which of its models lack an x value
    axis_notes: list[str] = field(default_factory=list)  # how the x axis counts models of different kinds
    _read: dict[tuple[str, str], Sequence[Mapping[str, Any]]] = field(default_factory=dict, repr=False)

    def _owner(self, model: str) -> Optional[Results]:
        """The one source that holds ``model`` (None when two do: their examples cannot be told apart)."""
        owners = [p for p in self.parts if model in set(p.scores["model"])]
        return owners[0] if len(owners) == 1 else None

    def records(self, model: str, task: str) -> Sequence[Mapping[str, Any]]:
        """Per-example records (this harness: parsed as their output's record type) or logged samples (lm-eval's
        own files) of one model on one task, read once."""
        if self.parts:
            owner = self._owner(model)
            return owner.records(model, task) if owner is not None else []
        key = (model, task)
        if key not in self._read:
            if self.store is not None:
                self._read[key] = self.store.records(model, task) if self.store.summary(model, task) else []
            elif key in self.samples:
                self._read[key] = _read_samples(self.samples[key])
            else:
                self._read[key] = []
        return self._read[key]

    def items(self, model: str, task: str, metric: str) -> Optional[dict]:
        """Per-example values of one model on one task, by (document id, document hash); None when not kept.
        The hash (of the dataset row) makes two runs pair a document only when both saw the same row."""
        if self.parts:
            owner = self._owner(model)
            return owner.items(model, task, metric) if owner is not None else None
        if self.store is not None:
            out = {(r["doc_id"], r.get("doc_hash")): r["metrics"][metric] for r in self.records(model, task)
                   if metric in r["metrics"]}
        else:
            base, _, filt = metric.partition(",")
            out = {(r["doc_id"], r.get("doc_hash")): float(r[base]) for r in self.records(model, task)
                   if r.get("filter", "none") == (filt or "none") and isinstance(r.get(base), (int, float))}
        return out or None


def _read_samples(path: Path) -> list[dict]:
    """An lm-eval ``samples_*.jsonl`` file; a line that is not a JSON object is named."""
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HarnessError(f"invalid JSON: {exc.msg}", source=path, where=f"line {i}") from None
        except RecursionError:
            raise HarnessError(TOO_DEEP, source=path, where=f"line {i}") from None
        if not isinstance(row, dict) or not isinstance(row.get("doc_id"), int):
            raise HarnessError("each line must be an object with an integer doc_id", source=path, where=f"line {i}")
        rows.append(row)
    return rows


def load_results(path: Path, sizes: Optional[dict[str, float]] = None, x: str = "params") -> Results:
    """Detect the format of ``path`` and read it. ``sizes`` sets the x value of named models."""
    return _fill_sizes(_read_source(Path(path)), sizes or {}, x)


def _read_source(path: Path) -> Results:
    if not path.exists():
        raise HarnessError("no such file or directory", source=path)
    if path.is_dir() and (path / "scores.csv").is_file():
        return Results(path, "harness", _read_csv(path / "scores.csv"), store=RunStore(path))
    if path.is_file():
        return Results(path, "csv", _read_csv(path))
    scores, samples = read_lm_eval(path)
    return Results(path, "lm-eval", scores, samples=samples)


def load_sources(paths: Sequence[Path], sizes: Optional[dict[str, float]] = None, x: str = "params",
                 families: Optional[dict[str, str]] = None) -> Results:
    """Several sources read as one table: each source's rows without a ``family`` take the family ``families``
    names for that path (``--family NAME=PATH``), else the source's name (a folder's, or a file's stem), so two
    families given side by side are never pooled. One source without ``families`` reads as ``load_results``."""
    families = families or {}
    if len(paths) == 1 and not families:
        return load_results(paths[0], sizes, x)
    names = {str(Path(where).resolve()): name for name, where in families.items()}
    resolved = {str(Path(path).resolve()) for path in paths}
    for name, where in families.items():
        if str(Path(where).resolve()) not in resolved:
            raise HarnessError(f"{name}={where} names a path that is not one of the sources given", where="--family")
    parts = []
    for path in paths:
        part = _read_source(Path(path))
        name = names.get(str(Path(path).resolve())) or Path(path).stem or Path(path).resolve().name
        fam = part.scores["family"].map(lambda v: "" if pd.isna(v) else str(v))
        part.scores["family"] = fam.where(fam != "", name)
        parts.append(part)
    table = pd.concat([part.scores for part in parts], ignore_index=True)
    source = Path(" + ".join(str(path) for path in paths))
    _check_conflicts(table, source)
    return _fill_sizes(Results(source, "several", table, parts=parts), sizes or {}, x)


def _check_fields(path: Path) -> None:
    """Every row has as many fields as the header: a truncated or broken line is named, not read as data."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = csv.reader(fh)
            header = next(rows, [])
            for i, row in enumerate(rows, 2):
                if row and len(row) != len(header):
                    raise HarnessError(f"{len(row)} fields where the header has {len(header)} (a truncated or "
                                       "broken line?)", source=path, where=f"row {i}")
    except (UnicodeDecodeError, csv.Error) as exc:
        raise HarnessError(f"not a readable CSV ({exc})", source=path) from None


# What each numeric column may hold (NaN: missing, allowed where the column is optional).
_RANGES: dict[str, tuple[str, Callable[[pd.Series], pd.Series]]] = {
    "value": ("a finite number", lambda s: np.isfinite(s)),
    "stderr": ("a finite number >= 0", lambda s: s.isna() | (np.isfinite(s) & (s >= 0))),
    "n": ("a whole number >= 0", lambda s: s.isna() | (np.isfinite(s) & (s >= 0) & (s == s.round()))),
    "chance": ("a finite number", lambda s: s.isna() | np.isfinite(s)),
    **{x: ("a finite number > 0", lambda s: s.isna() | (np.isfinite(s) & (s > 0))) for x in X_COLUMNS},
    "step": ("a whole number >= 0", lambda s: s.isna() | (np.isfinite(s) & (s >= 0) & (s == s.round()))),
}


def _read_csv(path: Path) -> pd.DataFrame:
    _check_fields(path)
    try:
        df = pd.read_csv(path, keep_default_na=True, dtype={"model": str, "task": str, "metric": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise HarnessError(f"not a readable CSV ({str(exc).splitlines()[0]})", source=path) from None
    missing = [c for c in ("model", "task", "metric", "value") if c not in df.columns]
    if missing:
        raise HarnessError(f"missing column(s) {missing} (need model, params, task, metric, value[, stderr, n, chance])",
                           source=path, where="header")
    for col in ("value", "stderr", "n", "chance", *X_COLUMNS):
        if col in df.columns:
            bad = pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise HarnessError(f"column '{col}' is not a number: {df[col].iloc[row]!r}", source=path,
                                   where=f"row {row + 2}")
            df[col] = pd.to_numeric(df[col])
    if df["value"].isna().any():
        row = int(np.flatnonzero(df["value"].isna())[0])
        raw = str(pd.read_csv(path, keep_default_na=False, dtype=str)["value"].iloc[row]).strip()
        raise HarnessError("empty value" if not raw else f"column 'value' must be a finite number, got {raw!r}",
                           source=path, where=f"row {row + 2}")
    for col, (what, ok) in _RANGES.items():
        if col in df.columns:
            wrong = ~np.asarray(ok(df[col].astype(float)), dtype=bool)
            if wrong.any():
                row = int(np.flatnonzero(wrong)[0])
                raise HarnessError(f"column '{col}' must be {what}, got {df[col].iloc[row]}", source=path,
                                   where=f"row {row + 2}")
    for col in SCORE_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    for col in ("family", "group", "aggregate"):
        df[col] = ["" if pd.isna(v) else str(v) for v in df[col]]
    _check_conflicts(df, path)
    df["source"] = str(path)
    return df


def _check_conflicts(df: pd.DataFrame, path: Path) -> None:
    """Rows that cannot all be true are refused, never pooled: one model at two sizes (or two values of any scale
    column), or one model with two values for one task and metric."""
    for col in X_COLUMNS:
        sizes = df[["family", "model", col]].dropna().drop_duplicates()
        twice = sizes[sizes.duplicated(["family", "model"], keep=False)]
        if len(twice):
            model = twice["model"].iloc[0]
            values = sorted(twice.loc[twice["model"] == model, col])
            rows = [int(i) + 2 for i in np.flatnonzero((df["model"] == model).to_numpy())][:4]
            raise HarnessError(f"model {model!r} has two values of {col} ({values[0]:g} and {values[1]:g}; rows "
                               f"{', '.join(map(str, rows))}): one model is one size", source=path, where=col)
    keys = ["family", "model", "task", "aggregate", "metric"]
    repeated = df[df.duplicated(keys, keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        same = (df[keys] == first[keys]).all(axis=1).to_numpy()
        rows = [int(i) + 2 for i in np.flatnonzero(same)]
        raise HarnessError(f"model {first['model']!r} has {len(rows)} rows for {first['task']} / {first['metric']} "
                           f"(rows {', '.join(map(str, rows[:5]))}): give each model one value per task and metric "
                           "(a replicate is a model of its own name)", source=path, where="row " + str(rows[1]))


def _fill_sizes(res: Results, sizes: dict[str, float], x: str) -> Results:
    """The x value of every row: from the file, ``--size``, the model's name (params), or 6·N·D (FLOPs, where
    params and tokens are known). Where several families are read, a family's models without a value are left
    out with a note (a family without training tokens has no FLOPs axis); one family must have them all."""
    if x not in X_COLUMNS:
        raise HarnessError(f"unknown x '{x}' (use {', '.join(X_COLUMNS)})", where="--x")
    df = res.scores
    df[x] = pd.to_numeric(df[x], errors="coerce").astype(float)
    unknown = [m for m in sizes if m not in set(df["model"])]
    if unknown:
        raise HarnessError(f"--size names model(s) not in the results: {unknown}", source=res.source)
    for model, value in sizes.items():
        df.loc[df["model"] == model, x] = float(value)
    from_name = pd.Series([np.nan if (s := parse_size(m)) is None else s for m in df["model"]], index=df.index)
    params = pd.to_numeric(df["params"], errors="coerce").astype(float).fillna(from_name)
    active = pd.to_numeric(df["active_params"], errors="coerce").astype(float).fillna(params)  # dense: all of them
    if x == "params":
        df[x] = df[x].fillna(params)
    elif x == "active_params":
        df[x] = active
    elif x == "flops":  # training compute ≈ 6 · active parameters · tokens (Kaplan et al. 2020)
        df[x] = df[x].fillna(6.0 * active * pd.to_numeric(df["tokens"], errors="coerce").astype(float))
    res.axis_notes = _axis_notes(df, params, active, x)
    lacking = df[x].isna() | (df[x] <= 0)
    still = sorted(set(df.loc[lacking, "model"]))
    if still and df["family"].nunique() > 1 and not lacking.all():
        what = {"flops": "FLOPs or training tokens", "tokens": "training tokens"}.get(x, x)
        for family, g in df[lacking].groupby("family"):
            models = sorted(set(g["model"]))
            total = df.loc[df["family"] == family, "model"].nunique()
            res.left_out[str(family)] = (f"{family}: no {what} for {len(models)} of {total} model(s) "
                                         f"({', '.join(models[:3])}{', …' if len(models) > 3 else ''}); left out of "
                                         f"the {x} axis")
        res.scores = df[~lacking].reset_index(drop=True)
    elif still:
        raise HarnessError(f"no {x} for model(s) {still}: none in the file or the name; pass --size MODEL=VALUE",
                           source=res.source)
    return res


def _axis_notes(df: pd.DataFrame, params: pd.Series, active: pd.Series, x: str) -> list[str]:
    """What the axis means where dense models and mixtures of experts are read together."""
    moe = sorted(set(df.loc[active < params, "model"]))
    if not moe or x in ("tokens", "step"):
        return []
    named = f"{len(moe)} mixture-of-experts model(s) ({', '.join(moe[:3])}{', …' if len(moe) > 3 else ''})"
    if x == "active_params":
        return [f"x = parameters per token: {named} count the experts a token runs; dense models all parameters"]
    if x == "flops":
        return [f"x = training FLOPs, 6 · active parameters · tokens for {named} (where the FLOPs are not given)"]
    return [f"x = {x.replace('_', ' ')}, experts included, for {named}; --x active_params plots parameters per token"]


def curves(res: Results, x: str = "params", metrics: Optional[Sequence[str]] = None,
           tasks: Optional[Sequence[str]] = None, chance: Optional[dict[str, float]] = None) -> list[Curve]:
    """One Curve per (task, aggregate) and metric, with per-example values where kept. Rows of several model
    families (the ``family`` column) are never pooled: a curve per family (task named ``TASK@FAMILY``); likewise a
    suite that mixes decoder-only and encoder-decoder models gets a curve per architecture (``TASK@causal``,
    ``TASK@seq2seq``)."""
    df = res.scores
    for flag, names, column in (("--metric", metrics, "metric"), ("--task", tasks, "task"),
                                ("--chance", list(chance or {}), "task")):
        known = set(df[column].astype(str))
        for name in names or []:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=2)
                hint = f"did you mean {' or '.join(map(repr, close))}?" if close else f"have: {', '.join(sorted(known)[:8])}"
                raise HarnessError(f"no {column} {name!r} in the results; {hint}", source=res.source, where=flag)
    if metrics:
        df = df[df["metric"].isin(metrics)]
    if tasks:
        df = df[df["task"].isin(tasks)]
    split = []  # columns whose values must never share a curve
    for col in ("family", "arch"):
        values = df[col].map(lambda v: "" if pd.isna(v) else str(v)) if col in df.columns else None
        if values is not None and values.nunique() > 1:
            df = df.assign(**{col: values})
            split.append(col)
    out = []
    for keys, g in df.groupby(["task", "aggregate", "metric", *split], sort=True):
        task, aggregate, metric = (str(k) for k in keys[:3])
        label = "@".join([task, *(str(k) for k in keys[3:] if str(k))])
        info = metric_info(metric)
        hib = g["higher_is_better"].dropna()
        higher = bool(str(hib.iloc[0]).lower() == "true") if len(hib) else info.higher_is_better
        kinds = g["kind"].dropna()
        cvals = g["chance"].dropna()
        c = float(cvals.mean()) if len(cvals) else None
        kind = str(kinds.iloc[0]) if len(kinds) else info.kind
        if chance and task in chance and kind != "continuous":  # --chance is for accuracy-type metrics
            c = chance[task]
        elif c is None:
            c = known_chance(task, metric)  # the shipped table of common lm-eval tasks
        out.append(Curve(
            task=label, aggregate=aggregate, metric=metric, models=g["model"].tolist(), x=g[x].tolist(), values=g["value"].tolist(),
            stderr=[None if v is None or math.isnan(v) else v for v in g["stderr"].astype(float)],
            n=[None if v is None or math.isnan(v) else int(v) for v in g["n"].astype(float)],
            chance=c, ceiling=info.ceiling, floor=info.lower if higher else info.upper, higher_is_better=higher,
            kind=kind, family=str(keys[3 + split.index("family")]) if "family" in split else "", base_task=task,
            items=None if aggregate else _items(res, g["model"].tolist(), task, metric), x_name=x))
    return out


def _items(res: Results, models: list[str], task: str, metric: str) -> Optional[np.ndarray]:
    """Models × items per-example values on the items every model answered, or None."""
    per = [res.items(m, task, metric) for m in models]
    if any(p is None for p in per):
        return None
    common = sorted(set.intersection(*(set(p) for p in per)))  # type: ignore[arg-type]
    if len(common) < 2:
        return None
    return np.array([[p[d] for d in common] for p in per], dtype=np.float64)  # type: ignore[index]
