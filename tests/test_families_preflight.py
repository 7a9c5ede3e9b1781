"""Pre-flight of the late-interaction, FiD-listwise and first-token listwise rerankers: weights neither local nor in
the hub cache, offline, stop the run in one line naming the checkpoint and how to get it (the message every
checkpoint-backed reranker gives, ``bench.environment.check_weights_available``), before anything loads."""
from __future__ import annotations

import pytest

from bench.errors import UserError
from rerankers.registry import RERANKERS, RerankerSettings, resolve


@pytest.mark.parametrize("name", ["colbertv2", "answerai-colbert-small", "first", "lit5-distill"])
def test_missing_weights_offline_are_refused_in_one_line(name, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    checkpoint = resolve(name).checkpoint
    with pytest.raises(UserError) as err:
        RERANKERS.load(name).preflight(name, checkpoint, RerankerSettings())
    assert str(err.value) == (
        f"reranker {name!r}: checkpoint {checkpoint!r} is not on this machine and HF_HUB_OFFLINE is set; download it "
        f"where the hub is reachable (`hf download {checkpoint}`, then copy the hub cache), or pass a local folder "
        f"with --checkpoint {name}=FOLDER")
