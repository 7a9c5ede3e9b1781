"""The Dataset record every loader returns, and the registry of dataset names (``bench.registry.Registry``, kind
``dataset``; plugins: entry-point group ``rerank_bench.datasets``, each a loader as below)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

from bench.errors import UserError
from bench.registry import Registry
from bench.hashing import stable_hash
from bench.types import Document, Query, check_grade


@dataclass
class Dataset:
    """A corpus with the queries of one split. Each query carries its gold answers and qrels.

    ``candidates``: for datasets whose questions come with their own passages (HotpotQA distractor), the docids of
    each query's own pool (qid -> docids in the given order); the ``given`` first stage ranks exactly those.

    ``relevance_level``: the lowest grade the binary measures (MAP, Recall, MRR) count as relevant: 1 for most sets,
    2 for TREC Deep Learning (trec_eval ``-l 2``). nDCG always uses the graded labels.
    """

    name: str
    split: str
    corpus: dict[str, Document]
    queries: list[Query]
    candidates: dict[str, list[str]] = field(default_factory=dict)
    relevance_level: int = 1

    @property
    def has_answers(self) -> bool:
        return any(q.answers for q in self.queries)

    def corpus_fingerprint(self) -> str:
        h = hashlib.sha256()
        for docid, doc in self.corpus.items():
            h.update("\x1f".join((docid, doc.title, doc.text)).encode())
            h.update(b"\x1e")
        return h.hexdigest()[:16]

    def fingerprint(self) -> str:
        """Everything a run's records depend on: corpus, queries, gold answers, qrels and given candidates."""
        # relevance_level joins the hash only when it is not the default, so fingerprints of existing runs hold
        return stable_hash({"corpus": self.corpus_fingerprint(), "candidates": self.candidates,
                            "queries": [(q.qid, q.text, q.answers, q.qrels) for q in self.queries],
                            **({"relevance_level": self.relevance_level} if self.relevance_level != 1 else {})})

    def validate(self) -> None:
        """The types and shapes every later stage relies on, checked once at load (whatever loader made the
        dataset, plugins included): string ids and texts, a list of string answers, grades in range, and at least
        one document with text. The first offence is a one-line UserError."""
        where = f"dataset {self.name!r} ({self.split})"
        for docid, doc in self.corpus.items():
            if not isinstance(docid, str) or not isinstance(doc.docid, str):
                raise UserError(f"{where}: document id {docid!r} is a {type(docid).__name__}, expected a string")
            for field_name in ("title", "text"):
                value = getattr(doc, field_name)
                if not isinstance(value, str):
                    raise UserError(f"{where}: document {docid!r} has a {type(value).__name__} as {field_name}, "
                                    f"expected a string")
        # (a closed-book dataset has no corpus at all; one whose documents are all blank has nothing to retrieve)
        if self.corpus and not any(doc.text.strip() or doc.title.strip() for doc in self.corpus.values()):
            raise UserError(f"{where}: every document's title and text are empty; expected some text to retrieve")
        for q in self.queries:
            if not isinstance(q.qid, str):
                raise UserError(f"{where}: query id {q.qid!r} is a {type(q.qid).__name__}, expected a string")
            if not isinstance(q.text, str) or not q.text.strip():
                raise UserError(f"{where}: query {q.qid!r} has text {str(q.text)[:40]!r}, expected a non-empty "
                                f"string")
            if not isinstance(q.answers, list) or not all(isinstance(a, str) for a in q.answers):
                raise UserError(f"{where}: query {q.qid!r}: gold answers must be a list of strings")
            for docid, grade in q.qrels.items():
                check_grade(grade, f"{where}: qrels of query {q.qid!r}, document {docid!r}")

    def limit(self, n: int | None) -> "Dataset":
        """The first ``n`` queries (all when n is None)."""
        if n is None:
            return self
        qs = self.queries[:n]
        keep = {q.qid for q in qs}
        return Dataset(self.name, self.split, self.corpus, qs,
                       {k: v for k, v in self.candidates.items() if k in keep}, self.relevance_level)


DatasetLoader = Callable[..., Dataset]
DATASETS = Registry("dataset")


def register_dataset(name: str, description: str,
                     aliases: tuple[str, ...] = ()) -> Callable[[DatasetLoader], DatasetLoader]:
    """Register ``loader(split=..., cache_dir=..., [data_dir=...]) -> Dataset`` under a name (and ``aliases``)
    usable as ``--datasets NAME``."""
    return DATASETS.register(name, aliases=aliases, description=description)


def unknown_dataset(name: str) -> UserError:
    return UserError(f"unknown dataset {name!r}: {DATASETS.did_you_mean(name)}not a registered name "
                     f"({', '.join(DATASETS.names())}) nor an existing path")
