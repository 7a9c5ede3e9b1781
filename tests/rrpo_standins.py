"""Tiny stand-ins for RRPO tests: a trainable pointwise reranker over numbered documents and a reader whose answer
says whether a target document is in the prefix. Real enough to train in milliseconds, deterministic."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from bench.types import Answer, Candidate, CandidateList, Document, Query
from rerankers.base import PointwiseReranker
from rerankers.registry import RERANKERS, RerankerSpec

STANDIN_NAME = "rrpo-test-table"


class TableModel(nn.Module):
    """score(doc i) = MLP(fixed random embedding of i): parameter names like a transformer's (``layer.<i>.``)."""

    def __init__(self, n_docs: int = 8, dim: int = 6, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embeddings = nn.Parameter(torch.randn(n_docs, dim, generator=g), requires_grad=False)
        self.layer = nn.ModuleList([nn.Linear(dim, dim), nn.Linear(dim, 1)])
        with torch.no_grad():
            for p in self.layer.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, doc_ids: torch.Tensor) -> torch.Tensor:
        return self.layer[1](torch.tanh(self.layer[0](self.embeddings[doc_ids]))).squeeze(-1)


class TableReranker(PointwiseReranker):
    """Passages end in ``doc<i>`` (a title may come first); the query is ignored."""

    def __init__(self, checkpoint: str | None = None, settings=None):
        super().__init__(checkpoint, settings)
        self._model = TableModel()

    @property
    def model(self):
        return self._model

    def score(self, queries: Sequence[str], passages: Sequence[str]):
        return self._model(torch.tensor([int(p.rpartition("doc")[2]) for p in passages]))


def register_standin() -> None:
    RERANKERS[STANDIN_NAME] = RerankerSpec(STANDIN_NAME, TableReranker, None, "pointwise", None, "test stand-in")


def candidate_list(qid: str, n_docs: int = 8) -> CandidateList:
    docs = [Document(docid=f"d{i}", text=f"doc{i}") for i in range(n_docs)]
    return CandidateList(Query(qid=qid, text=f"question {qid}", answers=["yes"]),
                         [Candidate(d.docid, float(n_docs - i), d) for i, d in enumerate(docs)])


class TargetReader:
    """Answers "yes" when document ``target`` is among the documents shown, else "no". Remembers what it was asked,
    like the LLM cache: a repeated (question, prefix) comes back ``cached``. ``calls`` counts answer() calls;
    ``asked`` every (qid, docids) it received."""

    def __init__(self, target: str = "d5"):
        self.target = target
        self.calls = 0
        self.asked: list[tuple[str, tuple[str, ...]]] = []
        self._seen: set[tuple[str, tuple[str, ...]]] = set()

    def answer(self, queries: Sequence[Query], docs_lists: Sequence[Sequence[Document]]) -> list[Answer]:
        self.calls += 1
        out = []
        for q, docs in zip(queries, docs_lists):
            key = (q.qid, tuple(d.docid for d in docs))
            self.asked.append(key)
            out.append(Answer(qid=q.qid, text="yes" if self.target in key[1] else "no", docids=list(key[1]),
                              prompt_hash="test", cached=key in self._seen))
            self._seen.add(key)
        return out


def yes_metric(queries, predictions) -> list[float]:
    return [1.0 if p == "yes" else 0.0 for p in predictions]
