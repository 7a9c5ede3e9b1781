"""The hosted rerank APIs (rerankers/rerank_api.py) against a real local HTTP server speaking each API's documented
request and response (tests/llm_server.py): batching within the document limit, the key from its variable, retries,
and the LLM cache (a rerun sends no request)."""
from __future__ import annotations

import pytest

from bench.errors import UserError
from bench.types import Candidate, CandidateList, Document, Query
from rerankers.registry import RerankerSettings, get_reranker
from tests.llm_server import ScriptedLLMServer, word_overlap

KEY = "rk-test-secret-93af"
APIS = {"cohere-rerank": ("/v2/rerank", "rerank-v3.5", {}),
        "jina-rerank-api": ("/v1/rerank", "jina-reranker-v2-base-multilingual", {"return_documents": False}),
        "voyage-rerank": ("/v1/rerank", "rerank-2.5", {"truncation": True})}
WORDS = "paris is the capital of france and a city on the river seine".split()


def lists(n_queries=2, n_docs=7):
    out = []
    for q in range(n_queries):
        cands = [Candidate(f"q{q}d{i}", 0.0, Document(f"q{q}d{i}", " ".join(WORDS[(i * 3 + k) % len(WORDS)]
                                                                          for k in range(2 + i))))
                 for i in range(n_docs)]
        out.append(CandidateList(Query(f"q{q}", f"the capital of france {q} city river"), cands))
    return out


def reranker(name, server, cache, **options):
    return get_reranker(name, RerankerSettings(cache_dir=str(cache), options={
        "url": server.root_url, "key_env": "TEST_RERANK_KEY", "max_documents": 3, "max_retries": 2, **options}))


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("TEST_RERANK_KEY", KEY)
    with ScriptedLLMServer() as srv:
        yield srv


@pytest.mark.parametrize("name", list(APIS))
def test_requests_follow_the_api_and_a_rerun_sends_none(name, server, tmp_path):
    path, model, extra = APIS[name]
    server.rerank_dialect = "voyage" if name == "voyage-rerank" else "jina"
    rankings = reranker(name, server, tmp_path).rerank(lists())
    assert server.count == 6                  # 7 candidates in requests of at most 3: 3 requests per query
    assert [len(r["documents"]) for r in server.requests] .count(1) == 2
    for body, headers in zip(server.requests, server.headers):
        assert body["_path"] == path and body["model"] == model
        assert {k: body[k] for k in extra} == extra
        assert headers["authorization"] == f"Bearer {KEY}"
    for cl, ranking in zip(lists(), rankings):
        expected = {c.docid: word_overlap(cl.query.text, c.doc.as_passage()) for c in cl.candidates}
        assert ranking.scores == [expected[d] for d in ranking.docids]
        assert ranking.scores == sorted(ranking.scores, reverse=True) and len(set(ranking.scores)) > 2
        assert ranking.info == {"api_requests_sent": 3}

    again = reranker(name, server, tmp_path).rerank(lists())
    assert server.count == 6                  # all from the cache
    assert [(r.docids, r.scores) for r in again] == [(r.docids, r.scores) for r in rankings]
    assert all(r.info == {"api_requests_sent": 0} for r in again)


def test_rate_limits_and_server_errors_are_retried(server, tmp_path):
    server.add_faults("429:0", "500")
    rr = reranker("cohere-rerank", server, tmp_path, concurrency=1, max_documents=10)
    [ranking] = rr.rerank(lists(n_queries=1))
    assert server.count == 3 and rr.engine.engine.stats == {"requests": 1, "attempts": 3, "retries": 2,
                                                            "failed_attempts": 2}
    assert len(ranking.docids) == 7


def test_a_refused_key_fails_in_one_line_without_the_key_and_nothing_is_cached(server, tmp_path):
    server.add_faults("401")
    with pytest.raises(UserError) as exc:
        reranker("cohere-rerank", server, tmp_path, max_documents=10).rerank(lists(n_queries=1))
    message = str(exc.value)
    assert "cohere rerank API: a request failed after its retries (HTTP 401" in message
    assert KEY not in message and "<redacted>" in message and server.count == 1     # 401 is not retried
    reranker("cohere-rerank", server, tmp_path, max_documents=10).rerank(lists(n_queries=1))
    assert server.count == 2                  # the failure was not cached


def test_a_remote_api_without_its_key_fails_before_any_request(monkeypatch, tmp_path):
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    with pytest.raises(UserError, match="voyage rerank API at https://api.voyageai.com/v1/rerank: the environment "
                                        "variable VOYAGE_API_KEY \\(the API key\\) is not set"):
        get_reranker("voyage-rerank", RerankerSettings(cache_dir=str(tmp_path)))


def test_scores_are_read_by_index_and_a_response_missing_a_document_is_refused():
    import json

    from rerankers.rerank_api import COHERE, RerankAPIError, parse_scores

    with pytest.raises(RerankAPIError, match="scores 1 of 2 documents"):
        parse_scores(COHERE, {"results": [{"index": 1, "relevance_score": 0.5}]}, 2)
    assert parse_scores(COHERE, json.loads('{"results": [{"index": 1, "relevance_score": 0.5}, {"index": 0, '
                                           '"relevance_score": 0.25}], "meta": {"billed_units": {"search_units": '
                                           '1}}}'), 2) == ([0.25, 0.5], {"search_units": 1})
