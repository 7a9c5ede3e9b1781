"""TREC Deep Learning passage ranking (DL19-DL22): topics, NIST qrels and first-stage candidates with their text.

A TREC DL folder holds (names as published, so a folder of downloaded files loads as it is):

* ``topics.<set>.txt`` — Anserini's topic file: ``qid<TAB>query text`` per line.
* ``qrels.<set>-passage.txt`` — the NIST judgements: ``qid iteration docid grade`` per line, grades 0-3.
* ``retrieve_results_<set>_top100.jsonl`` — rank_llm's cached first stage (BM25 or SPLADE++ ED top-100): one
  rank_llm Request per line, each candidate carrying its passage (``doc.contents`` for MS MARCO v1,
  ``doc.segment`` + ``doc.title`` for v2). These become the corpus and each query's ``given`` pool, so no MS MARCO
  index is needed.
* optional ``collection.tsv`` — the full MS MARCO v1 passage collection (``pid<TAB>passage``, from
  https://msmarco.z22.web.core.windows.net/msmarcoranking/collection.tar.gz) for users who retrieve themselves:
  when present it is the corpus (``--first-stage bm25``/``dense`` or a TREC run over it).

Only judged topics are evaluated (rank_llm and pyserini do the same). Conventions: nDCG@k on the graded labels,
binary measures (MAP, Recall, MRR) at grade >= 2 (trec_eval ``-l 2``): ``Dataset.relevance_level = 2``.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from bench.data.base import Dataset
from bench.data.loaders import column_lines, read_requests_jsonl
from bench.errors import UserError
from bench.types import Document, Query, check_grade

RELEVANCE_LEVEL = 2
COLLECTION_FILE = "collection.tsv"


def read_topics_tsv(path: Path) -> dict[str, str]:
    """qid -> query text, in file order, from ``qid<TAB>text`` lines."""
    topics: dict[str, str] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            qid, sep, text = line.rstrip("\n").partition("\t")
            if not sep or not qid.strip() or not text.strip():
                raise UserError(f"{path} line {lineno}: expected 'qid<TAB>query text'")
            topics[qid.strip()] = text.strip()
    return topics


def read_trec_qrels(path: Path) -> dict[str, dict[str, int]]:
    """qid -> {docid: grade} from ``qid iteration docid grade`` lines (trec_eval's qrels format)."""
    qrels: dict[str, dict[str, int]] = {}
    for lineno, (qid, _, docid, grade) in column_lines(path, "qid iteration docid grade"):
        qrels.setdefault(qid, {})[docid] = check_grade(grade, f"{path} line {lineno}")
    return qrels


def read_collection_tsv(path: Path) -> dict[str, Document]:
    """MS MARCO's ``pid<TAB>passage`` collection (8.8M lines for v1)."""
    csv.field_size_limit(sys.maxsize)
    corpus: dict[str, Document] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if len(row) != 2:
                raise UserError(f"{path} line {lineno}: expected 'pid<TAB>passage', got {len(row)} fields")
            corpus[row[0]] = Document(docid=row[0], text=row[1])
    return corpus


def load_trec_dl(folder: Path, topics_file: str, qrels_file: str, candidates_file: str, name: str,
                 split: str = "test") -> Dataset:
    if split != "test":
        raise UserError(f"{name}: TREC DL has one evaluation set; got split {split!r}: use --split test")
    topics = read_topics_tsv(folder / topics_file)
    qrels = read_trec_qrels(folder / qrels_file)
    unknown = sorted(set(qrels) - set(topics))
    if unknown:
        raise UserError(f"{folder / qrels_file}: query id {unknown[0]!r} is not in {folder / topics_file}")
    corpus: dict[str, Document] = {}
    candidates: dict[str, list[str]] = {}
    for cl in read_requests_jsonl(folder / candidates_file):
        if cl.query.qid not in qrels:
            continue
        candidates[cl.query.qid] = [c.docid for c in cl.candidates]
        for c in cl.candidates:
            corpus.setdefault(c.docid, c.doc)
    collection = folder / COLLECTION_FILE
    if collection.is_file():
        corpus = {**corpus, **read_collection_tsv(collection)}
    queries = [Query(qid=qid, text=text, qrels=qrels[qid]) for qid, text in topics.items() if qid in qrels]
    if not queries:
        raise UserError(f"{folder / qrels_file}: no judged topics")
    return Dataset(name=name, split=split, corpus=corpus, queries=queries, candidates=candidates,
                   relevance_level=RELEVANCE_LEVEL)
