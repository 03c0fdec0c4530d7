"""lm-evaluation-harness result folders (v0.3 and v0.4 layouts) read into rows of the tidy table: the model and its
size from the run's config, every metric and filter with its stderr, and each task's samples file."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from harness.analysis.scaling import known_chance, metric_info
from harness.errors import HarnessError
from harness.files import read_json
from harness.store import SCORE_COLUMNS


def _lm_eval_model(data: dict, file: Path) -> tuple[str, Optional[float]]:
    config = _mapping(data.get("config"))
    args = config.get("model_args") or ""
    if isinstance(args, dict):
        name = args.get("pretrained")
    else:
        name = next((kv.split("=", 1)[1] for kv in str(args).split(",") if kv.startswith("pretrained=")), None)
    name = name or data.get("model_name") or config.get("model") or file.parent.name
    params = config.get("model_num_parameters")  # true, 0 or inf: not a size; the name or --size decides
    ok = isinstance(params, (int, float)) and not isinstance(params, bool) and math.isfinite(params) and params > 0
    return str(name).rstrip("/"), float(params) if ok else None  # type: ignore[arg-type]


def _mapping(value: Any) -> dict:
    """A part of an lm-eval file that should be an object; anything else counts as absent."""
    return value if isinstance(value, dict) else {}


def _number(value: object, file: Path, where: str) -> Optional[float]:
    """A score from an lm-eval file: a number or a numeric string; "N/A" or "" is missing. Anything else,
    NaN or infinite is named."""
    if isinstance(value, str):
        if value.strip() in ("", "N/A"):
            return None
        try:
            value = float(value)
        except ValueError:
            raise HarnessError(f"not a number: {value!r:.60}", source=file, where=where) from None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HarnessError(f"not a number: {value!r:.60}", source=file, where=where)
    if not math.isfinite(value):
        raise HarnessError(f"not a finite number: {value}", source=file, where=where)
    return float(value)


def read_lm_eval(root: Path) -> tuple[pd.DataFrame, dict[tuple[str, str], Path]]:
    """The scores of every results JSON under ``root`` (one row per model, task and metric) and each (model, task)'s
    samples file, where lm-eval logged one."""
    files = sorted(p for p in root.rglob("*.json") if not p.name.startswith("samples_"))
    rows: dict[tuple, dict] = {}
    samples: dict[tuple[str, str], Path] = {}
    for file in files:
        data = read_json(file)
        if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
            continue  # not an lm-eval results file
        model, params = _lm_eval_model(data, file)
        n_samples = _mapping(data.get("n-samples"))
        for task, metrics in data["results"].items():
            if not isinstance(metrics, dict):
                raise HarnessError("expected an object of metrics", source=file, where=f"results.{task}")
            n = _mapping(n_samples.get(task)).get("effective")
            n = n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None
            for key, raw in metrics.items():
                name, _, filt = key.partition(",")
                if "_stderr" in name or key in ("alias", "name") or isinstance(raw, (dict, list)):
                    continue
                value = _number(raw, file, f"results.{task}.{key}")
                if value is None:
                    continue
                metric = name if filt in ("", "none") else key
                se_key = f"{name}_stderr" + (f",{filt}" if filt else "")
                se = _number(metrics.get(se_key), file, f"results.{task}.{se_key}")
                if se is not None and se < 0:
                    raise HarnessError(f"a standard error cannot be negative: {se}", source=file,
                                       where=f"results.{task}.{se_key}")
                info = metric_info(metric)
                if (model, task, metric) in rows and rows[(model, task, metric)]["source"] != str(file):
                    raise HarnessError(f"model {model!r} has {task} / {metric} in two results files (also "
                                       f"{rows[(model, task, metric)]['source']}): keep one of them in the folder",
                                       source=file, where=f"results.{task}.{key}")
                rows[(model, task, metric)] = {
                    "model": model, "params": params, "task": task, "group": "", "aggregate": "", "metric": metric,
                    "value": value, "stderr": np.nan if se is None else se,
                    "n": n, "kind": info.kind, "higher_is_better": info.higher_is_better,
                    "chance": known_chance(task, metric), "source": str(file)}
        for sample in file.parent.glob("samples_*.jsonl"):
            task = re.sub(r"^samples_(.+?)(_\d{4}-\d{2}-\d{2}T[\d\-.]+)?$", r"\1", sample.stem)
            samples[(model, task)] = sample
    if not rows:
        seen = f"{len(files)} .json file(s) read, none with scores under 'results'" if files else "no .json files"
        raise HarnessError(f"no scores.csv (harness run) and no lm-evaluation-harness results JSON found ({seen})",
                           source=root)
    df = pd.DataFrame(list(rows.values()))
    for col in SCORE_COLUMNS:
        if col not in df.columns:
            df[col] = "" if col == "family" else np.nan
    return df, samples
