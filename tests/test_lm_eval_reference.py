"""Same local model, same local JSON data: per-choice log-likelihoods, acc and acc_norm equal lm-eval's."""

import json

import numpy as np
import pytest

from harness.models.causal import CausalBackend
from harness.models.suite import ModelSpec
from harness.scoring import evaluate
from harness.tasks import load_task_file, prepare
from harness.tasks.generators import generate

OURS = """
name: ref_mc
dataset: {path: data.jsonl}
prompt: "Question: What is {{a}} plus {{b}}?\\nAnswer:"
choices: "{{options}}"
answer: "{{label}}"
output: multiple_choice
metrics: [acc, acc_norm]
"""

THEIRS = """
task: ref_mc_lm_eval
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: What is {{{{a}}}} plus {{{{b}}}}?\\nAnswer:"
doc_to_choice: "{{{{options}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
  - {{metric: acc_norm, aggregation: mean, higher_is_better: true}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_matches_lm_eval(tmp_path, tiny_models, arch, monkeypatch):
    import lm_eval  # the 'reference' extra: pip install -e ".[test,reference]"
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    rows = generate("arithmetic", "test", {"digits": 2, "n": 40, "choices": 4, "seed": 5})
    for i, r in enumerate(rows):  # mix in multi-token choices of different lengths
        r["options"] = [o + (" apples" * (i % 3) if j % 2 else "") for j, o in enumerate(r["options"])]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "ours.yaml").write_text(OURS)
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "ref.yaml").write_text(THEIRS.format(data=data))

    (task,) = load_task_file(tmp_path / "ours.yaml")
    backend = CausalBackend(ModelSpec(model=str(tiny_models[arch])), device="cpu", batch_size=16)
    records = evaluate(backend, prepare(task))
    backend.close()

    lm = HFLM(pretrained=str(tiny_models[arch]), device="cpu", batch_size=16, dtype="float32")
    tm = TaskManager(include_path=str(tmp_path / "theirs"), include_defaults=False)
    out = lm_eval.simple_evaluate(model=lm, tasks=["ref_mc_lm_eval"], task_manager=tm, log_samples=True)
    res = out["results"]["ref_mc_lm_eval"]
    samples = sorted(out["samples"]["ref_mc_lm_eval"], key=lambda s: s["doc_id"])

    theirs = np.array([[float(r[0]) for r in s["filtered_resps"]] for s in samples])
    ours = np.array([r["logprobs"] for r in records])
    assert theirs.shape == ours.shape == (40, 4)
    assert np.abs(theirs - ours).max() <= 1e-4
    assert np.mean([r["metrics"]["acc"] for r in records]) == res["acc,none"]
    assert np.mean([r["metrics"]["acc_norm"] for r in records]) == res["acc_norm,none"]
