"""Output types: each is one class in ``harness.outputs``; a new one needs nothing beyond its class and metrics."""

import json

import pytest

from harness import metrics as M
from harness.cli import main
from harness.errors import HarnessError
from harness.outputs import OUTPUTS, BaseRecord, Output, output_type, parse_records
from harness.store import RunStore
from harness.testing import write_config, write_jsonl


class LastWordRecord(BaseRecord):
    logprob: float
    n_tokens: int


class LastWord(Output):
    """The log-prob of a text's last word given the words before it (a LAMBADA-like output without a target)."""

    name = "last_word"
    record = LastWordRecord
    continuation = False

    def evaluate(self, backend, instances, spec):
        pairs = [tuple(i.context.rsplit(" ", 1)) for i in instances]
        results = backend.loglikelihood([(head, " " + word) for head, word in pairs])
        return [LastWordRecord(doc_id=i.doc_id, doc_hash=i.doc_hash, logprob=r.logprob, n_tokens=r.n_tokens,
                               metrics={}) for i, r in zip(instances, results)]


@pytest.fixture
def last_word(monkeypatch):
    """The class registered (and its metric), for this test only."""
    monkeypatch.setitem(OUTPUTS, LastWord.name, LastWord())
    monkeypatch.setitem(M.METRICS, "last_word_logprob",
                        M.Metric("last_word_logprob", ("last_word",), lambda r, _: r["logprob"], "continuous"))


def test_a_new_output_type_is_one_class(workdir, tiny_llama, last_word):
    """Registered, the class is all a task with ``output: last_word`` needs: validation (its metrics), rendering
    (no continuation), scoring, the results folder and the records read back as its type."""
    write_jsonl(workdir / "tasks" / "lw.jsonl", [{"text": f"the number {i} is small"} for i in range(6)])
    (workdir / "tasks" / "lw.yaml").write_text("name: lw\ndataset: {path: lw.jsonl}\nprompt: '{{text}}'\n"
                                               "output: last_word\nmetrics: [last_word_logprob]\n")
    assert output_type("last_word").allowed_metrics() == ["last_word_logprob"]
    assert main(["run", str(write_config(workdir, [tiny_llama], ["lw"]))]) == 0
    store = RunStore(workdir / "results" / "t")
    (model,) = [p.name for p in (store.root / "models").iterdir()]
    records = store.records(model, "lw")
    assert len(records) == 6 and all(r["logprob"] < 0 and r["metrics"]["last_word_logprob"] == r["logprob"]
                                     for r in records)
    summary = json.loads((store.root / "models" / model / "lw.json").read_text())
    assert summary["output"] == "last_word" and summary["scores"]["last_word_logprob"]["n"] == 6
    (workdir / "tasks" / "bad.yaml").write_text("name: bad\ndataset: {path: lw.jsonl}\nprompt: '{{text}}'\n"
                                                "output: last_word\nmetrics: [acc]\n")
    from harness.tasks import load_task_file

    with pytest.raises(HarnessError, match=r"metric 'acc' is not defined for output 'last_word' \(use: last_word_logprob\)"):
        load_task_file(workdir / "tasks" / "bad.yaml")


def test_an_unknown_output_type_names_the_registered_ones(tmp_path):
    from harness.tasks import load_task_file

    (tmp_path / "t.yaml").write_text("name: t\ndataset: {path: d.jsonl}\nprompt: x\noutput: ranking\nmetrics: [acc]\n")
    with pytest.raises(HarnessError, match=r"output: unknown output type 'ranking' \(known: generate, loglikelihood, "
                                           r"multiple_choice, perplexity\)"):
        load_task_file(tmp_path / "t.yaml")


def test_records_of_each_type_parse_back_unchanged():
    """Reading back keeps every field (a field of another version too) and refuses a wrong type."""
    rec = {"doc_id": 0, "doc_hash": "h", "metrics": {"acc": 1.0}, "prompt": "p", "choices": ["a", "b"], "gold": 1,
           "logprobs": [-1.5, -0.5], "n_tokens": [1, 1], "is_greedy": [False, True], "n_bytes": [1, 1],
           "from_a_later_version": 3}
    assert output_type("multiple_choice").parse([rec]) == [rec]
    with pytest.raises(ValueError):
        output_type("multiple_choice").parse([{**rec, "gold": "b"}])
    older = {k: v for k, v in rec.items() if k != "n_bytes"}  # a field an older version did not write yet
    assert parse_records("multiple_choice", [older]) == [older]
    with pytest.raises(ValueError, match=r"row 0.gold: Input should be a valid integer"):
        parse_records("multiple_choice", [{**older, "gold": "b"}])
