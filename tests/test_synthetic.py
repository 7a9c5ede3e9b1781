"""The embedded ``fictional`` dataset: determinism, splits, the answer-bearing / topical / near-miss design, qrels,
and the property it exists for - BM25 does not put the answer-bearing passage first."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.data import load_dataset
from bench.data.synthetic import (ANSWER, ANSWER_GRADE, BACKGROUND, NEAR_MISS, RELATED, RELATED_GRADE, TOPICAL,
                                  TOPICAL_GRADE, UNKNOWN, generate, load_fictional)
from bench.errors import UserError

fresh = generate.__wrapped__          # bypass the cache, so determinism is really tested


def snapshot(collection):
    return ([(d.docid, d.title, d.text) for d in collection.corpus.values()],
            {s: [q.to_json() for q in qs] for s, qs in collection.splits.items()})


def test_same_seed_same_collection_other_seed_other():
    assert snapshot(fresh(0)) == snapshot(fresh(0))
    other = snapshot(fresh(1))
    assert other[0] != snapshot(fresh(0))[0]
    assert [q["text"] for q in other[1]["test"]] != [q["text"] for q in snapshot(fresh(0))[1]["test"]]


def test_split_sizes_and_registration():
    sizes = {split: len(load_fictional(split).queries) for split in ("train", "dev", "test")}
    assert sizes == {"train": 300, "dev": 100, "test": 100}
    ds = load_dataset("fictional")
    assert (ds.name, ds.split, len(ds.queries)) == ("fictional", "test", 100)
    all_qids = [q.qid for s in ("train", "dev", "test") for q in load_fictional(s).queries]
    assert len(set(all_qids)) == 500
    with pytest.raises(UserError, match="no split 'validation'; splits: train, dev, test"):
        load_fictional("validation")


def test_fictional_large_has_the_rrpo_split_sizes_and_its_own_collection():
    sizes = {split: len(load_dataset("fictional-large", split).queries) for split in ("train", "dev", "test")}
    assert sizes == {"train": 300, "dev": 200, "test": 500}
    large = load_dataset("fictional-large", "test")
    assert large.name == "fictional-large" and len({q.qid for q in large.queries}) == 500
    assert large.queries[-1].qid == "test-499"
    assert [q.text for q in large.queries[:100]] != [q.text for q in load_fictional("test").queries]
    with pytest.raises(UserError, match="dataset 'fictional-large' has no split 'validation'"):
        load_dataset("fictional-large", "validation")


def test_loaded_queries_are_copies():
    first = load_fictional("test")
    first.queries[0].qrels.clear()
    assert load_fictional("test").queries[0].qrels


def test_answer_topical_near_miss_design():
    collection = generate(0)
    docs_of: dict[str, dict[str, list[str]]] = {}
    for docid, (qid, role) in collection.roles.items():
        if role != BACKGROUND:
            docs_of.setdefault(qid, {}).setdefault(role, []).append(docid)
    for split, queries in collection.splits.items():
        for q in queries:
            roles = docs_of[q.qid]
            gold = [g.lower() for g in q.answers]

            def has_gold(docid: str) -> bool:
                return any(g in collection.corpus[docid].as_passage().lower() for g in gold)

            assert len(roles[ANSWER]) == 1, q.qid
            assert has_gold(roles[ANSWER][0]), (q.qid, q.answers)
            related = roles.get(RELATED, [])
            assert 1 <= len(roles[TOPICAL]) <= 3 and 1 <= len(roles[UNKNOWN]) <= 2
            assert len(related) <= 1 and 1 <= len(roles[NEAR_MISS]) <= 2
            useless = roles[TOPICAL] + roles[UNKNOWN] + related + roles[NEAR_MISS]
            assert not any(has_gold(d) for d in useless), q.qid
            # Qrels: answer-bearing is the single highest grade, then the topical ones (echoing or saying the fact
            # is unknown), then related; nothing else.
            assert q.qrels == {roles[ANSWER][0]: ANSWER_GRADE,
                               **{d: TOPICAL_GRADE for d in roles[TOPICAL] + roles[UNKNOWN]},
                               **{d: RELATED_GRADE for d in related}}
            assert ANSWER_GRADE > TOPICAL_GRADE > RELATED_GRADE >= 1
            # Topical passages are about the question's entity; near-miss ones name another entity.
            title = collection.corpus[roles[ANSWER][0]].title
            assert all(collection.corpus[d].title == title for d in roles[TOPICAL] + roles[UNKNOWN] + related)
            assert all(" mystery." in collection.corpus[d].text or collection.corpus[d].text.startswith("Nobody knows")
                       for d in roles[UNKNOWN])
            assert all(collection.corpus[d].title != title for d in roles[NEAR_MISS])


def test_answers_have_aliases_and_are_short():
    queries = [q for qs in generate(0).splits.values() for q in qs]
    assert all(1 <= len(q.answers[0].split()) <= 2 for q in queries)
    assert sum(len(q.answers) > 1 for q in queries) > len(queries) / 4      # persons and rivers carry aliases
    assert len({q.text.split()[0] for q in queries}) >= 5                   # many question forms


def test_bm25_ranks_topical_passages_above_the_answer():
    """BM25 (the first stage's configuration: bm25s, Lucene, k1 1.5, b 0.75, English stemmer and stopwords) retrieves
    the answer-bearing passage in its top 20 for nearly every test question, but ranks it first for less than
    half and in the top 3 for at most half; a near-miss passage reaches the top 3 for most."""
    import bm25s
    import Stemmer

    collection = generate(0)
    docids = list(collection.corpus)
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index(bm25s.tokenize([collection.corpus[d].as_passage() for d in docids], stopwords="en",
                                   stemmer=stemmer, show_progress=False), show_progress=False)
    queries = collection.splits["test"]
    results, _ = retriever.retrieve(bm25s.tokenize([q.text for q in queries], stopwords="en", stemmer=stemmer,
                                                   show_progress=False), k=20, show_progress=False)
    ranks, near_miss_in_top3 = [], 0
    for q, row in zip(queries, results):
        ranked = [docids[i] for i in row]
        answer = next(d for d, g in q.qrels.items() if g == ANSWER_GRADE)
        ranks.append(ranked.index(answer) + 1 if answer in ranked else None)
        near_miss_in_top3 += any(collection.roles[d] == (q.qid, NEAR_MISS) for d in ranked[:3])
    in_top20 = [r for r in ranks if r is not None]
    assert len(in_top20) >= 0.9 * len(queries)
    assert sum(r == 1 for r in in_top20) < 0.5 * len(queries)
    assert sum(r <= 3 for r in in_top20) <= 0.5 * len(queries)
    assert near_miss_in_top3 >= 0.5 * len(queries)


def test_ndcg_rewards_topical_passages_more_than_the_answer_alone():
    """The disagreement the dataset is built for: ranking the topical passages first (answer-bearing outside the top
    10) earns a higher mean nDCG@10 than ranking the answer-bearing passage first and nothing else relevant, though
    only the second puts the answer in the reader's top 3."""
    import pytrec_eval

    queries = generate(0).splits["test"]
    ungraded = [f"other{i}" for i in range(10)]
    topical_first, answer_first = {}, {}
    for q in queries:
        graded = sorted(q.qrels, key=lambda d: -q.qrels[d])
        answer, topical = graded[0], graded[1:]
        topical_first[q.qid] = topical + ungraded[:10 - len(topical)] + [answer]
        answer_first[q.qid] = [answer] + ungraded + topical
    evaluator = pytrec_eval.RelevanceEvaluator({q.qid: q.qrels for q in queries}, {"ndcg_cut.10"})

    def mean_ndcg(run):
        scores = evaluator.evaluate({qid: {d: float(len(ids) - i) for i, d in enumerate(ids)}
                                     for qid, ids in run.items()})
        return sum(v["ndcg_cut_10"] for v in scores.values()) / len(scores)

    assert mean_ndcg(topical_first) > mean_ndcg(answer_first) + 0.05


def test_role_table_of_a_run():
    """benchmarks/fictional_roles.py: mean rank per role over a question's own passages only (another question's
    answer-bearing passage in the pool does not count), top-k shares, and 'says unknown' split by context."""
    from benchmarks.fictional_roles import role_table

    roles = {"a": ("q1", ANSWER), "t": ("q1", TOPICAL), "u": ("q1", UNKNOWN), "n": ("q1", NEAR_MISS),
             "x": ("q2", ANSWER), "b": ("", BACKGROUND)}
    records = [
        {"reader": "r", "reranker": "A", "qid": "q1", "ranking": ["t", "a", "u", "n", "b"], "answer": "A mystery."},
        {"reader": "r", "reranker": "A", "qid": "q2", "ranking": ["a", "b", "x"], "answer": "Quenlith"},
        {"reader": "r", "reranker": "B", "qid": "q1", "ranking": ["b", "n", "t", "u", "a"], "answer": "Darnhollow"},
    ]
    table = role_table(records, roles, top_k=3).set_index("reranker")
    a, b = table.loc["A"], table.loc["B"]
    assert a["rank answer"] == 2.5 and a["rank topical"] == 1.0 and a["rank unknown"] == 3.0
    assert a["rank near_miss"] == 4.0 and a["answer in top 3"] == 1.0 and a["near-miss in top 3"] == 0.0
    assert a["says unknown (unknown-fact in top 3)"] == 1.0 and a["says unknown (otherwise)"] == 0.0
    assert b["rank answer"] == 5.0 and b["answer in top 3"] == 0.0 and b["near-miss in top 3"] == 1.0
    assert pd.isna(b["says unknown (unknown-fact in top 3)"]) and b["says unknown (otherwise)"] == 0.0


def test_role_script_reads_fictional_large_runs_with_their_own_collection(tmp_path, capsys):
    """fictional-large is another collection than fictional (same seed, other split sizes): its records must be read
    against its own roles, or the answer passage of test-000 would not be found."""
    from benchmarks.fictional_roles import main

    query = load_dataset("fictional-large", "test").queries[0]
    ranking = sorted(query.qrels, key=lambda d: -query.qrels[d])          # answer-bearing first, as the oracle
    (tmp_path / "config.json").write_text(json.dumps({"top_k": 3}))
    (tmp_path / "records.jsonl").write_text(json.dumps(
        {"dataset": "fictional-large", "reader": "r", "reranker": "oracle", "qid": query.qid, "ranking": ranking,
         "answer": "x", "status": "ok"}) + "\n")
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fictional-large\n")
    row = next(line for line in out.splitlines() if "oracle" in line).split("|")
    assert row[3].strip() == "1.000"                                    # rank of the answer-bearing passage
