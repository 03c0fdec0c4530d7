"""End to end through the CLI: results layout, resume, keys, failures, and bad configs."""

import csv
import json
import os
from pathlib import Path

import pytest

from harness.cli import main
from harness.runner.progress import Reporter
from harness.testing import build_tiny_model, write_config


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.suffix in (".jsonl", ".csv")}


def scores(out: Path) -> list[dict]:
    return list(csv.DictReader(open(out / "scores.csv")))


def test_run_writes_layout_and_resume_is_identical(workdir, tiny_models, capsys):
    cfg = write_config(workdir, [tiny_models["llama"], tiny_models["gpt2"]], ["toy_mc", "toy_add"], batch_size=3)
    assert main(["run", str(cfg)]) == 0
    out = workdir / "results" / "t"
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["label"] for m in manifest["models"]] == ["llama", "gpt2"]
    assert {t["name"] for t in manifest["tasks"]} == {"toy_mc", "toy_add"} and manifest["packages"]["torch"]
    rows = scores(out)
    assert len(rows) == 2 * (6 + 5)
    assert set(rows[0]) >= {"model", "params", "nonembedding_params", "task", "metric", "value", "stderr", "n"}
    assert {r["chance"] for r in rows if r["metric"] == "acc"} == {"0.25"}
    recs = [json.loads(l) for l in (out / "models" / "llama" / "toy_mc.jsonl").read_text().splitlines()]
    assert len(recs) == 8 and len(recs[0]["logprobs"]) == 4 and "acc" in recs[0]["metrics"]
    before = files(out)
    capsys.readouterr()
    assert main(["run", str(cfg), "--batch-size", "1"]) == 0  # batch size is not part of the key
    assert "0 computed, 4 reused" in capsys.readouterr().out
    assert files(out) == before
    assert not list(out.rglob(".tmp-*"))


def test_results_read_back_as_their_types(workdir, tiny_models):
    """The manifest and each pair's records are parsed into their types when read back; a damaged field is
    named in one line (file, row, field), not met later as a KeyError."""
    from harness.errors import HarnessError
    from harness.store import Manifest, RunStore

    cfg = write_config(workdir, [tiny_models["llama"]], ["toy_mc", "toy_add"], batch_size=3)
    assert main(["run", str(cfg)]) == 0
    store = RunStore(workdir / "results" / "t")
    manifest = store.manifest()
    assert isinstance(manifest, Manifest) and {t.name: t.output for t in manifest.tasks} == {
        "toy_mc": "multiple_choice", "toy_add": "generate"}
    mc, gen = store.records("llama", "toy_mc"), store.records("llama", "toy_add")
    assert all(isinstance(r["logprobs"][0], float) and isinstance(r["gold"], int) for r in mc)
    assert all(isinstance(r["generation"], str) and r["generation_ids"] is not None for r in gen)  # type: ignore[typeddict-item]
    path = workdir / "results" / "t" / "models" / "llama" / "toy_mc.jsonl"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[2])
    broken["logprobs"] = "high"
    path.write_text("\n".join(lines[:2] + [json.dumps(broken)] + lines[3:]) + "\n")
    with pytest.raises(HarnessError, match=r"toy_mc.jsonl: a record does not parse \(row 2.logprobs: "):
        store.records("llama", "toy_mc")
    (store.root / "manifest.json").write_text(json.dumps({**manifest.model_dump(), "tasks": [{"n": 3}]}))
    with pytest.raises(HarnessError, match=r"manifest.json: tasks.0.name: Field required"):
        store.manifest()


def test_changing_a_key_part_recomputes_only_that_pair(workdir, tiny_models, capsys):
    cfg = write_config(workdir, [tiny_models["llama"]], ["toy_mc", "toy_add"])
    assert main(["run", str(cfg)]) == 0
    task = workdir / "tasks" / "add.yaml"
    task.write_text(task.read_text().replace("seed: 7", "seed: 8"))  # few-shot seed
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 0
    assert "1 computed, 1 reused" in capsys.readouterr().out
    assert main(["run", str(cfg), "--dtype", "bfloat16"]) == 0
    assert "2 computed, 0 reused" in capsys.readouterr().out
    assert main(["run", str(cfg), "--limit", "3"]) == 0  # fewer documents: different prompts
    assert "2 computed" in capsys.readouterr().out


def test_local_weights_change_recomputes(workdir, tmp_path, capsys):
    model = build_tiny_model(tmp_path / "m", "llama", seed=0)
    cfg = write_config(workdir, [model], ["toy_mc"])
    assert main(["run", str(cfg)]) == 0
    build_tiny_model(model, "llama", seed=1)  # same path, new weights
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 0
    assert "1 computed, 0 reused" in capsys.readouterr().out


def test_group_rows_macro_and_micro(workdir, tiny_llama):
    (workdir / "tasks" / "grp.yaml").write_text("""
name: arith
prompt: "{{a}}{{op}}{{b}}="
target: "{{answer}}"
output: generate
generation: {until: ["\\n"], max_new_tokens: 4}
metrics: [exact_match, target_logprob]
dataset: {generator: arithmetic, args: {n: 6}}
subtasks:
  - {name: arith_add, dataset: {args: {op: "+"}}}
  - {name: arith_sub, dataset: {args: {op: "-", n: 10}}}
""")
    cfg = write_config(workdir, [tiny_llama], ["arith"])
    assert main(["run", str(cfg)]) == 0
    rows = scores(workdir / "results" / "t")
    tl = {(r["task"], r["aggregate"]): r for r in rows if r["metric"] == "target_logprob"}
    add, sub = float(tl[("arith_add", "")]["value"]), float(tl[("arith_sub", "")]["value"])
    assert float(tl[("arith", "macro")]["value"]) == pytest.approx((add + sub) / 2)
    assert float(tl[("arith", "micro")]["value"]) == pytest.approx((6 * add + 10 * sub) / 16)
    assert tl[("arith", "micro")]["n"] == "16"


def test_failing_model_keeps_other_results_and_exits_nonzero(workdir, tiny_llama, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    cfg = write_config(workdir, [broken, tiny_llama], ["toy_mc"])
    assert main(["run", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "could not load model" in err
    rows = scores(workdir / "results" / "t")
    assert {r["model"] for r in rows} == {"tiny_llama"} or {r["model"] for r in rows} == {"llama"}
    assert main(["run", str(cfg), "--fail-fast"]) == 2


@pytest.mark.parametrize("change,fragment", [
    ({"suite": [{"model": "./does/not/exist"}]}, "suite.0.model: model path does not exist"),
    ({"tasks": ["no_such_task"]}, "no task named 'no_such_task'"),
    ({"run": {"batch_size": "big"}}, "run.batch_size"),
    ({"colour": "blue"}, "colour: unknown field"),
    ({"suite": []}, "suite"),
    ({"run": {"batchsize": 3}}, "run.batchsize: unknown field; did you mean 'batch_size'"),
    ({"tasks": ["toy_m"]}, "did you mean 'toy_mc'"),
    ({"run": {"device": "banana"}}, "run.device: unknown device 'banana'"),
    ({"run": {"device": "cuda"}}, "run.device: device 'cuda': CUDA is not available"),
])
def test_bad_config_writes_nothing(workdir, tiny_llama, capsys, change, fragment):
    import yaml

    cfg = write_config(workdir, [tiny_llama], ["toy_mc"])
    raw = yaml.safe_load(cfg.read_text())
    raw.update(change)
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and str(cfg) in err or fragment in err
    assert not (workdir / "results").exists()


def test_bad_task_leaves_earlier_results_untouched(workdir, tiny_llama):
    cfg = write_config(workdir, [tiny_llama], ["toy_mc"])
    assert main(["run", str(cfg)]) == 0
    before = files(workdir / "results")
    (workdir / "tasks" / "mc.yaml").write_text((workdir / "tasks" / "mc.yaml").read_text().replace("acc_norm", "acc_nrm"))
    assert main(["run", str(cfg)]) == 2
    assert files(workdir / "results") == before


def test_unwritable_output_fails_before_running(workdir, tiny_llama, capsys):
    if os.geteuid() == 0:
        target = "/proc/harness-results"  # not creatable even by root
    else:
        (workdir / "ro").mkdir(mode=0o500)
        target = str(workdir / "ro" / "out")
    cfg = write_config(workdir, [tiny_llama], ["toy_mc"])
    assert main(["run", str(cfg), "--output", target]) == 2
    assert "not writable" in capsys.readouterr().err


def test_tasks_commands(workdir, capsys):
    assert main(["tasks", "list"]) == 0
    assert "toy_mc" in capsys.readouterr().out
    assert main(["tasks", "validate"]) == 0
    assert main(["tasks", "show", "toy_mc", "--n", "2"]) == 0
    shown = capsys.readouterr().out
    assert "markers ---\nQuestion: What is 1 + 2?\nAnswer:\n--- end" in shown and "choice 0 (gold): ' 3'" in shown
    (workdir / "tasks" / "bad.yaml").write_text("name: bad\nprompt: [\n")
    assert main(["tasks", "validate"]) == 1


def test_disk_full_keeps_earlier_results(workdir, tiny_llama, monkeypatch, capsys):
    import errno

    import harness.store as store

    cfg = write_config(workdir, [tiny_llama], ["toy_mc"])
    assert main(["run", str(cfg)]) == 0
    before = files(workdir / "results")
    real = store.atomic_write

    def full(path, data):
        if path.suffix == ".jsonl":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(store, "atomic_write", full)
    (workdir / "tasks" / "add.yaml").write_text((workdir / "tasks" / "add.yaml").read_text())
    cfg = write_config(workdir, [tiny_llama], ["toy_mc", "toy_add"])
    assert main(["run", str(cfg), "--fail-fast"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and len(err.strip().splitlines()) >= 1
    assert files(workdir / "results") == before and not list((workdir / "results").rglob(".tmp-*"))


def test_perplexity_and_loglikelihood_tasks_end_to_end(workdir, tiny_llama):
    (workdir / "tasks" / "text.jsonl").write_text('{"text": "the cat sat on the mat"}\n{"text": "a red dog is blue"}\n')
    (workdir / "tasks" / "ppl.yaml").write_text(
        "name: toy_ppl\ndataset: {path: text.jsonl}\nprompt: '{{text}}'\noutput: perplexity\n"
        "perplexity: {window: 4, stride: 2}\nmetrics: [bits_per_byte, token_perplexity, word_perplexity]\n")
    (workdir / "tasks" / "ll.yaml").write_text(
        "name: toy_ll\ndataset: {path: text.jsonl}\nprompt: 'the'\ntarget: '{{text[4:]}}'\noutput: loglikelihood\n"
        "metrics: [target_logprob, is_greedy]\n")
    cfg = write_config(workdir, [tiny_llama], ["toy_ppl", "toy_ll"])
    assert main(["run", str(cfg)]) == 0
    rows = {(r["task"], r["metric"]): float(r["value"]) for r in scores(workdir / "results" / "t")}
    assert rows[("toy_ppl", "bits_per_byte")] > 0 and rows[("toy_ppl", "token_perplexity")] > 1
    assert rows[("toy_ll", "target_logprob")] < 0 and rows[("toy_ll", "is_greedy")] in (0.0, 0.5, 1.0)


def test_crash_mid_task_keeps_going_and_reports(workdir, tiny_models):
    from harness.config import load_config
    from harness.models.causal import CausalBackend
    from harness.runner import run

    class Crashing(CausalBackend):
        def generate(self, requests):
            raise RuntimeError("CUDA error: device-side assert (injected)")

    def factory(spec, **kw):
        return (Crashing if spec.name == "gpt2" else CausalBackend)(spec, **kw)

    cfg = write_config(workdir, [tiny_models["gpt2"], tiny_models["llama"]], ["toy_mc", "toy_add"])
    result = run(load_config(cfg), backend_factory=factory)
    assert [(f.model, f.task) for f in result.failures] == [("gpt2", "toy_add")]
    pairs = {(r["model"], r["task"]) for r in result.rows}
    assert pairs == {("gpt2", "toy_mc"), ("llama", "toy_mc"), ("llama", "toy_add")}
    again = run(load_config(cfg))  # the rerun computes only what failed
    assert again.computed == 1 and not again.failures


def test_chance_is_the_majority_class_for_fixed_labels(workdir):
    from harness.scoring import chance_levels
    from harness.tasks import load_task_file, prepare
    from harness.testing import write_jsonl

    write_jsonl(workdir / "tasks" / "yn.jsonl", [{"q": f"q{i}", "a": int(i % 4 == 0)} for i in range(8)])
    path = workdir / "tasks" / "yn.yaml"
    path.write_text("name: yn\ndataset: {path: yn.jsonl}\nprompt: '{{q}}'\nchoices: ['no', 'yes']\nanswer: '{{a}}'\n"
                    "output: multiple_choice\nmetrics: [acc, p_correct]\n")
    def chance(task):  # the records any model writes for these documents (chance does not read the log-probs)
        p = prepare(task)
        return chance_levels(p, [{"doc_id": i.doc_id, "choices": list(i.choices), "gold": i.gold,
                                  "logprobs": [0.0] * len(i.choices)} for i in p.instances])

    (task,) = load_task_file(path)
    assert chance(task) == {"acc": 0.75, "p_correct": 0.5}  # 6 of 8 answers are "no"
    (mc,) = load_task_file(workdir / "tasks" / "mc.yaml")
    assert chance(mc)["acc"] == 0.25  # choices differ per document: 1/4


def test_text_the_tokenizer_cannot_represent_is_reported(workdir, tmp_path, capsys):
    digits = build_tiny_model(tmp_path / "digits", "llama", chars="0123456789+=")  # the toy ladder's kind
    (workdir / "tasks" / "sum.yaml").write_text(
        "name: sum\ndataset: {generator: arithmetic, args: {digits: 1, n: 6, seed: 1}}\nprompt: '{{a}}+{{b}}='\n"
        "target: '{{answer}}'\ntarget_delimiter: ''\noutput: generate\ngeneration: {until: ['\\n'], max_new_tokens: 3}\n"
        "metrics: [exact_match]\n")
    cfg = write_config(workdir, [digits], ["toy_mc", "sum"])
    assert main(["run", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert "WARNING digits / toy_mc: 8 of 8 documents (100%) contain text the tokenizer maps to unknown" in err
    assert "WARNING digits / sum" not in err  # digits only: nothing lost
    summary = json.loads((workdir / "results" / "t" / "models" / "digits" / "toy_mc.json").read_text())
    assert summary["notes"] and "notes" not in json.loads(
        (workdir / "results" / "t" / "models" / "digits" / "sum.json").read_text())


def test_hub_model_without_network_fails_in_seconds(workdir, monkeypatch, capsys):
    import time

    from harness.files import hub_reachable

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: like a machine offline
    monkeypatch.setenv("HF_HOME", str(workdir / "hf"))  # an empty hub cache
    hub_reachable.cache_clear()
    cfg = workdir / "hub.yaml"
    cfg.write_text("name: hub\nsuite: [{model: EleutherAI/pythia-70m}]\ntasks: [toy_mc]\nrun: {device: cpu}\n")
    t0 = time.perf_counter()
    try:
        assert main(["run", str(cfg)]) == 1
    finally:
        hub_reachable.cache_clear()
    assert time.perf_counter() - t0 < 30
    err = capsys.readouterr().err
    assert "EleutherAI/pythia-70m: not in the local Hugging Face cache, and the hub cannot be reached" in err
    assert len([line for line in err.splitlines() if "FAILED" in line]) == 1


def test_only_this_harness_temporary_files_are_cleaned(workdir, tiny_models):
    """A killed run's temporary files (its process gone) are removed; a user's look-alikes (``.tmp-budget.csv.2024``
    names no file of ours), and those of a run still going (this process's parent), are kept."""
    import os

    from harness.store import MARKER

    out = workdir / "results" / "t"
    (out / "models" / "llama").mkdir(parents=True)
    (out / "notes").mkdir()
    (out / MARKER).write_text("{}")
    dead = 4194303  # above any pid Linux hands out by default
    ours = [out / f".tmp-scores.csv.{dead}", out / "models" / "llama" / f".tmp-toy_mc.jsonl.{dead}"]
    theirs = [out / "notes" / ".tmp-draft.txt", out / ".tmp-keep.me", out / "models" / "llama" / ".tmp-x.jsonl",
              out / ".tmp-budget.csv.2024", out / ".tmp-notes.json.7", out / f".tmp-scores.csv.{os.getppid()}"]
    for f in ours + theirs:
        f.write_text("x")
    cfg = write_config(workdir, [tiny_models["llama"]], ["toy_mc"])
    assert main(["run", str(cfg)]) == 0
    assert not any(f.exists() for f in ours) and all(f.exists() for f in theirs)


def test_labels_that_share_a_results_folder_are_refused(workdir, tiny_models, capsys):
    import yaml

    cfg = workdir / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "c", "tasks": ["toy_mc"], "suite": [
        {"model": str(tiny_models["llama"]), "label": "small model"},
        {"model": str(tiny_models["gpt2"]), "label": "small_model"}]}))
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "'small model' and 'small_model' would share the results folder 'small_model'" in err
    assert not (workdir / "results").exists()


def test_a_model_path_that_is_a_file_is_named_so(workdir, tiny_llama, capsys):
    f = workdir / "model.bin"
    f.write_text("x")
    cfg = write_config(workdir, [f], ["toy_mc"])
    assert main(["run", str(cfg)]) == 2
    assert "suite.0.model: model path is a file, not a model folder" in capsys.readouterr().err


def test_shots_do_not_depend_on_limit(workdir):
    from harness.tasks import load_task_file, prepare

    (task,) = load_task_file(workdir / "tasks" / "add.yaml")  # 2 shots from the same split, 12 documents
    full, limited = prepare(task).instances, prepare(task, limit=2).instances
    assert [i.context for i in limited] == [i.context for i in full[:2]]


def test_weights_replaced_with_same_size_and_mtime_are_rehashed(tmp_path):
    import os

    from harness.models.suite import ModelSpec, weights_hash

    model = build_tiny_model(tmp_path / "m", "llama", seed=0)
    other = build_tiny_model(tmp_path / "o", "llama", seed=1)
    spec, cache = ModelSpec(model=str(model)), tmp_path / "cache"
    before = weights_hash(spec, cache)
    st = (model / "model.safetensors").stat()
    (model / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())  # same size
    os.utime(model / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored
    assert weights_hash(spec, cache) != before


def test_compare_pairs_only_documents_that_are_the_same_row(workdir, tiny_models, capsys):
    """Reordered data: the same doc ids name other rows, so compare must not pair them (records carry doc hashes)."""
    import yaml

    from harness.analysis import compare, load_classified
    from harness.testing import MC_ROWS, write_jsonl

    cfg = write_config(workdir, list(tiny_models.values()), ["toy_mc"])
    assert main(["run", str(cfg), "--output", "results/a"]) == 0
    assert main(["run", str(cfg), "--output", "results/same"]) == 0
    write_jsonl(workdir / "tasks" / "mc.jsonl", MC_ROWS[::-1])
    assert main(["run", str(cfg), "--output", "results/b"]) == 0
    capsys.readouterr()
    a, b, same = (load_classified(workdir / "results" / n) for n in ("a", "b", "same"))
    paired = compare(a, same)
    assert not paired.mismatched and any(d.test.startswith("McNemar") for d in paired.differences)
    mixed = compare(a, b)
    assert set(mixed.mismatched.values()) == {len(MC_ROWS)}  # every id now names another row
    assert not any(d.test.startswith(("McNemar", "paired")) for d in mixed.differences if d.metric == "acc")
    assert main(["compare", "results/a", "results/b"]) == 0
    assert "name different rows in A and B" in capsys.readouterr().err
    recs = [yaml.safe_load(line) for line in (workdir / "results" / "a" / "models").rglob("toy_mc.jsonl").__next__()
            .read_text().splitlines()]
    assert all(len(r["doc_hash"]) == 16 for r in recs)


def test_batch_size_guarantees(workdir, tiny_llama, capsys):
    """Same settings: byte-identical files. Another batch size: log-likelihoods within 1e-4, and a rerun with
    another batch size reuses the stored pairs (the key leaves batch size out)."""
    cfg = write_config(workdir, [tiny_llama], ["toy_mc", "toy_add"])
    for out, bs in (("r1", "auto"), ("r2", "auto"), ("r3", "1")):
        assert main(["run", str(cfg), "--output", f"results/{out}", "--batch-size", bs]) == 0
    r1, r2, r3 = (files(workdir / "results" / n) for n in ("r1", "r2", "r3"))
    assert r1 == r2
    for name in r1:
        if name.endswith(".jsonl"):
            one = [json.loads(line) for line in r1[name].decode().splitlines()]
            other = [json.loads(line) for line in r3[name].decode().splitlines()]
            for x, y in zip(one, other):
                for key in ("logprobs", "target_logprob"):
                    if key in x:
                        xs, ys = (v if isinstance(v, list) else [v] for v in (x[key], y[key]))
                        assert max(abs(p - q) for p, q in zip(xs, ys)) <= 1e-4
    capsys.readouterr()
    assert main(["run", str(cfg), "--output", "results/r1", "--batch-size", "1"]) == 0
    assert "0 computed, 2 reused" in capsys.readouterr().out
    assert files(workdir / "results" / "r1") == r1


def test_data_paths_a_task_may_read(workdir, tiny_llama, tmp_path, monkeypatch, capsys):
    """Below the task's folder, a config's data_roots, or $HARNESS_DATA_PATH; nothing else."""
    import yaml

    from harness.testing import MC_ROWS, MC_TASK, write_jsonl

    shared = tmp_path / "shared"
    shared.mkdir()
    write_jsonl(shared / "mc.jsonl", MC_ROWS)
    (workdir / "tasks" / "far.yaml").write_text(MC_TASK.replace("toy_mc", "far").replace("mc.jsonl", str(shared / "mc.jsonl"))
                                                + "metrics: [acc]\n")
    cfg = write_config(workdir, [tiny_llama], ["far"])
    assert main(["run", str(cfg)]) == 2
    assert "outside the task's folder" in capsys.readouterr().err
    assert not (workdir / "results" / "t" / "scores.csv").exists()
    raw = yaml.safe_load(cfg.read_text())
    cfg.write_text(yaml.safe_dump({**raw, "data_roots": [os.path.relpath(shared, workdir)]}))
    assert main(["run", str(cfg)]) == 0
    cfg.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("HARNESS_DATA_PATH", str(shared))
    assert main(["tasks", "show", "far", "--n", "1"]) == 0


def test_max_new_tokens_beyond_the_context_fails_that_pair_only(workdir, tiny_models, capsys):
    """On gpt2 (learned positions: an IndexError once) and llama (the prompt silently cut to one token)."""
    (workdir / "tasks" / "long.yaml").write_text(
        "name: long_gen\ndataset: {generator: arithmetic, args: {n: 3}}\nprompt: '{{a}}+{{b}}='\ntarget: '{{answer}}'\n"
        "output: generate\ngeneration: {max_new_tokens: 256}\nmetrics: [exact_match]\n")
    cfg = write_config(workdir, [tiny_models["gpt2"], tiny_models["llama"]], ["long_gen", "toy_mc"])
    assert main(["run", str(cfg)]) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 2 and all("generation.max_new_tokens: max_new_tokens 256 leaves no room" in f and
                                    "long.yaml" in f for f in failed)
    assert {(r["model"], r["task"]) for r in scores(workdir / "results" / "t")} == {("gpt2", "toy_mc"), ("llama", "toy_mc")}


def test_an_output_regex_that_times_out_fails_its_task_only(workdir, tiny_models, monkeypatch):
    """The failure names the task file and field; the model's other tasks are scored."""
    from harness import extraction
    from harness.config import load_config
    from harness.runner import run

    (workdir / "tasks" / "rx.yaml").write_text(
        "name: toy_rx\ndataset: {generator: arithmetic, args: {digits: 1, n: 3}}\nprompt: '{{a}}+{{b}}='\n"
        "target: '{{answer}}'\noutput: generate\ngeneration: {max_new_tokens: 3, output_regex: '[0-9]+'}\n"
        "metrics: [exact_match]\n")
    monkeypatch.setattr(extraction, "REGEX_TIMEOUT_S", 1e-12)  # any regex now runs out of time
    cfg = write_config(workdir, [tiny_models["llama"]], ["toy_rx", "toy_mc"])
    result = run(load_config(cfg))
    ((failure),) = result.failures
    assert failure.task == "toy_rx" and "rx.yaml: generation.output_regex" in failure.error
    assert {r["task"] for r in result.rows} == {"toy_mc"}


class _Tied:
    """A backend whose every choice gets the same log-prob: a tie at the top on each document."""

    max_length = 256

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def loglikelihood(self, requests):
        from harness.models.backend import LogLikelihood

        return [LogLikelihood(-1.0, False, 1, (False,)) for _ in requests]


def test_ties_in_scoring_are_reported(workdir, tiny_models):
    from harness.config import load_config
    from harness.models.causal import CausalBackend
    from harness.runner import run

    cfg = write_config(workdir, [tiny_models["llama"]], ["toy_mc"])
    result = run(load_config(cfg), backend_factory=lambda spec, **kw: _Tied(CausalBackend(spec, **kw)))
    assert any("8 of 8 documents have an exact tie" in w for w in result.warnings), result.warnings


def test_trust_remote_code_is_said_in_the_log_and_the_manifest(workdir, tiny_models):
    import yaml

    from harness.config import load_config
    from harness.runner import run

    cfg = write_config(workdir, [tiny_models["llama"]], ["toy_mc"])
    raw = yaml.safe_load(cfg.read_text())
    raw["suite"][0]["trust_remote_code"] = True
    cfg.write_text(yaml.safe_dump(raw))

    class Log(Reporter):
        lines: list = []

        def log(self, message):
            self.lines.append(message)

    run(load_config(cfg), Log())
    assert any("trust_remote_code is on" in line and "llama" in line for line in Log.lines)
    manifest = json.loads((workdir / "results" / "t" / "manifest.json").read_text())
    assert manifest["trust_remote_code"] == ["llama"]


def test_a_damaged_summary_is_said_and_recomputed(workdir, tiny_models, capsys):
    cfg = write_config(workdir, [tiny_models["llama"]], ["toy_mc"])
    assert main(["run", str(cfg)]) == 0
    summary = workdir / "results" / "t" / "models" / "llama" / "toy_mc.json"
    summary.write_text(summary.read_text()[:40])
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 0
    printed = " ".join(capsys.readouterr().err.split())
    assert "toy_mc.json: unreadable or damaged" in printed and "recomputed" in printed
    assert json.loads(summary.read_text())["task"] == "toy_mc"


def test_the_engine_is_described_once_per_run(workdir, tiny_models):
    from harness.config import load_config
    from harness.runner import run

    class Log(Reporter):
        lines: list = []

        def log(self, message):
            self.lines.append(message)

    cfg = write_config(workdir, [tiny_models["llama"], tiny_models["neox"]], ["toy_mc"])
    run(load_config(cfg), Log())
    loaded = [line for line in Log.lines if line.startswith("loaded ")]
    assert len(loaded) == 2 and "packed" in loaded[0] and "packed" not in loaded[1]


def test_quantization_without_torchao_is_refused_before_computing(workdir, tiny_models, monkeypatch, capsys):
    import importlib.util

    import yaml

    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else find(name, *a))
    cfg = write_config(workdir, [tiny_models["llama"]], ["toy_mc"])
    raw = yaml.safe_load(cfg.read_text())
    raw["run"]["quantization"] = [None, {"bits": 8}]
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run.quantization: quantization needs torchao" in err
    assert not (workdir / "results").exists()


def test_a_suite_entry_family_is_recorded_and_keeps_curves_apart(workdir, tiny_models):
    import yaml

    from harness.analysis.results import curves, load_results
    from harness.config import load_config
    from harness.runner import run

    cfg = write_config(workdir, [tiny_models["llama"], tiny_models["neox"]], ["toy_mc"])
    raw = yaml.safe_load(cfg.read_text())
    raw["suite"][0]["family"], raw["suite"][1]["family"] = "fam-a", "fam-b"
    cfg.write_text(yaml.safe_dump(raw))
    run(load_config(cfg))
    rows = list(csv.DictReader((workdir / "results" / "t" / "scores.csv").open()))
    assert {(r["model"], r["family"]) for r in rows} == {("llama", "fam-a"), ("neox", "fam-b")}
    manifest = json.loads((workdir / "results" / "t" / "manifest.json").read_text())
    assert [m["family"] for m in manifest["models"]] == ["fam-a", "fam-b"]
    assert {c.task for c in curves(load_results(workdir / "results" / "t"))} == {"toy_mc@fam-a", "toy_mc@fam-b"}
    # without `family:` the family comes from the name's stem, else the config's model type; resume refreshes it
    raw["suite"][0].pop("family")
    raw["suite"][1] = {"model": str(tiny_models["neox"]), "label": "neox", "family": "fam-b"}
    cfg.write_text(yaml.safe_dump(raw))
    run(load_config(cfg))
    rows = list(csv.DictReader((workdir / "results" / "t" / "scores.csv").open()))
    assert {(r["model"], r["family"]) for r in rows} == {("llama", "llama"), ("neox", "fam-b")}


@pytest.mark.parametrize("model, model_type, family", [
    ("EleutherAI/pythia-1.4b-deduped", "gpt_neox", "pythia-deduped"), ("EleutherAI/pythia-70m", "gpt_neox", "pythia"),
    ("facebook/opt-125m", "opt", "opt"), ("bigscience/bloom-1b1", "bloom", "bloom"),
    ("Qwen/Qwen1.5-0.5B-Chat", "qwen2", "Qwen1.5-Chat"), ("meta-llama/Llama-3.2-1B", "llama", "Llama-3.2"),
    ("openai-community/gpt2-medium", "gpt2", "gpt2"), ("/data/ckpt/70m", "llama", "llama"), ("./my_model", "", ""),
])
def test_a_family_is_inferred_from_the_name_stem_else_the_model_type(model, model_type, family):
    from harness.models.suite import infer_family

    assert infer_family(model, model_type) == family
