import pytest

from bench.errors import UserError
from rerankers.registry import describe, get_reranker, resolve


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
