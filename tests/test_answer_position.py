"""The answer-position split of a handmade run: exact counts, shares and per-part means, by hand."""
import pandas as pd
import pytest

from bench.answer_position import (SOURCE_QRELS, answer_bearing, answer_position, answer_position_markdown,
                                   answer_position_table, position_labels)
from bench.report import ReportOptions, write_reports
from bench.types import QueryRecord


def rec(reranker, qid, ranking, bearing, acc, f1, reader="r", status="ok"):
    info = {"answer_bearing": {"source": SOURCE_QRELS, "docids": bearing}} if bearing else {}
    metrics = {"nDCG@10": 0.5, "accuracy": acc, "F1": f1} if status == "ok" else {}
    return QueryRecord(dataset="d", reranker=reranker, reader=reader, qid=qid, question="q", gold_answers=["a"],
                       ranking=ranking, answer="a" if status == "ok" else None, metrics=metrics, status=status,
                       info=info)


def handmade_run():
    """top_k = 3. ``near`` puts the answer passage first for q0 and q1, third for q2 and 5th for q3; ``far`` second
    for q0, nowhere for q1 (the first stage missed it), 4th for q2, and first for q3 through its second answer-bearing
    passage, and first for q5. q4 has no labelled passage (left out of both) and q5 failed under ``near`` (left out
    there)."""
    return [
        rec("near", "q0", ["p0", "x", "y", "z"], ["p0"], 1.0, 1.0),
        rec("near", "q1", ["p1", "x", "y"], ["p1"], 1.0, 0.5),
        rec("near", "q2", ["x", "y", "p2", "z"], ["p2"], 0.0, 0.2),
        rec("near", "q3", ["x", "y", "z", "w", "p3"], ["p3", "s3"], 0.0, 0.0),
        rec("near", "q4", ["p4", "x"], [], 1.0, 1.0),
        rec("near", "q5", ["p5", "x"], ["p5"], 0.0, 0.0, status="failed"),
        rec("far", "q0", ["x", "p0", "y"], ["p0"], 1.0, 0.8),
        rec("far", "q1", ["x", "y", "z"], ["p1"], 0.0, 0.0),
        rec("far", "q2", ["x", "y", "z", "p2"], ["p2"], 1.0, 0.6),
        rec("far", "q3", ["s3", "p3", "x"], ["p3", "s3"], 0.0, 0.4),
        rec("far", "q4", ["x", "p4"], [], 0.0, 0.0),
        rec("far", "q5", ["p5", "x"], ["p5"], 1.0, 1.0),
    ]


def test_answer_bearing_passages_are_the_top_labelled_ones_from_qrels_or_utility_labels():
    assert answer_bearing({"d1": 3, "d2": 2, "d3": 3, "d4": 0}) == {"source": SOURCE_QRELS, "docids": ["d1", "d3"]}
    assert answer_bearing({"d2": 0.9, "d1": 0.4}, source="utility") == {"source": "utility", "docids": ["d2"]}
    assert answer_bearing({"d1": 0, "d2": 0}) is None and answer_bearing({}) is None


def test_position_is_the_best_placed_answer_passage_against_the_readers_top_k():
    assert position_labels(3) == ["rank 1", "ranks 2..3", "not in top 3"]
    assert position_labels(1) == ["rank 1", "not in top 1"]
    assert answer_position(["a", "b", "c"], ["a"], 3) == "rank 1"
    assert answer_position(["x", "b", "a"], ["a", "b"], 3) == "ranks 2..3"     # b at rank 2 counts, not a at 3
    assert answer_position(["x", "y", "z", "a"], ["a"], 3) == "not in top 3"   # rank k + 1
    assert answer_position(["x", "y", "a"], ["a"], 3) == "ranks 2..3"          # rank k itself is seen
    assert answer_position(["x"], ["a"], 3) == "not in top 3"                 # never retrieved
    assert answer_position(["x", "a"], ["a"], 1) == "not in top 1"


def test_handmade_run_exact_counts_shares_and_means():
    table = answer_position_table(handmade_run(), top_k=3)
    got = {(r.reranker, r.position): (r.n, r.share, r.accuracy, r.F1) for r in table.itertuples()}
    assert list(table["reranker"]) == ["near"] * 3 + ["far"] * 3
    assert list(table["position"]) == ["rank 1", "ranks 2..3", "not in top 3"] * 2
    assert got[("near", "rank 1")] == (2, 0.5, 1.0, pytest.approx(0.75))   # q0, q1
    assert got[("near", "ranks 2..3")] == (1, 0.25, 0.0, pytest.approx(0.2))  # q2 (rank 3)
    assert got[("near", "not in top 3")] == (1, 0.25, 0.0, 0.0)             # q3 (rank 5)
    assert got[("far", "rank 1")] == (2, 0.4, 0.5, pytest.approx(0.7))     # q3 through s3, q5
    assert got[("far", "ranks 2..3")] == (1, 0.2, 1.0, pytest.approx(0.8))  # q0
    assert got[("far", "not in top 3")] == (2, 0.4, 0.5, pytest.approx(0.3))  # q1 (never retrieved), q2 (4th)
    assert "nDCG@10" not in table.columns and set(table["source"]) == {SOURCE_QRELS}


def test_an_empty_part_has_no_mean_and_closed_book_or_unlabelled_runs_have_no_table():
    table = answer_position_table([rec("near", "q0", ["p0"], ["p0"], 1.0, 1.0)], top_k=2)
    assert list(table["n"]) == [1, 0, 0] and pd.isna(table["accuracy"].iloc[1])
    assert answer_position_table(handmade_run(), top_k=0).empty
    assert answer_position_table([rec("near", "q4", ["p4"], [], 1.0, 1.0)], top_k=3).empty
    assert answer_position_markdown(pd.DataFrame(), 3, "F1") is None


def test_leaderboard_gets_the_section_and_the_csv(tmp_path):
    md = write_reports(handmade_run(), tmp_path, ReportOptions(baseline="far", top_k=3, n_resamples=100))
    section = md[md.index("### Where the answer-bearing passage landed"):]
    assert "#### d · reader r" in section and "the reader saw the top 3" in section
    lines = [line.replace(" ", "") for line in section.splitlines()]
    assert "|reranker|position|n|share|accuracy|F1(primary)|" in lines
    assert "|near|rank1|2|0.500|1.000|0.750|" in lines
    assert "|far|notintop3|2|0.400|0.500|0.300|" in lines
    csv = pd.read_csv(tmp_path / "answer_position.csv")
    assert list(csv.columns) == ["dataset", "reader", "reranker", "position", "n", "share", "accuracy", "F1",
                                 "source"]
    assert csv["n"].tolist() == [2, 1, 1, 2, 1, 2]


def test_a_run_without_labels_writes_no_section_and_no_csv(tmp_path):
    recs = [rec("near", f"q{i}", ["x"], [], 1.0, 1.0) for i in range(3)]
    md = write_reports(recs, tmp_path, ReportOptions(baseline="near", top_k=3, n_resamples=100))
    assert "answer-bearing passage landed" not in md and not (tmp_path / "answer_position.csv").exists()
