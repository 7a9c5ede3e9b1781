"""Reference points every leaderboard needs: no reranking, a random order, and the oracle (label-sorted) order."""
from __future__ import annotations

import hashlib
from typing import Sequence

from bench.metrics import contains_answer
from bench.types import CandidateList, Ranking
from rerankers.base import Reranker, ranking_from_scores


class FirstStageOrder(Reranker):
    kind = "baseline"

    def rerank(self, lists: Sequence[CandidateList]) -> list[Ranking]:
        return [Ranking(qid=cl.query.qid, docids=[c.docid for c in cl.candidates],
                        scores=[c.score for c in cl.candidates]) for cl in lists]


class RandomOrder(Reranker):
    """Each candidate's score is a hash of (seed, qid, docid) in [0, 1): the order of a query is the same in every
    run and batch, whatever the order of lists or candidates, and changes with the seed."""

    kind = "baseline"

    def draw(self, qid: str, docid: str) -> float:
        digest = hashlib.sha256(f"{self.settings.seed}\x1f{qid}\x1f{docid}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2 ** 64

    def rerank(self, lists: Sequence[CandidateList]) -> list[Ranking]:
        return [ranking_from_scores(cl, [self.draw(cl.query.qid, c.docid) for c in cl.candidates]) for cl in lists]

    def identity(self) -> dict:
        return {**super().identity(), "seed": self.settings.seed}


class OracleOrder(Reranker):
    """Sorts by the query's qrel grade, highest first; a query without qrels but with gold answers puts the passages
    that contain a gold answer first. Ties (and queries without labels) keep first-stage order. ``info["labels"]``
    says which labels decided."""

    kind = "baseline"

    def rerank(self, lists: Sequence[CandidateList]) -> list[Ranking]:
        out = []
        for cl in lists:
            q = cl.query
            if q.qrels:
                labels, scores = "qrels", [float(q.qrels.get(c.docid, 0)) for c in cl.candidates]
            elif q.answers:
                labels = "answers"
                scores = [float(contains_answer(c.doc.as_passage(), q.answers)) for c in cl.candidates]
            else:
                labels, scores = "none", [0.0] * len(cl.candidates)
            out.append(ranking_from_scores(cl, scores, info={"labels": labels}))
        return out
