import json
import math

import pytest

import bench.retrieval as retrieval
from bench.data.base import Dataset
from bench.errors import UserError
from bench.retrieval import (first_stage, read_requests_jsonl, read_trec_run, write_requests_jsonl, write_trec_run)
from bench.types import Candidate, CandidateList, Document, Query, Ranking

DOCS = [
    Document("d1", "Zebras live on the African savanna and graze on grass.", "Zebra habitats"),
    Document("d2", "Apple trees grow in orchards; the apple harvest happens in autumn.", "Apple orchards"),
    Document("d3", "Qubits hold superpositions of states.", "Quantum computing"),
    Document("d4", "The savanna is a grassland with scattered trees.", ""),
    Document("d5", "The highest mountain on Earth, in the Himalaya.", "Mount Everest"),
]


def dataset(**kw) -> Dataset:
    queries = [
        Query("q1", "Where do zebras live?", answers=["savanna"], qrels={"d1": 1}),
        Query("q2", "When are apple trees harvested?", qrels={"d2": 1}),
        Query("q3", "Everest", qrels={"d5": 1}),
        Query("q4", "xylophone"),                       # shares no term with the corpus
    ]
    return Dataset("toy", "test", {d.docid: d for d in DOCS}, queries, **kw)


def docids(cl: CandidateList) -> list[str]:
    return [c.docid for c in cl.candidates]


# --- bm25 -----------------------------------------------------------------------------------------------------------

def test_bm25_scores_follow_lucene_formula():
    import bm25s
    import Stemmer

    lists = first_stage(dataset(), "bm25", pool=10)
    # The same tokens bm25s indexes (title + text, English stopwords, Snowball stemmer); the formula by hand:
    # Lucene's BM25, idf = ln(1 + (N - df + .5) / (df + .5)), tf part = tf / (tf + k1 (1 - b + b dl / avgdl)).
    stemmer = Stemmer.Stemmer("english")
    tokens = bm25s.tokenize([d.as_passage() for d in DOCS], stopwords="en", stemmer=stemmer, return_ids=False,
                            show_progress=False)
    [query] = bm25s.tokenize(["Where do zebras live?"], stopwords="en", stemmer=stemmer, return_ids=False,
                             show_progress=False)
    assert {"zebra", "live"} <= set(query)
    avgdl = sum(map(len, tokens)) / len(tokens)

    def score(doc: list[str]) -> float:
        total = 0.0
        for term in query:
            df = sum(term in t for t in tokens)
            idf = math.log(1 + (len(DOCS) - df + 0.5) / (df + 0.5))
            tf = doc.count(term)
            total += idf * tf / (tf + 1.5 * (1 - 0.75 + 0.75 * len(doc) / avgdl))
        return total

    q1 = lists[0]
    assert docids(q1) == ["d1"]                        # only d1 has "zebra" (twice: title and text) or "live"
    assert tokens[0].count("zebra") == 2
    assert q1.candidates[0].score == pytest.approx(score(tokens[0]), rel=1e-5)
    assert q1.candidates[0].doc == DOCS[0]


def test_bm25_order_titles_labels_and_empty_lists():
    lists = first_stage(dataset(), "bm25", pool=10)
    assert [cl.query.qid for cl in lists] == ["q1", "q2", "q3", "q4"]
    assert docids(lists[1]) == ["d2", "d4"]            # "trees" is in d4 too
    assert lists[1].query.qrels == {"d2": 1}           # labels travel with the query
    assert docids(lists[2]) == ["d5"]                  # "Everest" is only in d5's title
    assert lists[3].candidates == []                   # no shared term: no arbitrary zero-score filler
    scores = [c.score for c in lists[1].candidates]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)


def test_bm25_pool_truncates():
    full = first_stage(dataset(), "bm25", pool=10)[1]
    top1 = first_stage(dataset(), "bm25", pool=1)[1]
    assert len(full.candidates) > 1 and docids(top1) == docids(full)[:1]


def test_first_stage_cache_is_keyed_by_parameters(tmp_path, monkeypatch):
    fresh = first_stage(dataset(), "bm25", pool=10, cache_dir=tmp_path)
    files = list((tmp_path / "first_stage").glob("*.jsonl"))
    assert len(files) == 1 and files[0].name.startswith("toy.test.bm25.")

    def fail(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(retrieval, "bm25_rankings", fail)
    cached = first_stage(dataset(), "bm25", pool=10, cache_dir=tmp_path)
    assert [(docids(a), [c.score for c in a.candidates]) for a in fresh] == \
        [(docids(b), [c.score for c in b.candidates]) for b in cached]
    assert cached[0].query.answers == ["savanna"]      # labels come from the dataset, not the cache
    for changed in ({"k1": 1.2}, {"stemmer": "none"}):
        with pytest.raises(AssertionError, match="recomputed"):
            first_stage(dataset(), "bm25", pool=10, cache_dir=tmp_path, **changed)
    with pytest.raises(AssertionError, match="recomputed"):
        first_stage(dataset(), "bm25", pool=5, cache_dir=tmp_path)
    edited = dataset()
    edited.corpus["d3"] = Document("d3", "changed text", "Quantum computing")
    with pytest.raises(AssertionError, match="recomputed"):
        first_stage(edited, "bm25", pool=10, cache_dir=tmp_path)


def test_bad_method_options_and_pool():
    with pytest.raises(UserError, match="expected one of bm25, dense, given"):
        first_stage(dataset(), "bm52", pool=10)
    with pytest.raises(UserError, match="unknown option.*k3"):
        first_stage(dataset(), "bm25", pool=10, k3=1)
    with pytest.raises(UserError, match="positive"):
        first_stage(dataset(), "bm25", pool=0)
    with pytest.raises(UserError, match="bm25 variant 'okapi'"):
        first_stage(dataset(), "bm25", pool=10, variant="okapi")
    with pytest.raises(UserError, match="stemmer 'klingon'"):
        first_stage(dataset(), "bm25", pool=10, stemmer="klingon")


# --- given ----------------------------------------------------------------------------------------------------------

def test_given_pools_keep_their_order():
    ds = dataset(candidates={"q1": ["d4", "d1", "d3"], "q2": ["d2"], "q3": ["d5", "d1"]})
    lists = first_stage(ds, "given", pool=2)
    assert docids(lists[0]) == ["d4", "d1"] and [c.score for c in lists[0].candidates] == [3.0, 2.0]
    assert lists[0].candidates[0].doc == DOCS[3]
    assert lists[3].candidates == []                   # q4 has no pool
    with pytest.raises(UserError, match="no per-query candidate pools"):
        first_stage(dataset(), "given", pool=2)
    with pytest.raises(UserError, match="'d9'.*not in the corpus"):
        first_stage(dataset(candidates={"q1": ["d9"]}), "given", pool=2)


# --- files ----------------------------------------------------------------------------------------------------------

def test_trec_run_round_trip(tmp_path):
    import pytrec_eval

    rankings = [Ranking("q1", ["d3", "d1", "d2"], [2.5, 1.0, 1.0]),       # tie: written rank-derived
                Ranking("q2", ["d2", "d4"], [0.125, 7.0]),               # increasing: written rank-derived
                Ranking("q3", ["d1", "d5"], [0.5, 0.25])]                # strictly decreasing: the real scores
    path = tmp_path / "run.txt"
    write_trec_run(path, rankings, tag="test")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 d3 1 3.0 test" and lines[3] == "q2 Q0 d2 1 2.0 test"
    assert lines[5:] == ["q3 Q0 d1 1 0.5 test", "q3 Q0 d5 2 0.25 test"]
    back = read_trec_run(path)
    assert list(back) == ["q1", "q2", "q3"]
    assert back["q1"].docids == ["d3", "d1", "d2"] and back["q1"].scores == [3.0, 2.0, 1.0]
    assert back["q2"].docids == ["d2", "d4"]
    # trec_eval breaks score ties by docid (it would read d3, d2, d1 from tied scores): d1 must stay second
    with path.open() as f:
        run = pytrec_eval.parse_run(f)
    assert pytrec_eval.RelevanceEvaluator({"q1": {"d1": 1}}, {"recip_rank"}).evaluate(run)["q1"]["recip_rank"] == 0.5
    lists = first_stage(dataset(), "bm25", pool=10)
    write_trec_run(path, lists, tag="bm25")
    again = read_trec_run(path)
    assert {q: r.docids for q, r in again.items()} == {cl.query.qid: docids(cl) for cl in lists if cl.candidates}
    assert again["q1"].scores == [c.score for c in lists[0].candidates]   # exact (repr) scores
    with pytest.raises(UserError, match="tag"):
        write_trec_run(path, rankings, tag="two words")


def test_trec_run_as_first_stage(tmp_path):
    path = tmp_path / "run.txt"
    path.write_text("q1 Q0 d4 2 1.0 x\n"
                    "q1 Q0 d1 1 1.0 x\n"            # same score, better rank: first
                    "\n"
                    "q1 Q0 d2 3 3.5 x\n"            # highest score: first overall (trec_eval sorts by score)
                    "q9 Q0 d1 1 1.0 x\n")           # not a query of the dataset: ignored
    lists = first_stage(dataset(), str(path), pool=2)
    assert docids(lists[0]) == ["d2", "d1"]
    assert lists[0].candidates[1].doc == DOCS[0] and lists[0].query.qrels == {"d1": 1}
    assert [cl.candidates for cl in lists[1:]] == [[], [], []]


@pytest.mark.parametrize("content, message", [
    ("q1 Q0 d1 1 1.0 x\nq1 Q0 d2 2 0.5\n", r"run.txt line 2: expected 6 fields"),
    ("q1 Q0 d1 1 1.0 x\nq1 Q0 d2 two 0.5 x\n", r"run.txt line 2: rank 'two' must be an integer"),
    ("q1 Q0 d1 1 nan x\n", r"run.txt line 1: score 'nan' is not a finite"),
    ("q1 Q0 d1 1 1.0 x\n\nq1 Q0 d1 2 0.5 x\n", r"run.txt line 3: docid 'd1' repeats for query 'q1' \(first on line 1\)"),
    ("q1 Q0 d9 1 1.0 x\n", r"run.txt: docid 'd9' \(query 'q1'\) is not in the corpus"),
    ("z1 Q0 d1 1 1.0 x\n", r"run.txt: no query id matches a query of dataset 'toy'"),
])
def test_malformed_trec_runs(tmp_path, content, message):
    path = tmp_path / "run.txt"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        first_stage(dataset(), str(path), pool=5)


def test_request_jsonl_round_trip_and_first_stage(tmp_path):
    lists = [CandidateList(Query("q1", "Where do zebras live?"),
                           [Candidate("d4", 0.5, Document("d4", "own text of the file", "T")),
                            Candidate("d1", 0.25, Document("d1", "zebra text"))]),
             CandidateList(Query("q2", "apple"), [])]
    path = tmp_path / "requests.jsonl"
    write_requests_jsonl(path, lists)
    assert [cl.to_request_json() for cl in read_requests_jsonl(path)] == [cl.to_request_json() for cl in lists]
    got = first_stage(dataset(), str(path), pool=1)
    assert docids(got[0]) == ["d4"]
    assert got[0].candidates[0].doc.text == "own text of the file"      # documents used as given
    assert got[0].query.qrels == {"d1": 1}                              # labels from the dataset
    assert got[1].candidates == [] and got[2].candidates == []


def test_malformed_request_jsonl(tmp_path):
    path = tmp_path / "requests.jsonl"
    good = json.dumps({"query": {"qid": "q1", "text": "t"}, "candidates": []})
    path.write_text(good + "\n{not json\n")
    with pytest.raises(UserError, match="requests.jsonl line 2: invalid JSON"):
        first_stage(dataset(), str(path), pool=5)
    path.write_text(good + "\n" + json.dumps({"query": {"text": "t"}, "candidates": []}) + "\n")
    with pytest.raises(UserError, match=r"requests.jsonl line 2: not a rank_llm Request .*'qid'"):
        first_stage(dataset(), str(path), pool=5)
    dup = {"query": {"qid": "q1", "text": "t"}, "candidates": [{"docid": "d1"}, {"docid": "d1"}]}
    path.write_text(json.dumps(dup) + "\n")
    with pytest.raises(UserError, match="line 1: query 'q1' lists a docid twice"):
        first_stage(dataset(), str(path), pool=5)


# --- dense ----------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_dense_retrieval_and_embedding_cache(tmp_path):
    import numpy as np

    from bench.encoders import BiEncoder

    lists = first_stage(dataset(), "dense", pool=3, cache_dir=tmp_path)
    assert docids(lists[0])[0] == "d1" and docids(lists[1])[0] == "d2" and docids(lists[2])[0] == "d5"
    assert all(len(cl.candidates) == 3 for cl in lists)                # exhaustive search: always `pool`
    [emb_file] = (tmp_path / "embeddings").glob("*.npy")
    encoder = BiEncoder.load(trust_remote_code=False)
    emb = encoder.encode_all([d.as_passage() for d in DOCS], batch_size=2)
    np.testing.assert_allclose(np.load(emb_file), emb, atol=1e-5)
    q = encoder.encode_all(["Where do zebras live?"])[0]
    assert lists[0].candidates[0].score == pytest.approx(float(q @ emb[0]), abs=1e-5)
    mtime = emb_file.stat().st_mtime_ns
    again = first_stage(dataset(), "dense", pool=2, cache_dir=tmp_path, batch_size=1)   # new pool, same corpus
    assert emb_file.stat().st_mtime_ns == mtime
    assert [docids(cl) for cl in again] == [docids(cl)[:2] for cl in lists]


def test_trec_run_non_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "run.trec"
    path.write_bytes(b"q1 Q0 d1 1 2.0 tag\nq1 Q0 d\xe92 2 1.0 tag\n")
    with pytest.raises(UserError) as err:
        read_trec_run(path)
    assert str(err.value) == f"{path} line 2: not UTF-8 text (byte 0xe9); expected a UTF-8 file"


# --- typed options (--first-stage-args) ------------------------------------------------------------------------------

def test_first_stage_args_are_typed_like_every_component_option(tmp_path):
    """``--first-stage-args bm25:k1=0.9,b=0.4`` reaches bm25s as numbers: the same rankings and cache entry as the
    numbers passed in code, and other rankings than the defaults."""
    from bench.cli import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(
        ["run", "--first-stage-args", "bm25:k1=0.9,b=0.4", "--rerankers", "none", "--reader", "none"]))
    assert config.data.first_stage_args == {"bm25": {"k1": "0.9", "b": "0.4"}}
    config.validate()
    from_flags = first_stage(dataset(), "bm25", pool=10, cache_dir=tmp_path, **config.data.first_stage_args["bm25"])
    in_code = first_stage(dataset(), "bm25", pool=10, cache_dir=tmp_path, k1=0.9, b=0.4)
    assert len(list((tmp_path / "first_stage").glob("*.jsonl"))) == 1       # one cache entry for both
    scores = [[c.score for c in cl.candidates] for cl in from_flags]
    assert scores == [[c.score for c in cl.candidates] for cl in in_code]
    assert scores != [[c.score for c in cl.candidates] for cl in first_stage(dataset(), "bm25", pool=10)]


@pytest.mark.parametrize("flag, message", [
    ("bm25:k1=big", "--first-stage-args bm25: k1='big': expected float"),
    ("bm25:k3=1", "--first-stage-args bm25: unknown option 'k3'; valid: k1, b, variant, stopwords, stemmer"),
    ("dense:model=x", "--first-stage-args dense: not a component of this run (bm25)"),
])
def test_bad_first_stage_args_fail_in_one_line(flag, message):
    from bench.cli import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(
        ["run", "--first-stage-args", flag, "--rerankers", "none", "--reader", "none"]))
    with pytest.raises(UserError) as err:
        config.validate()
    assert str(err.value) == message


def test_dense_default_is_the_encoders_checkpoint():
    from bench.encoders import MINILM_CHECKPOINT

    assert retrieval.DenseOptions().model == MINILM_CHECKPOINT
