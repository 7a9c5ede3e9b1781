import pytest

from bench.errors import UserError
from rerankers.registry import describe, get_reranker, resolve, weights_fingerprint


def test_unknown_reranker_lists_registered_names():
    with pytest.raises(UserError) as err:
        resolve("monot6")
    msg = str(err.value)
    assert "unknown reranker 'monot6'" in msg and "none" in msg and "oracle" in msg


def test_no_substring_dispatch():
    with pytest.raises(UserError):
        resolve("my-oracle")


def test_list_shows_every_backend_once():
    rows = describe()
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names))
    assert {"none", "random", "oracle", "minilm"} <= set(names)


def test_factory_sets_the_requested_name():
    assert get_reranker("none").name == "none"


def test_weights_fingerprint_follows_a_local_checkpoints_content(tmp_path):
    """Known without loading the model: a local folder by content (retrained in place -> new fingerprint), a hub
    id as itself, the shipped RRPO checkpoint by its folder's content, nothing for the label-free baselines."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights-v1")
    before = weights_fingerprint("monot5", str(folder))
    assert before == weights_fingerprint("monot5", str(folder)) and before != str(folder)
    (folder / "model.safetensors").write_bytes(b"weights-v2")
    assert weights_fingerprint("monot5", str(folder)) != before
    assert weights_fingerprint("monot5") == "castorini/monot5-base-msmarco-10k"
    shipped = weights_fingerprint("rrpo")
    assert shipped not in (None, "minilm-fictional") and len(shipped) == 16
    assert weights_fingerprint("none") is None and weights_fingerprint("oracle") is None


def test_every_registered_extra_is_checked_before_loading():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")       # Python 3.11+

    from bench.errors import EXTRA_MODULES
    from rerankers.registry import RERANKERS

    extras = {resolve(name).extra for name in RERANKERS.names()} - {None}
    declared = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert extras <= set(EXTRA_MODULES) <= set(declared)
