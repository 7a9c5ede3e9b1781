import math

import pytest

from bench.metrics import answer_metrics, normalize_answer, retrieval_metric_names, retrieval_metrics, token_f1
from bench.types import Ranking

QRELS = {
    "q1": {"d1": 2, "d2": 1, "d3": 0, "d9": 1},   # graded; d3 judged non-relevant; d9 never retrieved
    "q2": {"d5": 1},                              # its only relevant document sits at rank 12
    "q3": {"d1": 1},                              # missing from the run: counts 0 everywhere
}
RANKINGS = {
    # d1 and d3 tie on the backend's score; d1 is ranked first and must stay first
    "q1": Ranking("q1", ["d1", "d3", "d4", "d2"], [1.0, 1.0, 0.5, 0.5]),
    "q2": Ranking("q2", [f"x{i}" for i in range(11)] + ["d5"], [0.0] * 12),
    "q4": Ranking("q4", ["d1"], [1.0]),            # no qrels: ignored
}


def test_metric_names_include_reader_k():
    assert retrieval_metric_names(3) == ["nDCG@1", "nDCG@3", "nDCG@5", "nDCG@10", "Recall@3", "Recall@10",
                                         "Recall@100", "MRR@10", "MAP", "P@3"]
    assert "Recall@3" not in retrieval_metric_names() and "P@3" not in retrieval_metric_names()


def test_hand_computed_values():
    m = retrieval_metrics(RANKINGS, QRELS, top_k=3)
    assert set(m) == {"q1", "q2", "q3"}
    assert list(m["q1"]) == retrieval_metric_names(3)
    ideal = 2 + 1 / math.log2(3) + 1 / math.log2(4)           # grades 2, 1, 1 as gains
    q1 = m["q1"]
    assert q1["nDCG@1"] == pytest.approx(1.0)
    assert q1["nDCG@3"] == pytest.approx(2 / ideal)             # d3 (grade 0) and d4 (unjudged) gain nothing
    assert q1["nDCG@10"] == pytest.approx((2 + 1 / math.log2(5)) / ideal)
    assert q1["Recall@3"] == pytest.approx(1 / 3)               # relevant = grade >= 1: d1, d2, d9
    assert q1["Recall@10"] == pytest.approx(2 / 3)
    assert q1["MRR@10"] == pytest.approx(1.0)
    assert q1["MAP"] == pytest.approx((1 / 1 + 2 / 4) / 3)
    assert q1["P@3"] == pytest.approx(1 / 3)                    # d1 of d1, d3, d4
    q2 = m["q2"]
    assert q2["MRR@10"] == 0.0                                  # rank 12 is beyond the cut (recip_rank: 1/12)
    assert q2["MAP"] == pytest.approx(1 / 12)
    assert q2["Recall@10"] == 0.0 and q2["Recall@100"] == 1.0
    assert q2["P@3"] == 0.0
    assert all(v == 0.0 for v in m["q3"].values())


def test_agrees_with_ir_measures():
    ir_measures = pytest.importorskip("ir_measures")
    from ir_measures import AP, RR, R, nDCG

    ours = retrieval_metrics(RANKINGS, QRELS, top_k=3)
    measures = {"nDCG@1": nDCG @ 1, "nDCG@3": nDCG @ 3, "nDCG@5": nDCG @ 5, "nDCG@10": nDCG @ 10, "Recall@3": R @ 3,
                "Recall@10": R @ 10, "Recall@100": R @ 100, "MRR@10": RR @ 10, "MAP": AP}
    run = {q: r.run_scores() for q, r in RANKINGS.items()}
    theirs = {(m.query_id, str(m.measure)): m.value for m in ir_measures.iter_calc(list(measures.values()), QRELS, run)}
    assert {q for q, _ in theirs} == set(ours) == {"q1", "q2", "q3"}    # q3 (not in the run) counts, q4 does not
    for qid in ours:
        for name, measure in measures.items():
            assert ours[qid][name] == pytest.approx(theirs[qid, str(measure)], abs=1e-6), (qid, name)

    # Fed the backend's tied scores, trec_eval would put d3 before d1 (ties by docid, descending): a different
    # nDCG@1, which run_scores() avoids.
    raw = {q: dict(zip(r.docids, r.scores)) for q, r in RANKINGS.items()}
    tied = {m.query_id: m.value for m in ir_measures.iter_calc([nDCG @ 1], QRELS, raw)}
    assert tied["q1"] == 0.0 and ours["q1"]["nDCG@1"] == 1.0


def test_empty_ranking_counts_zero():
    m = retrieval_metrics({"q3": Ranking("q3", [], [])}, {"q3": {"d1": 1}})
    assert m == {"q3": {name: 0.0 for name in retrieval_metric_names()}}


@pytest.mark.parametrize("prediction, gold, expected", [
    ("The Eiffel Tower!", ["eiffel tower"], {"EM": 1.0, "F1": 1.0, "accuracy": 1.0}),       # case, article, punct.
    ("a cat", ["the cat"], {"EM": 1.0, "F1": 1.0, "accuracy": 1.0}),
    ("U.S.A.", ["USA"], {"EM": 1.0, "F1": 1.0, "accuracy": 1.0}),
    # max over aliases: F1 vs "Obama" is 2/3, vs "Barack Hussein Obama" 0.8 (P=1, R=2/3)
    ("Barack Obama", ["Obama", "Barack Hussein Obama"], {"EM": 0.0, "F1": 0.8, "accuracy": 1.0}),
    ("in 1990", ["1990"], {"EM": 0.0, "F1": 2 / 3, "accuracy": 1.0}),                       # P=1/2, R=1
    ("Paris, France", ["London"], {"EM": 0.0, "F1": 0.0, "accuracy": 0.0}),
    ("", ["Paris"], {"EM": 0.0, "F1": 0.0, "accuracy": 0.0}),                                # empty prediction
    ("the the cat cat", ["cat"], {"EM": 0.0, "F1": 2 / 3, "accuracy": 1.0}),                 # P=1/2 (1 of 2 "cat")
    ("On 2018-01-01.", ["1801"], {"EM": 0.0, "F1": 0.0, "accuracy": 0.0}),                  # token boundaries
    ("Concatenation", ["cat"], {"EM": 0.0, "F1": 0.0, "accuracy": 0.0}),
])
def test_answer_metrics(prediction, gold, expected):
    got = answer_metrics(prediction, gold)
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k] == pytest.approx(expected[k]), k


def test_normalisation_and_edge_cases():
    assert normalize_answer("  The  Quick,\tbrown FOX. ") == "quick brown fox"
    assert normalize_answer("theatre another") == "theatre another"        # articles only as whole words
    assert token_f1("", "") == 0.0 and token_f1("the", "") == 0.0           # SQuAD v1.1: nothing to match
    assert answer_metrics("the", ["an"])["accuracy"] == 0.0                 # an empty gold never "occurs"
    assert answer_metrics("x", []) == {}                                    # no gold: no answer metrics


def test_metric_registry_drives_the_report_kinds_and_rrpo_rewards():
    """One registered object per metric: its kind and 0/1-ness are what the report reads, and RRPO's --metric names
    (aliases f1, em included) resolve through the same registry; a ranking metric or the judge is no reward."""
    from bench.errors import UserError
    from bench.metrics import answer_metric_names, is_answer_metric, is_binary_metric, metric
    from bench.types import Query
    from rrpo.rewards import answer_metric

    assert answer_metric_names() == ["EM", "F1", "accuracy", "judge"]
    assert [is_answer_metric(m) for m in ("judge", "F1", "Recall@3", "nDCG@10", "MAP", "unregistered")] == \
        [True, True, False, False, False, False]
    assert [is_binary_metric(m) for m in ("EM", "accuracy", "judge", "F1", "Recall@7")] == [True, True, True, False,
                                                                                           False]
    assert metric("Recall@7").name == "Recall@k" and metric("f1").name == "F1"
    q = Query(qid="q", text="?", answers=["Paris"])
    assert answer_metric("f1")([q], ["paris france"]) == [pytest.approx(2 / 3)]
    assert answer_metric("EM")([q, q], ["Paris", "Lyon"]) == [1.0, 0.0]
    for bad, hint in (("judge", ""), ("nDCG@10", ""), ("F", "did you mean 'F1'\\? ")):
        with pytest.raises(UserError, match=rf"^--metric '{bad}': {hint}expected one of EM, F1, accuracy \(or their "
                                            rf"aliases f1, em\) or judge:<engine>$"):
            answer_metric(bad)
