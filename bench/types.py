"""The small typed records that stages pass to each other.

Data flows one way: Dataset -> CandidateList (first stage) -> Ranking (reranker) -> Answer (reader)
-> QueryRecord (metrics) -> report.  Every record round-trips through JSON; CandidateList also reads and writes
rank_llm's Request JSONL (``{"query": {"text", "qid"}, "candidates": [{"docid", "score", "doc": {...}}]}``).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from bench.errors import UserError

# The relevance grades a qrels file may hold: TREC's scale runs from -2 (spam, the Web track) to 4 (the Web track's
# "navigational"); BEIR uses 0-2 and TREC DL 0-3. Anything else is a typo or a hostile file, and pytrec_eval's C
# code checks nothing (a grade beyond a C long ends in SystemError).
MIN_GRADE, MAX_GRADE = -2, 4
_GRADE = re.compile(r"[+-]?\d{1,3}")


def check_grade(value: object, where: str) -> int:
    """``value`` (an int, or its decimal text) as a grade in MIN_GRADE..MAX_GRADE, else a UserError naming ``where``
    (file and line)."""
    text = value.strip() if isinstance(value, str) else str(value) if type(value) is int else None
    if text is None or not _GRADE.fullmatch(text) or not MIN_GRADE <= int(text) <= MAX_GRADE:
        raise UserError(f"{where}: relevance grade {str(value)[:24]!r} is not an integer from {MIN_GRADE} to "
                        f"{MAX_GRADE}")
    return int(text)


class JsonRecord:
    """A dataclass record that round-trips through JSON as its fields (``asdict``); one whose JSON needs converting
    on the way in (ids to strings, optional keys) overrides ``from_json``."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  (every subclass is a dataclass)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Any:
        return cls(**obj)


@dataclass(frozen=True)
class Document(JsonRecord):
    docid: str
    text: str
    title: str = ""

    def as_passage(self) -> str:
        """Title and text as one passage, the way readers and rerankers see a document."""
        return f"{self.title}\n{self.text}" if self.title else self.text

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Document":
        return cls(docid=str(obj["docid"]), text=obj.get("text", ""), title=obj.get("title", ""))


def documents(docs: Sequence[str | tuple[str, str]], where: str = "docs") -> list[Document]:
    """Passages given in code as ``Document``s: plain strings get their position as id ("0", "1", ...), ``(id,
    text)`` pairs keep their id. Ids must be unique (a ranking is a permutation of them)."""
    out = []
    for i, doc in enumerate(docs):
        if isinstance(doc, str):
            out.append(Document(docid=str(i), text=doc))
        elif isinstance(doc, (tuple, list)) and len(doc) == 2 and all(isinstance(x, str) for x in doc):
            out.append(Document(docid=doc[0], text=doc[1]))
        else:
            raise UserError(f"{where}[{i}]: expected a string or an (id, text) pair of strings, got {doc!r:.80}")
    ids = [d.docid for d in out]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"{where}: document id {dup!r} is given twice; ids must be unique")
    return out


@dataclass
class Query(JsonRecord):
    """A question with its labels. ``answers`` (gold answers, aliases included) and ``qrels`` (docid -> grade) are
    labels: only metrics, the oracle and RRPO rewards may read them."""

    qid: str
    text: str
    answers: list[str] = field(default_factory=list)
    qrels: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Query":
        return cls(qid=str(obj["qid"]), text=obj["text"], answers=list(obj.get("answers", [])),
                   qrels={str(k): int(v) for k, v in obj.get("qrels", {}).items()})


@dataclass
class Candidate:
    docid: str
    score: float
    doc: Document


@dataclass
class CandidateList:
    """One query and its first-stage candidates, best first (rank_llm's Request)."""

    query: Query
    candidates: list[Candidate]

    def to_request_json(self) -> dict[str, Any]:
        """rank_llm Request JSON (labels are not part of that format and are left out)."""
        return {
            "query": {"text": self.query.text, "qid": self.query.qid},
            "candidates": [
                {"docid": c.docid, "score": c.score,
                 "doc": {"title": c.doc.title, "text": c.doc.text}} for c in self.candidates
            ],
        }

    @classmethod
    def from_request_json(cls, obj: dict[str, Any]) -> "CandidateList":
        """Read a rank_llm Request. ``doc`` may carry ``text``, ``contents`` or ``segment`` (all seen in rank_llm
        files), with an optional ``title``."""
        q = obj["query"]
        cands = []
        for c in obj["candidates"]:
            d = c.get("doc", {}) or {}
            text = d.get("text") or d.get("contents") or d.get("segment") or ""
            docid = str(c["docid"])
            cands.append(Candidate(docid=docid, score=float(c.get("score", 0.0)),
                                   doc=Document(docid=docid, text=text, title=d.get("title", "") or "")))
        return cls(query=Query(qid=str(q["qid"]), text=q["text"]), candidates=cands)


@dataclass
class Ranking(JsonRecord):
    """A reranker's output for one query: docids best first, with the backend's scores (same length).

    ``info`` carries per-query diagnostics of the backend, e.g. ``{"malformed_windows": 1}`` for listwise models.
    """

    qid: str
    docids: list[str]
    scores: list[float]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.docids) != len(self.scores):
            raise ValueError(f"Ranking {self.qid}: {len(self.docids)} docids but {len(self.scores)} scores")
        if len(set(self.docids)) != len(self.docids):
            raise ValueError(f"Ranking {self.qid}: duplicate docids")

    def run_scores(self) -> dict[str, float]:
        """Strictly decreasing scores by rank, so that tools which re-sort by score (trec_eval sorts ties by docid)
        keep exactly this order."""
        return dict(zip(self.docids, rank_scores(len(self.docids))))

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Ranking":
        return cls(qid=str(obj["qid"]), docids=list(obj["docids"]), scores=[float(s) for s in obj["scores"]],
                   info=dict(obj.get("info", {})))


@dataclass
class Answer(JsonRecord):
    """A reader's answer to one query from a ranked prefix of documents."""

    qid: str
    text: str
    docids: list[str]          # the documents the reader saw, in order
    prompt_hash: str           # hash of the prompt template (not of the filled prompt)
    usage: dict[str, int] = field(default_factory=dict)
    cached: bool = False
    error: str | None = None   # set when the reader's LLM call failed; the runner records the query as failed
    cache_key: str | None = None   # the LLM cache's key of the reader call (when its response is stored there)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Answer":
        return cls(qid=str(obj["qid"]), text=obj["text"], docids=list(obj.get("docids", [])),
                   prompt_hash=obj.get("prompt_hash", ""), usage=dict(obj.get("usage", {})),
                   cached=bool(obj.get("cached", False)), error=obj.get("error"), cache_key=obj.get("cache_key"))


@dataclass
class QueryRecord(JsonRecord):
    """Everything measured for one (dataset, reranker, reader, query): the unit a run appends to disk and the only
    source of every number in a report."""

    dataset: str
    reranker: str
    reader: str
    qid: str
    question: str
    gold_answers: list[str]
    ranking: list[str]                     # reranked docids, best first (the first `top_k` went to the reader)
    answer: str | None                     # None when the reader is "none"
    metrics: dict[str, float]
    status: str = "ok"                     # "ok", "failed" (retried by a re-run) or "no_candidates"
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def rank_scores(n: int) -> list[float]:
    """n, n-1, ..., 1: scores that only say the order (of a listwise reranker, a file without scores)."""
    return [float(n - i) for i in range(n)]
