"""Utility labels (eRAG, Salemi & Zamani, SIGIR 2024): what each passage is worth to the reader.

For a question and a passage, the reader answers from that passage alone (the reader's own prompt with one
document: the request a top-1 run sends for that passage, so the shared LLM cache serves either from the other), and
the answer's metrics against the gold answers are the passage's utility: 0/1 for accuracy and EM, graded for F1. A
(question, passage) pair is read once, however many rerankers rank it; labels are kept per (dataset, reader) in
``utility/<dataset>__<reader>.jsonl`` and as TREC qrels per label metric, so a reranker added later is judged by eRAG
(``bench.metrics.erag_metrics``) reading only the pairs no earlier reranker brought into the top depth.

``oracle-utility`` is the upper bound by utility: every candidate read alone, those the reader answers correctly
from first (the relevance ``oracle`` sorts by assessors' labels instead).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from bench.errors import UserError
from bench.metrics import UTILITY_LABELS, answer_metrics, is_binary_metric
from bench.prompts import load_template
from bench.readers import Reader
from bench.types import CandidateList, Document, JsonRecord, Query, Ranking
from rerankers.base import Reranker, ranking_from_scores

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class UtilityLabel(JsonRecord):
    """The reader's answer to one question from one passage alone, and its metrics against the gold answers."""

    qid: str
    docid: str
    answer: str
    metrics: dict[str, float]
    prompt: str                        # the reader template's tag
    cache_key: str | None = None       # the LLM cache's key of the call (its exact request and response)
    status: str = "ok"                 # ok | failed (retried by the next run)
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def file_stem(dataset: str, reader: str) -> str:
    """``<dataset>__<reader>`` with characters a file name should not hold (``openai:x``, paths) replaced."""
    return f"{_UNSAFE.sub('_', Path(dataset).name)}__{_UNSAFE.sub('_', reader)}"


def labels_path(out_dir: Path, dataset: str, reader: str) -> Path:
    return out_dir / "utility" / f"{file_stem(dataset, reader)}.jsonl"


def qrels_path(out_dir: Path, dataset: str, reader: str, label: str) -> Path:
    return out_dir / "utility" / f"{file_stem(dataset, reader)}__{label}.qrels"


def utility_pairs(rankings: Iterable[tuple[str, Sequence[str]]], depth: int) -> dict[str, list[str]]:
    """qid -> the union of the top ``depth`` docids of every (qid, ranking) given, in first-seen order."""
    pairs: dict[str, dict[str, None]] = {}
    for qid, docids in rankings:
        for d in docids[:depth]:
            pairs.setdefault(qid, {})[d] = None
    return {q: list(ds) for q, ds in pairs.items()}


def read_alone(reader: Reader, pairs: Sequence[tuple[Query, Document]]) -> list[UtilityLabel]:
    """The reader's answer from each passage alone, scored against the question's gold answers (one engine call for
    all pairs, so the engine batches them and the cache asks only those it has not seen)."""
    answers = reader.answer([q for q, _ in pairs], [[doc] for _, doc in pairs])
    out = []
    for (q, doc), a in zip(pairs, answers):
        ok = a.error is None
        out.append(UtilityLabel(qid=q.qid, docid=doc.docid, answer=a.text,
                                metrics=answer_metrics(a.text, q.answers) if ok else {}, prompt=a.prompt_hash,
                                cache_key=a.cache_key, status="ok" if ok else "failed", error=a.error,
                                info={"cached": a.cached, "usage": a.usage}))
    return out


def label_values(labels: Iterable[UtilityLabel], label: str) -> dict[str, dict[str, float]]:
    """qid -> docid -> the ``label`` metric of each answered pair."""
    out: dict[str, dict[str, float]] = {}
    for lab in labels:
        if lab.status == "ok" and label in lab.metrics:
            out.setdefault(lab.qid, {})[lab.docid] = lab.metrics[label]
    return out


def qrels_text(labels: Iterable[UtilityLabel], label: str) -> str:
    """TREC qrels lines ``qid 0 docid value``: integers for a 0/1 metric, the graded value (``repr``) otherwise."""
    binary = is_binary_metric(label)
    lines = []
    for qid, docs in label_values(labels, label).items():
        for docid, value in docs.items():
            lines.append(f"{qid} 0 {docid} {int(value) if binary else repr(float(value))}\n")
    return "".join(lines)


@dataclass(frozen=True)
class OracleUtilityOptions:
    reader: str = "smollm2"            # the run's first reader unless given (bench.builder)
    reader_template: str = "reader-qa"
    reader_max_tokens: int = 32
    label: str = "accuracy"            # the answer metric of the single-passage answer that orders the candidates


class OracleUtilityOrder(Reranker):
    """Upper bound by utility: each candidate is read alone by the run's reader (its prompt and length cap), and the
    candidates are sorted by the ``label`` metric of that answer, highest first; ties keep first-stage order. A
    failed read scores 0 and is counted in ``info["failed_reads"]``; a query without gold answers keeps first-stage
    order."""

    kind = "baseline"
    Options = OracleUtilityOptions
    registry_meta = {"kind": "baseline", "description": "Upper bound by utility: candidates the reader answers "
                                                        "correctly from alone first (eRAG labels, --reader's prompt)"}

    def __init__(self, checkpoint: str | None = None, settings=None):
        super().__init__(checkpoint, settings)
        if self.options.label not in UTILITY_LABELS:
            raise UserError(f"--reranker-args oracle-utility:label={self.options.label}: expected one of "
                            f"{', '.join(UTILITY_LABELS)}")
        if self.options.reader == "none":
            raise UserError("reranker 'oracle-utility' reads every candidate with the reader: give a --reader, or "
                            "--reranker-args oracle-utility:reader=SPEC")
        if self.settings.engine_factory is None:
            raise UserError("reranker 'oracle-utility' needs the run's LLM engines (build it through bench.builder)")

    def identity(self) -> dict:
        return {**super().identity(), "reader": self.options.reader, "template": self.options.reader_template,
                "max_tokens": self.options.reader_max_tokens, "label": self.options.label}

    def rerank(self, lists: Sequence[CandidateList]) -> list[Ranking]:
        o = self.options
        reader = Reader(self.settings.engine_factory(o.reader), load_template(o.reader_template),
                        max_tokens=o.reader_max_tokens)
        labelled = [cl for cl in lists if cl.query.answers]
        read = read_alone(reader, [(cl.query, c.doc) for cl in labelled for c in cl.candidates])
        by_pair = {(lab.qid, lab.docid): lab for lab in read}
        out = []
        for cl in lists:
            labs = [by_pair.get((cl.query.qid, c.docid)) for c in cl.candidates]
            scores = [lab.metrics.get(o.label, 0.0) if lab is not None else 0.0 for lab in labs]
            info = {"labels": "utility" if cl.query.answers else "none",
                    "failed_reads": sum(lab is not None and lab.status != "ok" for lab in labs)}
            out.append(ranking_from_scores(cl, scores, info=info))
        return out


def summarize_costs(pairs: Mapping[str, Sequence[str]], labelled_before: set[tuple[str, str]],
                    by_reranker: Mapping[str, Mapping[str, Sequence[str]]], new_rerankers: Sequence[str],
                    top_k: int) -> dict[str, Any]:
    """What the labels of one (dataset, reader) cost: pairs in the union, labelled by an earlier invocation, read now;
    per reranker judged by eRAG only (``new_rerankers``), its top-depth pairs, how many were already labelled (by
    earlier runs or the other rerankers of this one) and the end-to-end reading it was spared (one call of ``top_k``
    passages per question)."""
    total = sum(len(ds) for ds in pairs.values())
    seen = sum((q, d) in labelled_before for q, ds in pairs.items() for d in ds)
    out: dict[str, Any] = {"pairs": total, "labelled_before": seen, "read_now": total - seen, "rerankers": {}}
    others = {(q, d) for name, ranked in by_reranker.items() if name not in new_rerankers
              for q, ds in ranked.items() for d in ds} | labelled_before
    for name in new_rerankers:
        ranked = by_reranker.get(name, {})
        own = [(q, d) for q, ds in ranked.items() for d in ds]
        new = sum(p not in others for p in own)
        out["rerankers"][name] = {"questions": len(ranked), "top_depth_pairs": len(own), "new_pairs": new,
                                  "end_to_end_calls": len(ranked), "end_to_end_passages": len(ranked) * top_k,
                                  "calls_saved": len(ranked) - new}
    return out
