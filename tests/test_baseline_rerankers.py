import pytest

from bench.types import Candidate, CandidateList, Document, Query
from rerankers.registry import RerankerSettings, get_reranker, resolve


def cands(*docs: tuple[str, str]) -> list[Candidate]:
    """Candidates with decreasing first-stage scores, in the given order."""
    return [Candidate(d, float(len(docs) - i), Document(d, text)) for i, (d, text) in enumerate(docs)]


def make_list(qid: str, n: int, **query) -> CandidateList:
    return CandidateList(Query(qid, f"question {qid}", **query), cands(*[(f"d{i}", f"text {i}") for i in range(n)]))


def test_none_keeps_first_stage_order_and_scores():
    cl = make_list("q1", 5)
    [r] = get_reranker("none").rerank([cl])
    assert r.qid == "q1" and r.docids == ["d0", "d1", "d2", "d3", "d4"] and r.scores == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert resolve("none").kind == "baseline"


def test_random_is_a_seeded_permutation_stable_per_query():
    lists = [make_list("q1", 20), make_list("q2", 20)]
    a = get_reranker("random", RerankerSettings(seed=1)).rerank(lists)
    assert sorted(a[0].docids) == sorted(c.docid for c in lists[0].candidates)
    assert a[0].docids != [c.docid for c in lists[0].candidates]
    assert a[0].scores == sorted(a[0].scores, reverse=True)
    assert a[0].docids != a[1].docids                     # the qid is part of the seed
    again = get_reranker("random", RerankerSettings(seed=1)).rerank(lists)
    assert [r.docids for r in again] == [r.docids for r in a]
    # Independent of where a query sits in the batch and of its candidates' order.
    shuffled = [CandidateList(lists[1].query, list(reversed(lists[1].candidates))), lists[0]]
    b = get_reranker("random", RerankerSettings(seed=1)).rerank(shuffled)
    assert b[0].docids == a[1].docids and b[1].docids == a[0].docids
    other = get_reranker("random", RerankerSettings(seed=2)).rerank(lists)
    assert other[0].docids != a[0].docids
    assert get_reranker("random", RerankerSettings(seed=2)).identity()["seed"] == 2


def test_oracle_sorts_by_grade_then_first_stage_order():
    cl = make_list("q1", 6, qrels={"d4": 2, "d1": 1, "d5": 1, "d0": 0})
    [r] = get_reranker("oracle").rerank([cl])
    assert r.docids == ["d4", "d1", "d5", "d0", "d2", "d3"]
    assert r.scores == [2.0, 1.0, 1.0, 0.0, 0.0, 0.0] and r.info == {"labels": "qrels"}


def test_oracle_uses_answers_without_qrels():
    cl = CandidateList(Query("q1", "capital of France?", answers=["Paris", "City of Light"]),
                       cands(("d0", "Lyon is big."), ("d1", "It is called the city of light."),
                             ("d2", "Nothing here."), ("d3", "PARIS, the capital.")))
    [r] = get_reranker("oracle").rerank([cl])
    assert r.docids == ["d1", "d3", "d0", "d2"] and r.info == {"labels": "answers"}
    unlabeled = make_list("q2", 3)
    [u] = get_reranker("oracle").rerank([unlabeled])
    assert u.docids == ["d0", "d1", "d2"] and u.info == {"labels": "none"}


def test_minilm_registration_matches_the_encoder_default():
    from bench.encoders import MINILM_CHECKPOINT

    spec = resolve("minilm")
    assert spec.checkpoint == MINILM_CHECKPOINT and spec.kind == "pointwise"
    assert resolve("all-minilm-l6-v2") == spec


@pytest.fixture(scope="module")
def minilm():
    return get_reranker("minilm", RerankerSettings(device="cpu"))


@pytest.mark.slow
def test_minilm_ranks_the_matching_passage_first(minilm):
    cl = CandidateList(Query("q1", "How tall is Mount Everest?"),
                       cands(("d0", "Bananas are rich in potassium."),
                             ("d1", "The stock market fell on Tuesday."),
                             ("d2", "Mount Everest is 8,849 metres tall, the highest mountain on Earth."),
                             ("d3", "Python is a programming language.")))
    [r] = minilm.rerank([cl])
    assert r.docids[0] == "d2"
    assert -1.0 <= min(r.scores) and max(r.scores) <= 1.0


@pytest.mark.slow
def test_minilm_scores_are_batch_invariant_and_differentiable(minilm):
    import torch

    queries = ["How tall is Mount Everest?"] * 3 + ["Who wrote Hamlet?"] * 3 + ["What do zebras eat?"]
    passages = ["Everest is 8,849 m high.", "Bananas are yellow and sweet, and grow in bunches on large plants.",
                "Mountains", "Shakespeare wrote Hamlet around 1600.", "A tragedy.", "Zebras graze on grass.",
                "Zebras eat grass, leaves and twigs; they spend most of the day grazing on the savanna."]
    one = minilm.score_pairs(queries, passages, batch_size=1)
    many = minilm.score_pairs(queries, passages, batch_size=32)
    assert one == pytest.approx(many, abs=1e-5)
    with torch.no_grad():
        direct = minilm.model.encode(["Who wrote Hamlet?"])[0] @ minilm.model.encode(["A tragedy."])[0]
    assert one[4] == pytest.approx(direct.item(), abs=1e-5)

    minilm.model.zero_grad()
    scores = minilm.score(queries[:2], passages[:2])
    assert scores.shape == (2,) and scores.requires_grad
    scores.sum().backward()
    grads = [p.grad for p in minilm.model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    minilm.model.zero_grad()
    assert isinstance(minilm.model, torch.nn.Module)


@pytest.mark.slow
def test_encoder_matches_sentence_transformers():
    """Our mean pooling + normalisation reproduces sentence-transformers' encoding of the same folder."""
    import numpy as np

    st = pytest.importorskip("sentence_transformers")
    from bench.encoders import BiEncoder, resolve_checkpoint

    texts = ["A short one.", "A much longer passage " * 60]          # the second is truncated at 256 tokens
    ours = BiEncoder.load(trust_remote_code=False).encode_all(texts)
    ref = st.SentenceTransformer(resolve_checkpoint("sentence-transformers/all-MiniLM-L6-v2"), device="cpu")
    np.testing.assert_allclose(ours, ref.encode(texts, normalize_embeddings=True), atol=1e-5)
