"""Cascades: rerankers chained with a depth per stage, written ``NAME@N>NAME@N...`` (e.g. ``minilm@20>upr@5``, or
``monot5@100>duot5@10``): the first stage reranks the first stage's top N1, each later stage reranks the previous
stage's top N, and the candidates below a stage's depth keep the order the previous stage gave them. A cascade is a
reranker like any other: its spec names its records, rankings, TREC run and leaderboard row; each stage's time is a
line of the cost table (``stage_costs``).

The final ranking's scores only say its order (``bench.types.rank_scores``): the stages' scores are on different
scales. ``info["stages"]`` keeps, per stage, what each stage's own rankings carried (e.g. a listwise stage's malformed
windows).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from bench.errors import UserError
from bench.types import CandidateList, Ranking, rank_scores
from rerankers.base import Reranker

STAGE_SEPARATOR = ">"
_STAGE = re.compile(r"(?P<name>[^@>\s]+)@(?P<depth>[0-9]+)")


@dataclass(frozen=True)
class Stage:
    name: str          # a registered reranker name (not itself a cascade)
    depth: int         # how many of the previous stage's candidates this stage reranks

    def __str__(self) -> str:
        return f"{self.name}@{self.depth}"


def is_cascade(spec: str) -> bool:
    return STAGE_SEPARATOR in spec or "@" in spec


def parse_cascade(spec: str) -> list[Stage]:
    """The stages of ``NAME@N>NAME@N...``; anything else fails in one line saying the expected form. A stage reranks
    at most as many candidates as the stage before it passed on, so depths may not grow."""
    stages = []
    for part in spec.split(STAGE_SEPARATOR):
        m = _STAGE.fullmatch(part.strip())
        if not m or int(m["depth"]) < 1:
            raise UserError(f"reranker cascade {spec!r}: stage {part.strip()!r} is not NAME@N (N a positive number of "
                            f"candidates); expected e.g. minilm@20>upr@5")
        stages.append(Stage(m["name"], int(m["depth"])))
    for before, after in zip(stages, stages[1:]):
        if after.depth > before.depth:
            raise UserError(f"reranker cascade {spec!r}: stage {after} reranks more candidates than {before} passes "
                            f"on; depths must not grow")
    return stages


class Cascade(Reranker):
    kind = "cascade"

    def __init__(self, spec: str, stages: Sequence[tuple[Stage, Reranker]]):
        super().__init__()
        self.name = spec
        self.stages = list(stages)
        self._seconds = {str(stage): 0.0 for stage, _ in self.stages}

    @classmethod
    def build(cls, spec: str, make: Callable[[str], Reranker]) -> "Cascade":
        """The cascade of ``spec`` with each stage's reranker made by ``make(name)``."""
        return cls(spec, [(stage, make(stage.name)) for stage in parse_cascade(spec)])

    def rerank(self, lists: Sequence[CandidateList]) -> list[Ranking]:
        orders = [list(cl.candidates) for cl in lists]
        stage_info: list[list[dict]] = [[] for _ in lists]
        for stage, reranker in self.stages:
            heads = [CandidateList(cl.query, order[:stage.depth]) for cl, order in zip(lists, orders)]
            todo = [i for i, head in enumerate(heads) if head.candidates]
            t0 = time.perf_counter()
            rankings = reranker.rerank([heads[i] for i in todo])
            self._seconds[str(stage)] += time.perf_counter() - t0
            for i, ranking in zip(todo, rankings):
                by_id = {c.docid: c for c in heads[i].candidates}
                if sorted(ranking.docids) != sorted(by_id):
                    raise RuntimeError(f"cascade stage {stage}: query {ranking.qid}: the ranking is not a "
                                       f"permutation of the stage's candidates")
                orders[i] = [by_id[d] for d in ranking.docids] + orders[i][stage.depth:]
                stage_info[i].append({"stage": str(stage), **ranking.info})
        return [Ranking(qid=cl.query.qid, docids=[c.docid for c in order], scores=rank_scores(len(order)),
                        info={"stages": info}) for cl, order, info in zip(lists, orders, stage_info)]

    def identity(self) -> dict:
        return {"name": self.name, "stages": [{"depth": stage.depth, **reranker.identity()}
                                              for stage, reranker in self.stages]}

    def stage_costs(self) -> dict[str, float]:
        return dict(self._seconds)
