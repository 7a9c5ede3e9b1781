"""duoT5 (Pradeep et al., 2021, "The Expando-Mono-Duo Design Pattern"): a T5 asked whether Document0 is more relevant
than Document1, run on every ordered pair of the previous stage's top N.

Input and aggregation follow pygaggle's ``DuoT5`` (castorini/pygaggle, ``pygaggle/rerank/transformer.py``): the encoder
reads ``Query: {q} Document0: {d0} Document1: {d1} Relevant:`` (the whole string truncated to 512 tokens); the decoder
takes one step from the start token; p(d0 > d1) is the softmax over the ``▁false``/``▁true`` logits of that step,
keeping ``▁true``; a document's score is the symmetric sum over the N(N-1) ordered pairs, sum_j p(d_i > d_j) +
(1 - p(d_j > d_i)) (pygaggle's ``scores[d0] += p; scores[d1] += 1 - p``). The pairs of all queries are scored in
length-sorted batches. Candidates below the top N keep their order, scored -1, -2, ... below every duoT5 score (which
are >= 0), so a ranking's scores still fall.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import permutations
from typing import Any, Sequence

from bench.errors import UserError
from bench.types import CandidateList, Ranking
from rerankers.base import ranking_from_scores
from rerankers.monot5 import MonoT5

DUOT5_INPUT = "Query: {query} Document0: {doc0} Document1: {doc1} Relevant:"


@dataclass(frozen=True)
class DuoT5Options:
    top_n: int = 10        # candidates compared pairwise (rank_llm's and the paper's duo stage depth)


class DuoT5(MonoT5):
    kind = "pairwise"
    Options = DuoT5Options

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.options.top_n < 2:
            raise UserError(f"duoT5 top_n {self.options.top_n}: expected at least 2 candidates to compare")

    def identity(self) -> dict:
        return {**super().identity(), "top_n": self.options.top_n}

    def pair_length(self, query: str, pair: Any) -> int:
        return len(query) + len(pair[0]) + len(pair[1])

    def encode(self, queries: Sequence[str], pairs: Sequence[Any]) -> Any:
        texts = [DUOT5_INPUT.format(query=q, doc0=a, doc1=b) for q, (a, b) in zip(queries, pairs)]
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    def preferences(self, queries: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[float]:
        """p(d0 more relevant than d1) of each (query, (d0, d1))."""
        return [math.exp(s) for s in self.score_pairs(queries, pairs, progress=True)]

    def rerank(self, lists: Sequence[CandidateList]) -> list[Ranking]:
        n = self.options.top_n
        queries, pairs, owners = [], [], []
        for li, cl in enumerate(lists):
            head = cl.candidates[:n]
            for i, j in permutations(range(len(head)), 2):
                queries.append(cl.query.text)
                pairs.append((head[i].doc.as_passage(), head[j].doc.as_passage()))
                owners.append((li, i, j))
        sums = [[0.0] * min(n, len(cl.candidates)) for cl in lists]
        for (li, i, j), p in zip(owners, self.preferences(queries, pairs)):
            sums[li][i] += p
            sums[li][j] += 1.0 - p
        tail = [-1.0 - k for k in range(max((len(cl.candidates) for cl in lists), default=0))]
        return [ranking_from_scores(cl, s + tail[:len(cl.candidates) - len(s)], info={"duo_pairs": len(s) *
                                                                                       (len(s) - 1)})
                for cl, s in zip(lists, sums)]
