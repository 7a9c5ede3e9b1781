"""TREC Deep Learning: Anserini topics, NIST qrels, rank_llm candidates with text; trec_eval's conventions (nDCG on
graded labels, MAP/Recall/MRR at grade >= 2) checked against hand-computed values; RankGPT hits as a first stage;
an end-to-end run by name from a data dir."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from bench.cli import main
from bench.data import catalog
from bench.data.trec_dl import load_trec_dl
from bench.errors import UserError
from bench.metrics import retrieval_metrics
from bench.retrieval import first_stage, read_candidate_file
from bench.types import Ranking
from tests.trec_check import assert_trec_runs_reproduce_leaderboard, trec_eval_means

TOPICS = "1\tfirst query\n2\tsecond query\n3\tunjudged query\n"
# grades 0-3 as NIST's; z (grade 3) is judged but not retrieved
QRELS = "1 0 a 1\n1 0 b 3\n1 0 c 0\n1 0 d 2\n1 0 z 3\n2 0 y 2\n2 0 a 0\n"


def request_line(qid, text, docs):
    """A line of rank_llm's retrieve_results_dl19_top100.jsonl: MS MARCO v1 documents as ``doc.contents``."""
    return json.dumps({"query": {"text": text, "qid": qid},
                       "candidates": [{"doc": {"id": d, "contents": t}, "docid": d, "score": 10.0 - i}
                                      for i, (d, t) in enumerate(docs)]}) + "\n"


def write_dl(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "topics.dl19-passage.txt").write_text(TOPICS)
    (folder / "qrels.dl19-passage.txt").write_text(QRELS)
    (folder / "retrieve_results_dl19_top100.jsonl").write_text(
        request_line("1", "first query", [("a", "alpha"), ("b", "beta"), ("c", "gamma"), ("d", "delta"),
                                          ("e", "epsilon")])
        + request_line("2", "second query", [("a", "alpha"), ("y", "ypsilon")])
        + request_line("3", "unjudged query", [("e", "epsilon")]))
    return folder


def load(folder):
    return load_trec_dl(folder, "topics.dl19-passage.txt", "qrels.dl19-passage.txt",
                        "retrieve_results_dl19_top100.jsonl", "dl19-passage")


def test_trec_dl_folder(tmp_path):
    ds = load(write_dl(tmp_path / "dl19-passage"))
    assert (ds.name, ds.split, ds.relevance_level) == ("dl19-passage", "test", 2)
    assert [(q.qid, q.text, q.qrels) for q in ds.queries] == [
        ("1", "first query", {"a": 1, "b": 3, "c": 0, "d": 2, "z": 3}), ("2", "second query", {"y": 2, "a": 0})]
    assert ds.candidates == {"1": ["a", "b", "c", "d", "e"], "2": ["a", "y"]}     # the unjudged topic is left out
    assert {d: doc.text for d, doc in ds.corpus.items()} == {"a": "alpha", "b": "beta", "c": "gamma", "d": "delta",
                                                            "e": "epsilon", "y": "ypsilon"}


def test_trec_dl_conventions_match_hand_computed_trec_eval_l2():
    qrels = {"1": {"a": 1, "b": 3, "c": 0, "d": 2, "z": 3}}
    ranking = {"1": Ranking("1", ["a", "b", "c", "d", "e"], [5, 4, 3, 2, 1])}
    m = retrieval_metrics(ranking, qrels, relevance_level=2)["1"]
    # -l 2: relevant = {b, d, z}; b at rank 2, d at rank 4
    assert m["MAP"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert m["Recall@10"] == pytest.approx(2 / 3)
    assert m["MRR@10"] == pytest.approx(1 / 2)
    # nDCG on the graded labels (gain = grade, discount log2(rank + 1)), whatever the level
    dcg = 1 / math.log2(2) + 3 / math.log2(3) + 2 / math.log2(5)
    ideal = 3 / math.log2(2) + 3 / math.log2(3) + 2 / math.log2(4) + 1 / math.log2(5)
    assert m["nDCG@10"] == pytest.approx(dcg / ideal)
    # at the default level 1, a (grade 1) counts: MAP (1/1 + 2/2 + 3/4) / 4, MRR 1
    m1 = retrieval_metrics(ranking, qrels)["1"]
    assert (m1["MAP"], m1["MRR@10"], m1["nDCG@10"]) == pytest.approx(((1 + 1 + 3 / 4) / 4, 1.0, dcg / ideal))


def test_malformed_qrels_line_is_named(tmp_path):
    folder = write_dl(tmp_path / "dl")
    (folder / "qrels.dl19-passage.txt").write_text("1 0 a 1\n1 0 b three\n")
    with pytest.raises(UserError, match=r"qrels\.dl19-passage\.txt line 2: relevance grade 'three' is not an integer "
                                        r"from -2 to 4"):
        load(folder)


def test_full_collection_replaces_the_candidate_corpus(tmp_path):
    folder = write_dl(tmp_path / "dl")
    (folder / "collection.tsv").write_text("a\talpha\nb\tbeta\nz\tzeta, never retrieved\n")
    ds = load(folder)
    assert ds.corpus["z"].text == "zeta, never retrieved" and ds.corpus["e"].text == "epsilon"


# --- RankGPT / FIRST hits -------------------------------------------------------------------------------------

def hits_item(qid, query, hits):
    """An item as RankGPT's run_retriever writes it (qid an int for TREC DL topics)."""
    return {"query": query, "hits": [{"content": c, "qid": qid, "docid": d, "rank": r, "score": s}
                                     for d, c, r, s in hits]}


HITS = [hits_item(1, "first query", [("d", "delta", 1, 9.5), ("b", "beta", 2, 9.0), ("a", "alpha", 3, 8.0)]),
        hits_item(2, "second query", [("a", "alpha", 2, 1.0), ("y", "ypsilon", 1, 2.0)])]


@pytest.mark.parametrize("layout", ["json", "jsonl"])
def test_rankgpt_hits_file(tmp_path, layout):
    path = tmp_path / f"hits.{layout}"
    path.write_text(json.dumps(HITS) if layout == "json" else "".join(json.dumps(h) + "\n" for h in HITS))
    lists = read_candidate_file(path)
    assert [(cl.query.qid, cl.query.text, [(c.docid, c.doc.text, c.score) for c in cl.candidates])
            for cl in lists] == [("1", "first query", [("d", "delta", 9.5), ("b", "beta", 9.0), ("a", "alpha", 8.0)]),
                                 ("2", "second query", [("y", "ypsilon", 2.0), ("a", "alpha", 1.0)])]
    ds = load(write_dl(tmp_path / "dl"))
    got = first_stage(ds, str(path), pool=2)
    assert [[c.docid for c in cl.candidates] for cl in got] == [["d", "b"], ["y", "a"]]


def test_rankgpt_hits_with_mixed_qids_fail(tmp_path):
    bad = hits_item(1, "q", [("a", "alpha", 1, 1.0)])
    bad["hits"].append({"content": "x", "qid": 2, "docid": "b", "rank": 2, "score": 0.5})
    path = tmp_path / "hits.json"
    path.write_text(json.dumps([bad]))
    with pytest.raises(UserError, match=r"hits\.json item 0: the hits of one query carry different qids"):
        read_candidate_file(path)


# --- end to end -------------------------------------------------------------------------------------------------

def records_of(out: Path) -> dict[tuple[str, str], dict]:
    recs = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines() if line.strip()]
    return {(r["reranker"], r["qid"]): r for r in recs}


@pytest.mark.parametrize("first", ["given", "hits"])
def test_dl_by_name_from_data_dir_runs_end_to_end(tmp_path, monkeypatch, first):
    write_dl(tmp_path / "data" / "dl19-passage")
    (tmp_path / "hits.json").write_text(json.dumps(HITS))
    # the data dir by environment variable once, by --data-dir once
    monkeypatch.setenv("RERANK_BENCH_DATA", str(tmp_path / ("data" if first == "given" else "elsewhere")))
    # the fixture cannot carry rank_llm's published md5 and size: the same entry without them
    entry = catalog.CATALOG["dl19-passage"]
    files = tuple(catalog.DataFile(f.path, f.url, optional=f.optional) for f in entry.files)
    monkeypatch.setitem(catalog.CATALOG, "dl19-passage", dataclasses.replace(entry, files=files))
    stage = "given" if first == "given" else str(tmp_path / "hits.json")
    assert main(["run", "--datasets", "dl19-passage", "--first-stage", stage, "--rerankers", "none", "oracle",
                 "--reader", "none", "--output", str(tmp_path / "out"), "--run-id", "r",
                 "--cache-dir", str(tmp_path / "cache")] + ([] if first == "given" else
                                                            ["--data-dir", str(tmp_path / "data")])) == 0
    recs = records_of(tmp_path / "out" / "r")
    if first == "given":
        assert recs["none", "1"]["ranking"] == ["a", "b", "c", "d", "e"]
        assert recs["none", "1"]["metrics"]["MAP"] == pytest.approx((1 / 2 + 2 / 4) / 3)   # at grade >= 2
    else:
        assert recs["none", "1"]["ranking"] == ["d", "b", "a"]
        assert recs["none", "1"]["metrics"]["MAP"] == pytest.approx((1 / 1 + 2 / 2) / 3)
    assert recs["oracle", "1"]["ranking"][:2] == ["b", "d"]         # grade 3 first, then 2
    # runs/*.trec with trec_eval -l 2 reproduce the leaderboard (at trec_eval's default level 1 they would not)
    run_dir = tmp_path / "out" / "r"
    qrels = {q.qid: q.qrels for q in load(tmp_path / "data" / "dl19-passage").queries}
    assert_trec_runs_reproduce_leaderboard(run_dir, "dl19-passage", ["none", "oracle"], qrels, relevance_level=2,
                                           top_k=3)
    assert trec_eval_means(run_dir / "runs" / "dl19-passage__none.trec", qrels, 1, 3)["MAP"] != \
        trec_eval_means(run_dir / "runs" / "dl19-passage__none.trec", qrels, 2, 3)["MAP"]
