import json

import pytest

from bench.types import Answer, Candidate, CandidateList, Document, Query, QueryRecord, Ranking


def test_candidate_list_round_trips_rank_llm_request():
    cl = CandidateList(Query("q1", "who?", answers=["x"], qrels={"d1": 2}),
                       [Candidate("d1", 3.5, Document("d1", "text one", "T1")),
                        Candidate("d2", 1.0, Document("d2", "text two"))])
    obj = json.loads(json.dumps(cl.to_request_json()))
    assert obj == {"query": {"text": "who?", "qid": "q1"},
                   "candidates": [{"docid": "d1", "score": 3.5, "doc": {"title": "T1", "text": "text one"}},
                                  {"docid": "d2", "score": 1.0, "doc": {"title": "", "text": "text two"}}]}
    back = CandidateList.from_request_json(obj)
    assert [c.doc for c in back.candidates] == [c.doc for c in cl.candidates]
    assert back.query.qid == "q1" and back.query.answers == []      # labels are not part of the format


def test_request_reads_rank_llm_contents_and_segment_fields():
    obj = {"query": {"text": "q", "qid": 7}, "candidates": [
        {"docid": 1, "score": 2, "doc": {"contents": "c"}}, {"docid": "b", "score": 1, "doc": {"segment": "s"}}]}
    cl = CandidateList.from_request_json(obj)
    assert [(c.docid, c.doc.text) for c in cl.candidates] == [("1", "c"), ("b", "s")]
    assert cl.query.qid == "7"


def test_records_round_trip():
    for obj in (Query("q", "t", ["a"], {"d": 1}), Document("d", "x", "t"), Ranking("q", ["a", "b"], [2.0, 1.0]),
                Answer("q", "ans", ["a"], "reader-qa@v1:abc", {"prompt_tokens": 3}, True),
                QueryRecord("ds", "rr", "rd", "q", "t", ["a"], ["a"], "ans", {"F1": 1.0})):
        assert type(obj).from_json(json.loads(json.dumps(obj.to_json()))) == obj


def test_ranking_scores_strictly_decrease_despite_ties():
    r = Ranking("q", ["b", "a", "c"], [1.0, 1.0, 1.0])
    s = r.run_scores()
    assert sorted(s, key=lambda d: -s[d]) == ["b", "a", "c"]
    with pytest.raises(ValueError, match="duplicate"):
        Ranking("q", ["a", "a"], [1.0, 0.0])
