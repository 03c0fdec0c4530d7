"""Checkpoint suites: revisions expanded into one entry per checkpoint with step and tokens; a hub model's weights
identified by the file hashes (here: those of the local Hugging Face cache), so two revisions serving the same
files are recognised."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.models.hub import hub_weights_hash
from harness.models.suite import ModelSpec, expand_checkpoints


def test_revisions_expand_into_checkpoints_with_step_and_tokens():
    suite = expand_checkpoints([ModelSpec(model="EleutherAI/pythia-410m", revisions=["step1000", "step8000", "step143000"],
                                          tokens_per_step=2097152), ModelSpec(model="./ckpt/step7", step=7,
                                                                              tokens_per_step=10.0)])
    assert [s.name for s in suite] == ["EleutherAI__pythia-410m@step1000", "EleutherAI__pythia-410m@step8000",
                                       "EleutherAI__pythia-410m@step143000", "step7"]
    assert [s.step for s in suite] == [1000, 8000, 143000, 7]
    assert [s.tokens for s in suite] == [1000 * 2097152, 8000 * 2097152, 143000 * 2097152, 70.0]
    with pytest.raises(HarnessError, match="revision 'main' names no step"):
        expand_checkpoints([ModelSpec(model="org/m", revisions=["step1", "main"], tokens_per_step=1.0)])
    with pytest.raises(HarnessError, match="revision or revisions, not both"):
        expand_checkpoints([ModelSpec(model="org/m", revision="a", revisions=["b"])])


def test_identical_hub_checkpoints_share_a_weights_hash(tmp_path, monkeypatch):
    """A cache laid out as huggingface_hub lays it out: refs/<branch> → commit, snapshots/<commit>/file → blob named
    by its sha256. Branches step1 and step2 serve the same blob (as 86 of Pythia's 154 did for one size)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--org--m"
    (repo / "blobs").mkdir(parents=True)
    for blob in ("a" * 64, "b" * 64):
        (repo / "blobs" / blob).write_text(blob)
    for branch, commit, blob in (("step1", "1" * 40, "a" * 64), ("step2", "2" * 40, "a" * 64),
                                 ("step3", "3" * 40, "b" * 64)):
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / branch).write_text(commit)
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "model.safetensors").symlink_to(f"../../blobs/{blob}")
    hashes = {b: hub_weights_hash(ModelSpec(model="org/m", revision=b)) for b in ("step1", "step2", "step3")}
    assert hashes["step1"] == hashes["step2"] != hashes["step3"]
    assert hub_weights_hash(ModelSpec(model="org/absent", revision="x")) != hashes["step3"]  # id and revision
