"""ColBERT late interaction (rerankers/colbert.py) against two references.

1. ``colbert_reference`` re-types stanford-futuredata/ColBERT's own path (``colbert/modeling/tokenization/
   *_tokenization.py`` in its older form, ``colbert.py``), read through the code search: the text prefixed with ". "
   and the placeholder's id overwritten by the marker; the query padded to ``query_maxlen`` with the pad ids then set
   to ``[MASK]``; BERT, ``linear``, L2 normalisation; passage tokens in the skiplist (each ``string.punctuation``
   symbol's first token) or padding left out; max over passage tokens, summed over query tokens. Each pair runs alone,
   unbatched; the backend batches and pads passages of different lengths. Always runs.
2. PyLate itself (``test_scores_equal_pylates_own_reranking``). PyLate 1.6 pins sentence-transformers 5.3 and
   transformers <= 5.3 and does not install beside this project (beside sentence-transformers 6 it fails to load any
   checkpoint), so it runs in a subprocess whose path holds it with its pinned versions
   (``tests/reference_libraries.py``, ``RERANK_BENCH_REFERENCE_PATH``); skipped without it.
"""
from __future__ import annotations

import string

import pytest
import torch
from safetensors import safe_open

from bench.errors import UserError
from benchmarks import tiny_models
from rerankers.registry import RerankerSettings, get_reranker, resolve
from tests.reference_libraries import reference_output

QUERIES = ["what is the capital of france?", "which river, in the city?",
           "the city of paris and the river that is in it and the capital of a country that has a city on a river "
           "and more words than the query length holds"]
PASSAGES = ["paris is the capital, of france.", "a river in the city!", "the capital (of france) has a river.",
            "france is a country with a capital city and many rivers that run to the sea; " * 8]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("colbert")
    return {"stanford": str(tiny_models.colbert_stanford(root / "stanford")),
            "pylate": str(tiny_models.colbert_pylate(root / "pylate")),
            "pylate-tanh": str(tiny_models.colbert_pylate(root / "pylate-tanh", seed=1,
                                                          activation="torch.nn.modules.activation.Tanh"))}


def colbert(path, **kw):
    return get_reranker("colbertv2", RerankerSettings(checkpoint=path, device="cpu", dtype="float32", **kw))


def projection(path, layout):
    """The projection as each layout stores it, read straight from the files."""
    name = f"{path}/model.safetensors" if layout == "stanford" else f"{path}/1_Dense/model.safetensors"
    with safe_open(name, framework="pt") as f:
        return f.get_tensor("linear.weight"), (f.get_tensor("linear.bias") if "linear.bias" in f.keys() else None)


def colbert_reference(reranker, path, layout, query, passage):
    tok, bert = reranker.tokenizer, reranker.model["encoder"]
    weight, bias = projection(path, layout)
    activation = torch.tanh if layout == "pylate-tanh" else (lambda x: x)
    markers = ("[unused0]", "[unused1]") if layout == "stanford" else ("[Q] ", "[D] ")
    qlen, dlen = (32, 180) if layout == "stanford" else (24, 64)
    q = tok([". " + query], padding="max_length", truncation=True, max_length=qlen, return_tensors="pt")
    q_ids = q["input_ids"].clone()
    q_ids[:, 1] = tok.convert_tokens_to_ids(markers[0])
    q_ids[q_ids == tok.pad_token_id] = tok.mask_token_id
    d = tok([". " + passage], padding="longest", truncation="longest_first", max_length=dlen, return_tensors="pt")
    d_ids = d["input_ids"].clone()
    d_ids[:, 1] = tok.convert_tokens_to_ids(markers[1])
    skiplist = {tok.encode(symbol, add_special_tokens=False)[0] for symbol in string.punctuation}
    with torch.no_grad():
        Q = activation(torch.nn.functional.linear(bert(input_ids=q_ids, attention_mask=q["attention_mask"])[0],
                                                  weight, bias))
        D = activation(torch.nn.functional.linear(bert(input_ids=d_ids, attention_mask=d["attention_mask"])[0],
                                                  weight, bias))
    Q = torch.nn.functional.normalize(Q[0], p=2, dim=1)
    keep = torch.tensor([(x not in skiplist) and (x != tok.pad_token_id) for x in d_ids[0].tolist()])
    D = torch.nn.functional.normalize(D[0], p=2, dim=1)[keep]
    return (Q @ D.T).max(dim=1).values.sum().item()


@pytest.mark.parametrize("layout", ["stanford", "pylate", "pylate-tanh"])
def test_scores_equal_the_colbert_reference_in_both_checkpoint_layouts(layout, checkpoints):
    reranker = colbert(checkpoints[layout], batch_size=5)
    queries = [q for q in QUERIES for _ in PASSAGES]
    passages = PASSAGES * len(QUERIES)
    got = reranker.score_pairs(queries, passages)
    expected = [colbert_reference(reranker, checkpoints[layout], layout, q, p) for q, p in zip(queries, passages)]
    assert got == pytest.approx(expected, abs=1e-4)
    assert len({round(s, 4) for s in got}) == len(got)          # the scores say something
    # MaxSim of unit vectors: each query token adds at most 1
    assert max(got) <= reranker.query_length


def test_queries_are_marked_and_augmented_with_mask_and_passages_only_marked(checkpoints):
    reranker = colbert(checkpoints["stanford"])
    tok = reranker.tokenizer
    enc = reranker.tokenize_queries(["paris, france"])
    words = tok(["paris, france"], add_special_tokens=False)["input_ids"][0]
    marker, mask = tok.convert_tokens_to_ids("[unused0]"), tok.mask_token_id
    assert enc["input_ids"][0].tolist() == ([tok.cls_token_id, marker, *words, tok.sep_token_id]
                                            + [mask] * (32 - len(words) - 3))
    assert enc["attention_mask"][0].tolist() == [1] * (len(words) + 3) + [0] * (32 - len(words) - 3)
    long = reranker.tokenize_queries([QUERIES[2]])["input_ids"][0]
    assert len(long) == 32 and long[-1] == tok.sep_token_id and mask not in long.tolist()
    doc = reranker.tokenize_passages(["paris, france", "a river"])
    assert doc["input_ids"][0].tolist() == [tok.cls_token_id, tok.convert_tokens_to_ids("[unused1]"), *words,
                                            tok.sep_token_id]
    assert doc["attention_mask"][1].tolist()[-1] == 0           # the shorter passage is padded, not augmented
    assert tok.convert_tokens_to_ids(",") in reranker.skiplist and tok.convert_tokens_to_ids("paris") \
        not in reranker.skiplist


def test_pylate_layout_reads_its_prefixes_lengths_and_biased_dense(checkpoints):
    reranker = colbert(checkpoints["pylate"])
    assert (reranker.layout.query_marker, reranker.layout.document_marker) == ("[Q] ", "[D] ")
    assert (reranker.query_length, reranker.max_length) == (24, 64)
    assert reranker.model["projection"].bias is not None
    assert reranker.tokenize_queries(["river"])["input_ids"].shape == (1, 24)
    shorter = colbert(checkpoints["pylate"], options={"query_length": "8"})
    assert shorter.tokenize_queries(["river"])["input_ids"].shape == (1, 8)
    assert shorter.identity()["query_length"] == 8


def test_ranking_sorts_by_score_and_the_score_is_differentiable(checkpoints):
    reranker = colbert(checkpoints["stanford"])
    ranking = reranker.rank(QUERIES[0], PASSAGES)
    assert ranking.scores == sorted(ranking.scores, reverse=True) and sorted(ranking.docids) == ["0", "1", "2", "3"]
    scores = reranker.score(QUERIES[:2], PASSAGES[:2])
    assert scores.requires_grad
    scores.sum().backward()
    assert reranker.model["projection"].weight.grad.abs().sum() > 0


def test_a_pylate_dense_that_is_not_a_plain_projection_is_refused_in_one_line(tmp_path):
    import json

    path = tiny_models.colbert_pylate(tmp_path / "relu")
    config = json.loads((path / "1_Dense" / "config.json").read_text())
    (path / "1_Dense" / "config.json").write_text(json.dumps({**config, "activation_function":
                                                              "torch.nn.modules.activation.ReLU"}))
    with pytest.raises(UserError, match=r"its Dense module \(.*ReLU.*\) is not a plain projection with one of "
                                        r"torch.nn.modules.linear.Identity, torch.nn.modules.activation.Tanh$"):
        colbert(str(path))
    (path / "1_Dense" / "config.json").unlink()
    with pytest.raises(UserError, match="its Dense module has no 1_Dense/config.json"):
        colbert(str(path))


def test_registered_names_and_a_checkpoint_without_projection_is_refused(checkpoints, tmp_path):
    assert resolve("colbert").name == "colbertv2" and resolve("colbertv2.0").checkpoint == "colbert-ir/colbertv2.0"
    assert resolve("answerai-colbert-small-v1").checkpoint == "answerdotai/answerai-colbert-small-v1"
    assert resolve("gte-moderncolbert").kind == "late-interaction"
    plain = tiny_models.cross_encoder(tmp_path / "plain")
    with pytest.raises(UserError, match="neither a PyLate model .modules.json. nor a Stanford ColBERT one"):
        colbert(str(plain))
    with pytest.raises(UserError, match="query_length 2: expected at least 4"):
        colbert(checkpoints["stanford"], options={"query_length": 2})



@pytest.mark.parametrize("layout", ["stanford", "pylate", "pylate-tanh"])
def test_scores_equal_pylates_own_reranking(layout, checkpoints, tmp_path):
    expected = reference_output({"library": "pylate", "checkpoint": checkpoints[layout], "queries": QUERIES,
                                 "documents": [PASSAGES] * len(QUERIES)}, tmp_path)
    reranker = colbert(checkpoints[layout], batch_size=5)
    got = reranker.score_pairs([q for q in QUERIES for _ in PASSAGES], PASSAGES * len(QUERIES))
    assert got == pytest.approx([s for row in expected for s in row], abs=1e-4)
