"""duoT5 (rerankers/duot5.py) against pygaggle's ``DuoT5.rescore``, reproduced here from its source (read through the
code search; pygaggle pins old transformers and torch and does not install beside this project): every ordered pair
of the top N formatted as ``Query: q Document0: d0 Document1: d1 Relevant:`` alone (the whole string truncated to 512
tokens), one decoder step, softmax over the false/true logits, and ``scores[d0] += p; scores[d1] += 1 - p``."""
from __future__ import annotations

from itertools import permutations

import pytest
import torch

from bench.errors import UserError
from benchmarks import tiny_models
from rerankers.registry import RerankerSettings, get_reranker
from tests.test_pointwise_backends import candidate_lists


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(tiny_models.monot5(tmp_path_factory.mktemp("duot5") / "t5"))


def duot5(path, **kw):
    options = kw.pop("options", None)
    return get_reranker("duot5", RerankerSettings(checkpoint=path, device="cpu", dtype="float32", options=options,
                                                  **kw))


def pygaggle_sym_sum(reranker, query, texts):
    tok, model = reranker.tokenizer, reranker.model
    vocab = tok.get_vocab()
    scores = [0.0] * len(texts)
    for i, j in permutations(range(len(texts)), 2):
        enc = tok(f"Query: {query} Document0: {texts[i]} Document1: {texts[j]} Relevant:", max_length=512,
                  truncation=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc, decoder_input_ids=torch.zeros((1, 1), dtype=torch.long)).logits[0, 0]
        p = torch.softmax(logits[[vocab["▁false"], vocab["▁true"]]], 0)[1].item()
        scores[i] += p
        scores[j] += 1 - p
    return scores


def test_the_top_n_is_ordered_by_pygaggles_symmetric_sum_and_the_rest_keep_their_order(checkpoint):
    reranker = duot5(checkpoint, batch_size=7, options={"top_n": 5})
    lists = candidate_lists(n_queries=2, n_docs=8)
    rankings = reranker.rerank(lists)
    for cl, ranking in zip(lists, rankings):
        head = cl.candidates[:5]
        expected = pygaggle_sym_sum(reranker, cl.query.text, [c.doc.as_passage() for c in head])
        order = sorted(range(5), key=lambda i: -expected[i])
        assert ranking.docids[:5] == [head[i].docid for i in order]
        assert ranking.scores[:5] == pytest.approx([expected[i] for i in order], abs=1e-5)
        assert ranking.docids[5:] == [c.docid for c in cl.candidates[5:]]
        assert ranking.scores[5:] == [-1.0, -2.0, -3.0]
        assert sum(ranking.scores[:5]) == pytest.approx(5 * 4, abs=1e-5)   # each pair hands out 2 in all
        assert ranking.info == {"duo_pairs": 20}


def test_a_list_shorter_than_n_compares_what_it_has_and_n_below_two_is_refused(checkpoint):
    reranker = duot5(checkpoint)
    [ranking] = reranker.rerank(candidate_lists(n_queries=1, n_docs=3))
    assert ranking.info == {"duo_pairs": 6} and min(ranking.scores) >= 0
    with pytest.raises(UserError, match="duoT5 top_n 1: expected at least 2 candidates"):
        duot5(checkpoint, options={"top_n": "1"})
