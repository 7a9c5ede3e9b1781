import pytest

from bench.errors import UserError
from rerankers.registry import describe, get_reranker, resolve, weights_fingerprint


def test_unknown_reranker_lists_registered_names():
    with pytest.raises(UserError) as err:
        resolve("monot6")
    msg = str(err.value)
    assert "unknown reranker 'monot6'" in msg and "none" in msg and "oracle" in msg


@pytest.mark.parametrize("alias", ["dl19", "trec-dl19"])
def test_trec_dl_short_names_are_aliases_of_the_pyserini_names(alias):
    from bench.data import DATASETS
    from bench.data.catalog import entry_of

    assert DATASETS.entry(alias).name == "dl19-passage" and entry_of(alias).name == "dl19-passage"
    assert {DATASETS.entry(f"{p}dl{n}").name for p in ("", "trec-") for n in (20, 21, 22)} == \
        {"dl20-passage", "dl21-passage", "dl22-passage"}


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
    monot5 = resolve("monot5-base")          # by an alias: the spec is the registered name's
    assert (monot5.name, monot5.backend().__name__) == ("monot5", "MonoT5")
    before = weights_fingerprint(monot5, str(folder))
    assert before == weights_fingerprint(monot5, str(folder)) and before != str(folder)
    (folder / "model.safetensors").write_bytes(b"weights-v2")
    assert weights_fingerprint(monot5, str(folder)) != before
    assert weights_fingerprint(monot5) == "castorini/monot5-base-msmarco-10k"
    shipped = weights_fingerprint(resolve("rrpo"))
    assert shipped not in (None, "minilm-fictional") and len(shipped) == 16
    assert weights_fingerprint(resolve("none")) is None and weights_fingerprint(resolve("oracle")) is None


def test_every_registered_extra_is_checked_before_loading():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")       # Python 3.11+

    from bench.errors import EXTRA_MODULES
    from rerankers.registry import RERANKERS

    extras = {resolve(name).extra for name in RERANKERS.names()} - {None}
    declared = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert extras <= set(EXTRA_MODULES) <= set(declared)


def test_registry_exact_names_aliases_lazy_loading_and_base_check(tmp_path, monkeypatch):
    """The one mechanism behind every kind: an alias resolves to its entry, a prefix or substring never does, a
    "module:attr" entry is imported only when loaded, and what it loads must be of the kind's base."""
    import sys

    from bench.registry import Registry

    (tmp_path / "rb_lazy_backend.py").write_text("class Good(int):\n    pass\n\nclass Bad:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("widget", base=int)
    registry.add("good", "rb_lazy_backend:Good", aliases=("fine",), colour="blue")
    registry.add("bad", "rb_lazy_backend:Bad")
    assert registry.names() == ["bad", "fine", "good"] and registry.meta("fine") == {"colour": "blue"}
    assert "rb_lazy_backend" not in sys.modules                      # listed and described without importing
    assert registry.load("fine") is registry.load("good") and "rb_lazy_backend" in sys.modules
    with pytest.raises(UserError, match=r"^widget 'bad' \(built-in\): 'rb_lazy_backend:Bad' is not a builtins.int$"):
        registry.load("bad")
    for wrong in ("goo", "goods", "GOOD"):       # a hint, never a lookup by likeness
        with pytest.raises(UserError, match=rf"^unknown widget '{wrong}'; did you mean 'good'\? registered: bad, fine, "
                                            rf"good$"):
            registry.entry(wrong)
    with pytest.raises(UserError, match=r"^unknown widget 'fin'; did you mean 'fine'\? registered: "):
        registry.entry("fin")                 # an alias is suggested too
    registry.add("goods2", "rb_lazy_backend:Good")
    with pytest.raises(UserError, match=r"^unknown widget 'goode'; did you mean 'good' or 'goods2'\? registered: "):
        registry.entry("goode")
    registry.remove("goods2")
    with pytest.raises(UserError, match=r"^unknown widget 'xyz'; registered: bad, fine, good$"):
        registry.entry("xyz")
    with pytest.raises(ValueError, match="widget name 'fine' registered twice"):
        registry.add("fine", "rb_lazy_backend:Good")
    assert registry.group == "rerank_bench.widgets"


def test_listing_rerankers_imports_no_backend():
    import subprocess
    import sys

    code = ("import sys; from rerankers.registry import describe; describe(); "
            "print(sorted(m for m in sys.modules if m.startswith(('torch', 'transformers', 'rerankers.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # rerankers.cascade parses cascade specs (no model code)
    assert out.strip() == "['rerankers.base', 'rerankers.cascade', 'rerankers.registry']"
