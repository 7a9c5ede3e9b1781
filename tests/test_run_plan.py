"""The run loop's pieces that hold no state: the plan of cells and the record of one query, a function of its
inputs alone (the end-to-end runs are in tests/test_runner.py)."""
import ast
import inspect

import bench.runner
from bench.judges import Verdict
from bench.runner import Cell, plan, query_record
from bench.types import Answer, Candidate, CandidateList, Document, Query, Ranking

CELL = Cell("toy", "minilm", "smollm2")


def candidate_list(with_candidates=True):
    query = Query("q1", "What is the capital of France?", answers=["Paris"], qrels={"d1": 1})
    cands = [Candidate("d1", 2.0, Document("d1", "Paris is the capital.")),
             Candidate("d2", 1.0, Document("d2", "Lyon is a city."))] if with_candidates else []
    return CandidateList(query, cands)


def test_plan_is_datasets_by_rerankers_by_readers_in_order():
    assert plan(["a", "b"], ["none", "minilm"], ["r1"]) == [
        Cell("a", "none", "r1"), Cell("a", "minilm", "r1"), Cell("b", "none", "r1"), Cell("b", "minilm", "r1")]
    assert len(plan(["a"], ["x", "y", "z"], ["r1", "r2"])) == 6


def test_record_of_an_answered_and_judged_query():
    ranking = Ranking("q1", ["d2", "d1"], [3.0, 1.0], info={"reranker": {"name": "minilm"}})
    answer = Answer("q1", "Paris, France", ["d2", "d1"], "h1", usage={"prompt_tokens": 9}, cache_key="k-reader")
    verdict = Verdict(correct=True, reason="same city", valid=True, raw="{}", cache_key="k-judge")
    rec = query_record(CELL, candidate_list(), ranking, {"nDCG@10": 0.63}, answer, verdict, None)
    assert (rec.status, rec.ranking, rec.answer, rec.error) == ("ok", ["d2", "d1"], "Paris, France", None)
    # F1 of "paris france" against "paris": precision 1/2, recall 1 -> 2/3
    assert rec.metrics == {"nDCG@10": 0.63, "EM": 0.0, "F1": 2 / 3, "accuracy": 1.0, "judge": 1.0}
    assert rec.info["llm_calls"] == {"reader": "k-reader", "judge": "k-judge"}
    assert rec.info["reranker"] == {"name": "minilm"} and rec.info["judge"] == {"valid": True, "reason": "same city",
                                                                                 "raw": "{}"}


def test_failed_calls_and_missing_candidates():
    ranking = Ranking("q1", ["d1", "d2"], [2.0, 1.0])
    failed = Answer("q1", "", ["d1"], "h1", error="timeout")
    rec = query_record(CELL, candidate_list(), ranking, {"nDCG@10": 1.0}, failed, None, None)
    assert (rec.status, rec.error, rec.metrics) == ("failed", "timeout", {"nDCG@10": 1.0})
    judge_down = Verdict(correct=None, reason="", valid=False, raw="", error="503")
    rec = query_record(CELL, candidate_list(), ranking, {}, Answer("q1", "Paris", ["d1"], "h1"), judge_down, None)
    assert (rec.status, rec.error, rec.metrics) == ("failed", "judge: 503", {})
    empty = query_record(CELL, candidate_list(False), None, {"nDCG@10": 0.0}, None, None, None)
    assert (empty.status, empty.ranking, empty.answer, empty.metrics) == ("no_candidates", [], None, {"nDCG@10": 0.0})
    no_reader = query_record(Cell("toy", "none", "none"), candidate_list(), ranking, {"MAP": 1.0}, None, None, None)
    assert (no_reader.status, no_reader.answer, no_reader.metrics) == ("ok", None, {"MAP": 1.0})


def test_every_function_of_the_run_loop_is_at_most_40_lines():
    """The run loop (bench/runner.py) stays in functions of at most 40 lines each, docstrings included."""
    tree = ast.parse(inspect.getsource(bench.runner))
    lengths = {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(tree)
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert len(lengths) > 20 and max(lengths.values()) > 30          # the whole module was read
    assert {name: n for name, n in lengths.items() if n > 40} == {}
