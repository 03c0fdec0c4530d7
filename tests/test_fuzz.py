"""Property-based fuzzing (Hypothesis) of everything a user hands the harness: task YAML, data rows, configs,
CSV and lm-eval imports, CLI arguments, archives given to ``bigbench fetch``. The property, for every input: no traceback, bounded time, and either
exit 0 (a result) or exit 2 with exactly one error line (exit 1: a run that recorded a failed pair), with the
results already on disk byte-identical after an error.

Examples are derandomized so CI is reproducible; ``HYPOTHESIS_PROFILE=deep`` draws ten times as many, at random."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.testing import project_config

settings.register_profile("ci", max_examples=40, derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("deep", max_examples=400, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=300, deadline=None, database=None, phases=[Phase.generate],
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROWS = [{"q": "x", "opts": ["a", "b"], "gold": 1}, {"q": "y", "opts": ["a", "b", "c"], "gold": 0}]
GOOD = {"name": "t", "dataset": {"path": "d.jsonl"}, "prompt": "{{q}}", "choices": "{{opts}}", "answer": "{{gold}}",
        "output": "multiple_choice", "metrics": ["acc"]}
CURVE = {"model": "m", "params": 1e6, "task": "arc_easy", "metric": "acc", "value": 0.5, "stderr": 0.01, "n": 100}

# ---------------------------------------------------------------- value strategies

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.sampled_from([0, 1, -1, 2, 64, 4096, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", "auto", "cpu", "acc", "exact_match", "{{q}}", "d.jsonl", "../d.jsonl", "/etc/hosts", "²",
                     "--1", "1", "[red]x[/]", "$x$", "\x00", "a\nb", "N/A", "nan", "-inf", "true"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
fragments = st.sampled_from([
    "{{q}}", "{{ q }}", "{{opts}}", "{{gold}}", "{{ q|upper }}", "{{ q * 3 }}", "{{ q * 10**10 }}", "{{ 9**99999 }}",
    "{% for o in opts %}{{o}} {% endfor %}", "{{ opts|join(', ') }}", "{{ q.__class__ }}", "{{ undefined_name }}",
    "{{ '{:>99999999}'.format(q) }}", "{{ '%099999999d' % 1 }}", "{{ range(5)|list }}", "{% if q %}y{% else %}n{% endif %}",
    "{{ q|center(99999999) }}", "{{", "}}", "{%", "{# c #}", "{{ gold + 1 }}", "{{ opts[gold] }}", "{{ opts|length }}",
    "{{ q ~ q }}", "{{ lipsum() }}", "{{ opts|random }}", "{{ (q * 1000)|replace(q, q * 1000) }}", "Q: ", "\n", "A:",
])
templates = st.lists(st.one_of(fragments, st.text(max_size=10)), min_size=1, max_size=4).map("".join)
task_fields = st.sampled_from(["name", "dataset", "prompt", "choices", "answer", "answer_is", "output", "metrics",
                               "target", "generation", "fewshot", "chance", "target_delimiter", "version", "extra",
                               "perplexity", "subtasks", "description"])


@st.composite
def task_files(draw: Any) -> str:
    """A task file: GOOD with some fields replaced (by values or templates) or removed, or raw text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.text(max_size=200), st.sampled_from(["", "- a", "name: [", "a: &a [*a]", "{" * 100])))
    spec: dict[str, Any] = dict(GOOD)
    for field in draw(st.lists(task_fields, max_size=4)):
        spec[field] = draw(st.one_of(values, templates, st.just(None)))
    if draw(st.booleans()):
        spec["prompt"] = draw(templates)
    if draw(st.booleans()) and spec.get("output") == "multiple_choice":
        spec.update(output="generate", target=draw(templates), metrics=["exact_match"])
    return yaml.safe_dump({k: v for k, v in spec.items() if v is not None}, allow_unicode=True)


valid_rows = st.fixed_dictionaries({"q": st.text(max_size=20), "opts": st.lists(st.text(min_size=1, max_size=5),
                                                                             min_size=2, max_size=4, unique=True),
                                    "gold": st.integers(0, 1)})
rows = st.lists(st.one_of(
    valid_rows, valid_rows,
    st.fixed_dictionaries({"q": values, "opts": st.one_of(values, st.lists(st.text(max_size=5), max_size=4)),
                           "gold": st.one_of(values, st.integers(-2, 4))}),
    values), max_size=5)
words = st.sampled_from(["run", "tasks", "show", "validate", "list", "classify", "report", "compare", "ladder",
                         "config.yaml", "s.csv", "results/t", "tasks/x.yaml", "toy_mc", "--limit", "--n", "--batch-size",
                         "--device", "--dtype", "--size", "--chance", "--bootstrap", "--x", "--output", "--out", "--json",
                         "--metric", "--task", "--per-model", "--keep-going", "--fail-fast", "--seed", "-h", "0", "-1",
                         "2", "abc", "auto", "cpu", "cuda", "m0=1e6", "toy_mc=0.25", "toy_mc=7", "nan", "[red]x[/]", ""])


# ---------------------------------------------------------------- harness


def csv(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r)) or ["model"]
    return "\n".join([",".join(cols)] + [",".join(str(r.get(c, "")).replace(",", ";").replace("\n", " ")
                                                  for c in cols) for r in rows]) + "\n"


@contextlib.contextmanager
def inside(root: Path) -> Iterator[Path]:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(cwd)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def attempt(project: Path, files: dict[str, str], argv: list[str], ok: tuple[int, ...] = (0, 2)) -> int:
    """Run ``argv`` in a fresh copy of the project folder holding ``files``; check the property."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "p"
        shutil.copytree(project, root)
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8", errors="surrogatepass")
        before = snapshot(root / "results" / "t")
        err, out = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        with inside(root), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse: usage errors and --help
                rc = exc.code if isinstance(exc.code, int) else 2
        seconds = time.perf_counter() - t0
        text = err.getvalue() + out.getvalue()
        event(f"exit {rc}")  # pytest --hypothesis-show-statistics shows how often each outcome was drawn
        assert "Traceback" not in text
        assert rc in ok, (argv, rc, text[-1500:])
        assert seconds < 30, (argv, seconds)
        if rc == 2:
            lines = [line for line in err.getvalue().splitlines() if line.strip()]
            assert len(lines) == 1 and "error:" in lines[0], (argv, err.getvalue()[-1500:])
            assert snapshot(root / "results" / "t") == before  # nothing recorded is touched by bad input
        return rc


# ---------------------------------------------------------------- properties


@given(text=task_files())
def test_fuzz_task_yaml(project, text):
    attempt(project, {"tasks/x.yaml": text, "tasks/d.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS)},
            ["tasks", "show", "tasks/x.yaml", "--n", "2"])


@given(data=rows, raw=st.booleans(), junk=st.text(max_size=40))
def test_fuzz_data_rows(project, data, raw, junk):
    lines = "".join(json.dumps(r, default=str) + "\n" for r in data) + (junk if raw else "")
    attempt(project, {"tasks/x.yaml": yaml.safe_dump(GOOD), "tasks/d.jsonl": lines},
            ["tasks", "show", "tasks/x.yaml", "--n", "3"])


config_fields = st.sampled_from(["name", "suite", "tasks", "run", "output", "data_roots", "extra"])
run_fields = st.sampled_from(["device", "dtype", "batch_size", "token_budget", "limit", "seed", "on_error", "x"])


@settings(max_examples=settings.default.max_examples // 2)  # each valid config runs a model
@given(top=st.dictionaries(config_fields, values, max_size=2), run=st.dictionaries(run_fields, values, max_size=2))
def test_fuzz_configs(project, top, run):
    cfg = project_config(yaml.safe_load((project / "config.yaml").read_text())["suite"][0]["model"], top)
    if isinstance(cfg.get("run"), dict) and run:
        cfg["run"] = {**cfg["run"], **run}
    attempt(project, {"c.yaml": yaml.safe_dump(cfg, allow_unicode=True)}, ["run", "c.yaml"], ok=(0, 1, 2))


cells = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**12), st.text(max_size=6),
                  st.sampled_from(["", "nan", "inf", "-inf", "N/A", "true", "1e6", "70m", "[red]", "$x$"]))


@given(table=st.lists(st.dictionaries(st.sampled_from(list(CURVE) + ["chance", "group", "kind", "junk"]), cells,
                                      max_size=2), min_size=0, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 400)), base=st.integers(0, 3))
def test_fuzz_csv_import(project, table, cut, base):
    """Rows of a valid curve with a cell or two replaced (base > 0), or random rows; sometimes cut short."""
    rows = [{**CURVE, "model": f"m{i}", "params": 10 ** (6 + i), "value": 0.1 * i, **r} if base else r
            for i, r in enumerate(table)]
    text = csv(rows)
    attempt(project, {"s.csv": text if cut is None else text[:cut]}, ["classify", "s.csv"])


lm_values = st.one_of(cells, values)


good_lm = st.lists(st.tuples(st.sampled_from(["70m", "160m", "410m", "1b", "2.8b"]), st.floats(0, 1),
                             st.one_of(st.floats(0, 0.1), st.just("N/A"))), min_size=1, max_size=5).map(
    lambda xs: [{"results": {"arc_easy": {"alias": "arc_easy", "acc,none": a, "acc_stderr,none": s}},
                 "config": {"model_args": f"pretrained=/m/pythia-{size}"}} for size, a, s in xs])


@given(files=st.one_of(good_lm, st.lists(st.fixed_dictionaries({
    "results": st.one_of(values, st.dictionaries(st.sampled_from(["arc_easy", "piqa", "x"]), st.one_of(
        values, st.dictionaries(st.sampled_from(["acc,none", "acc_stderr,none", "alias", "acc_norm,none", "f1"]),
                                lm_values, max_size=4)), max_size=2)),
    "config": st.one_of(values, st.fixed_dictionaries({"model_args": st.sampled_from(
        ["pretrained=/m/pythia-70m", "pretrained=/m/pythia-1b", "", "x=y"]), "model_num_parameters": lm_values})),
    "n-samples": values}), min_size=1, max_size=4)),
    samples=st.one_of(st.none(), st.text(max_size=60), st.just('{"doc_id": 0, "acc": 1.0}\n')))
def test_fuzz_lm_eval_import(project, files, samples):
    written = {f"lm/m{i}/results.json": json.dumps(f, default=str) for i, f in enumerate(files)}
    if samples is not None:
        written["lm/m0/samples_arc_easy_2024-01-01T00-00-00.jsonl"] = samples
    attempt(project, written, ["classify", "lm"])


@settings(max_examples=settings.default.max_examples * 3 // 2)
@given(argv=st.lists(words, min_size=0, max_size=6))
def test_fuzz_cli_arguments(project, argv):
    if "ladder" in argv and "build" in argv:
        argv = [a for a in argv if a != "build"]  # training a ladder takes minutes: not an input error
    attempt(project, {}, argv, ok=(0, 1, 2))


TASK_JSON = json.dumps({"name": "ok", "description": "d", "keywords": [], "metrics": ["exact_str_match"],
                        "examples": [{"input": "1+1", "target": "2"}]})
components = st.sampled_from(["bigbench", "benchmark_tasks", "task.json", "", ".", "..", "x", "OUTSIDE", "a\\b"])
members = st.lists(st.tuples(
    st.sampled_from(["", "/", "BIG-bench-main/", "bigbench/benchmark_tasks/"]),
    st.lists(components, min_size=1, max_size=6).map("/".join),
    st.sampled_from(["file", "file", "symlink", "hardlink", "dir", "fifo"]),
    st.sampled_from([TASK_JSON, "{nope", "", "[]"]),
    st.sampled_from(["OUTSIDE", "../../..", "/etc/passwd", "x", "bigbench/benchmark_tasks/x/task.json"])),
    min_size=1, max_size=6)


@given(entries=members, cut=st.one_of(st.none(), st.integers(0, 600)))
def test_fuzz_archive_extractor(project, tmp_path_factory, entries, cut):
    """``bigbench fetch --source`` on hostile archives (absolute and ``..`` names, empty components, links,
    FIFOs, truncated streams): no traceback, one line or a result, and nothing written outside the cache."""
    import tarfile

    work = tmp_path_factory.mktemp("archive")
    outside = work / "outside"
    outside.mkdir()
    archive = work / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for prefix, name, kind, text, link in entries:
            info = tarfile.TarInfo(prefix + name.replace("OUTSIDE", str(outside).lstrip("/")))
            data = text.encode()
            info.type = {"file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "dir": tarfile.DIRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = link.replace("OUTSIDE", str(outside))
            info.size = len(data) if kind == "file" else 0
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    if cut is not None:
        archive.write_bytes(archive.read_bytes()[:cut])
    before = os.environ.get("HARNESS_CACHE")
    os.environ["HARNESS_CACHE"] = str(work / "cache")
    try:
        attempt(project, {}, ["bigbench", "fetch", "--source", str(archive)])
    finally:
        os.environ.pop("HARNESS_CACHE")
        if before is not None:
            os.environ["HARNESS_CACHE"] = before
    assert not list(outside.iterdir())
    assert {p.name for p in work.iterdir()} <= {"a.tar.gz", "outside", "cache"}
    for f in (work / "cache").rglob("*") if (work / "cache").exists() else []:
        assert f.resolve().is_relative_to((work / "cache").resolve()) and not f.is_symlink()


def test_fuzz_helpers_are_sound():
    """The CSV writer round-trips a clean table (so fuzz failures are the harness's, not the test's)."""
    import pandas as pd

    df = pd.read_csv(io.StringIO(csv([CURVE, {**CURVE, "model": "m2"}])))
    assert df["model"].tolist() == ["m", "m2"] and math.isclose(df["value"][0], 0.5)
