"""Cascades (rerankers/cascade.py): the spec's parsing, each stage reranking the previous stage's top N, and a run end
to end (real MiniLM, then UPR on a tiny random LM) writing one leaderboard row named by the spec with a cost line per
stage."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.types import Candidate, CandidateList, Document, Query, Ranking
from benchmarks import tiny_models
from rerankers.base import Reranker, ranking_from_scores
from rerankers.cascade import Cascade, Stage, parse_cascade
from rerankers.registry import RerankerSettings, get_reranker, resolve
from tests.test_runner import write_dataset


def test_a_spec_parses_into_stages_with_depths():
    assert parse_cascade("minilm@20>upr@5") == [Stage("minilm", 20), Stage("upr", 5)]
    assert parse_cascade("monot5@100 > monot5@100 > upr@1") == [Stage("monot5", 100), Stage("monot5", 100),
                                                               Stage("upr", 1)]
    assert resolve("minilm@20>upr@5").kind == "cascade"


@pytest.mark.parametrize("spec, message", [
    ("minilm@20>upr", "reranker cascade 'minilm@20>upr': stage 'upr' is not NAME@N (N a positive number of "
                      "candidates); expected e.g. minilm@20>upr@5"),
    ("minilm@0>upr@0", "stage 'minilm@0' is not NAME@N"),
    ("minilm@5>upr@10", "reranker cascade 'minilm@5>upr@10': stage upr@10 reranks more candidates than minilm@5 "
                        "passes on; depths must not grow"),
    ("minilm@5>nope@2", "unknown reranker 'nope'"),
])
def test_a_bad_spec_fails_in_one_line(spec, message):
    with pytest.raises(UserError) as exc:
        resolve(spec)
    assert message in str(exc.value) and "\n" not in str(exc.value)


class ByDocid(Reranker):
    """Orders by docid, descending or ascending; records what it was given."""

    def __init__(self, descending: bool):
        super().__init__()
        self.descending = descending
        self.seen: list[list[str]] = []

    def rerank(self, lists):
        out = []
        for cl in lists:
            self.seen.append([c.docid for c in cl.candidates])
            keys = [int(c.docid[1:]) for c in cl.candidates]
            out.append(ranking_from_scores(cl, keys if self.descending else [-k for k in keys], info={"n": len(keys)}))
        return out


def candidate_list(n: int) -> CandidateList:
    return CandidateList(Query("q", "question"), [Candidate(f"d{i}", float(n - i), Document(f"d{i}", f"text {i}"))
                                                  for i in range(n)])


def test_each_stage_reranks_the_previous_stages_top_n_and_the_rest_keep_their_order():
    first, second = ByDocid(descending=True), ByDocid(descending=False)
    cascade = Cascade("a@5>b@3", [(Stage("a", 5), first), (Stage("b", 3), second)])
    [ranking] = cascade.rerank([candidate_list(8), CandidateList(Query("empty", "q"), [])][:1])
    assert first.seen == [["d0", "d1", "d2", "d3", "d4"]]
    assert second.seen == [["d4", "d3", "d2"]]          # the first stage's top 3
    assert ranking.docids == ["d2", "d3", "d4", "d1", "d0", "d5", "d6", "d7"]
    assert ranking.scores == [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    assert ranking.info == {"stages": [{"stage": "a@5", "n": 5}, {"stage": "b@3", "n": 3}]}
    assert set(cascade.stage_costs()) == {"a@5", "b@3"}


def test_a_query_without_candidates_skips_every_stage():
    first = ByDocid(descending=True)
    cascade = Cascade("a@5", [(Stage("a", 5), first)])
    [ranking] = cascade.rerank([CandidateList(Query("q", "question"), [])])
    assert first.seen == [] and ranking == Ranking("q", [], [], {"stages": []})


def test_a_stage_that_drops_a_candidate_is_an_error():
    class Drops(Reranker):
        def rerank(self, lists):
            return [Ranking(cl.query.qid, [c.docid for c in cl.candidates[1:]], [0.0] * (len(cl.candidates) - 1))
                    for cl in lists]

    with pytest.raises(RuntimeError, match="cascade stage x@3: query q: the ranking is not a permutation"):
        Cascade("x@3", [(Stage("x", 3), Drops())]).rerank([candidate_list(4)])


def test_a_cascade_runs_end_to_end_as_one_leaderboard_row_with_a_cost_line_per_stage(tmp_path):
    dataset = write_dataset(tmp_path)
    upr = tiny_models.qwen3_reranker(tmp_path / "tiny-lm")
    spec = "minilm@6>upr@3"
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "bench", "run", "--datasets", str(dataset), "--rerankers", "none", spec,
           "--checkpoint", f"upr={upr}", "--reader", "none", "--pool", "8", "--device", "cpu", "--output", str(out),
           "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [folder] = list(out.iterdir())

    with (folder / "leaderboard.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["reranker"] for r in rows] == ["none", spec]
    costs = json.loads((folder / "costs.json").read_text())["stage_seconds"]
    assert {f"rerank {spec}", f"rerank {spec} · minilm@6", f"rerank {spec} · upr@3"} <= set(costs)
    assert f"| rerank {spec} · upr@3 |" in (folder / "leaderboard.md").read_text()
    records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    assert sorted({r["reranker"] for r in records}) == sorted(["none", spec])
    trec = (folder / "runs" / f"toyqa__{spec}.trec").read_text().splitlines()
    assert trec and all(line.split()[-1] == spec for line in trec)

    # The final order, recomputed: MiniLM orders BM25's top 6, UPR orders MiniLM's top 3, the rest keep their order.
    corpus = {d["id"]: f"{d['title']}\n{d['text']}" for d in map(json.loads, (dataset / "corpus.jsonl").open())}
    first = {r["qid"]: r["docids"] for r in map(json.loads, (folder / "rankings" / "toyqa__none.jsonl").open())}
    cascade = {r["qid"]: r for r in map(json.loads, (folder / "rankings" / f"toyqa__{spec}.jsonl").open())}
    questions = {q["id"]: q["question"] for q in map(json.loads, (dataset / "test.jsonl").open())}
    minilm = get_reranker("minilm", RerankerSettings(device="cpu"))
    lm = get_reranker("upr", RerankerSettings(checkpoint=str(upr), device="cpu"))

    def order(reranker, qid, docids):
        scores = reranker.score_pairs([questions[qid]] * len(docids), [corpus[d] for d in docids])
        return [d for _, d in sorted(zip(scores, docids), key=lambda p: -p[0])]

    for qid, docids in first.items():
        after_minilm = order(minilm, qid, docids[:6]) + docids[6:]
        expected = order(lm, qid, after_minilm[:3]) + after_minilm[3:]
        assert cascade[qid]["docids"] == expected
        assert [s["depth"] for s in cascade[qid]["info"]["reranker"]["stages"]] == [6, 3]
    assert any(cascade[q]["docids"][:6] != first[q][:6] for q in first)    # the stages changed something
