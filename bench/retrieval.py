"""First-stage retrieval: a Dataset -> one CandidateList per query (``pool`` candidates, best first).

Methods (``first_stage(dataset, method, pool, cache_dir, **params)``; the names are registered in ``FIRST_STAGES``):

- ``bm25``: bm25s with Lucene scoring, k1=1.5, b=0.75, PyStemmer's English stemmer and English stopwords over
  title + text: the configuration of xhluca/bm25-benchmarks (``benchmark/on_bm25s.py``; SciFact nDCG@10 0.687).
  Documents that share no term with the query (score 0) are left out: their order would be arbitrary.
- ``dense``: a bi-encoder (all-MiniLM-L6-v2 by default, ``bench.encoders``), cosine similarity, exhaustive search;
  corpus embeddings are cached as ``.npy`` under ``<cache_dir>/embeddings``.
- ``given``: the dataset's own per-query pools (``Dataset.candidates``, e.g. HotpotQA distractor), in the given
  order.
- a path: a TREC run file (``qid Q0 docid rank score tag``; documents looked up in the corpus), a rank_llm Request
  JSONL file, or a RankGPT / FIRST hits file (a JSON list, or JSONL, of ``{"query": text, "hits": [{"qid", "docid",
  "rank", "score", "content"}, ...]}`` as RankGPT's ``run_retriever`` writes it; the passage is ``content``).
  Request and hits files bring their documents' text. Queries of the dataset that the file lacks get an empty list.

Candidates from bm25, dense and TREC runs are ordered by score, ties by the order the method produced them (a TREC
file's rank column); hits by their ``rank``; Request JSONL and given pools keep their own order. ``bm25`` and
``dense`` results are cached as ``<cache_dir>/first_stage/<key>.jsonl`` (one ``Ranking`` JSON per query), the key
built from the dataset name, split, corpus and query fingerprints, method, pool, parameters and the model's (or
bm25s') version; ``given`` and files are read directly.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from bench.data.base import Dataset
from bench.data.loaders import column_lines, decode_utf8, read_jsonl, read_requests_jsonl, text_lines
from bench.environment import resolve_device, resolve_dtype
from bench.errors import UserError
from bench.files import atomic_write
from bench.hashing import stable_hash
from bench.options import typed_options
from bench.registry import Registry
from bench.types import Candidate, CandidateList, Document, Query, Ranking, rank_scores

log = logging.getLogger(__name__)

BM25_VARIANTS = ("lucene", "robertson", "atire", "bm25l", "bm25+")   # bm25s' scoring methods
# bench.encoders' default checkpoint, named here so that listing the options imports no torch
DENSE_CHECKPOINT = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class BM25Options:
    """``--first-stage-args bm25:k1=0.9,b=0.4`` (pyserini's MS MARCO setting); every field is in the cache key, in
    this order."""

    k1: float = 1.5
    b: float = 0.75
    variant: str = "lucene"
    stopwords: str | None = "en"
    stemmer: str | None = "english"


@dataclass(frozen=True)
class DenseOptions:
    """``--first-stage-args dense:model=...``; ``device``, ``dtype`` and ``batch_size`` do not change the results and
    stay out of the cache key."""

    model: str = DENSE_CHECKPOINT
    max_length: int | None = None
    device: str = "auto"
    dtype: str = "float32"
    batch_size: int = 64


DENSE_RUNTIME = ("device", "dtype", "batch_size")


@dataclass(frozen=True)
class NoOptions:
    """A first stage without options (``given``, a file of candidates)."""


def first_stage(dataset: Dataset, method: str, pool: int, cache_dir: str | os.PathLike | None = None,
                **params: Any) -> list[CandidateList]:
    """One CandidateList per query of ``dataset`` (same order), at most ``pool`` candidates each, best first.
    ``method``: a registered first stage (``FIRST_STAGES``, plugins included) or the path of a file of candidates."""
    if pool < 1:
        raise UserError(f"first-stage pool {pool}: expected a positive number of candidates")
    check_first_stage(method)
    if method in FIRST_STAGES:
        return FIRST_STAGES.load(method)(dataset, pool, cache_dir, **params)
    first_stage_options(method, params)
    return candidates_from_file(dataset, Path(method), pool)


def check_first_stage(method: str) -> None:
    """A registered first stage or the path of a file of candidates, parsed now (a malformed line fails before the
    run folder is made); anything else fails in one line."""
    if method in FIRST_STAGES:
        return
    if not Path(method).is_file():
        raise UserError(f"first stage {method!r}: {FIRST_STAGES.did_you_mean(method)}expected one of "
                        f"{', '.join(FIRST_STAGES.names())} or the path of a TREC run / Request JSONL file")
    path = Path(method)
    read_candidate_file(path) if holds_json_candidates(path) else read_trec_run(path)


def bm25_first_stage(dataset: Dataset, pool: int, cache_dir: str | os.PathLike | None = None,
                     **params: Any) -> list[CandidateList]:
    options = asdict(first_stage_options("bm25", params))
    return _cached(dataset, "bm25", pool, cache_dir, {**options, "bm25s": _bm25s_version()},
                   lambda: bm25_rankings(dataset, pool, **options))


def dense_first_stage(dataset: Dataset, pool: int, cache_dir: str | os.PathLike | None = None,
                      **params: Any) -> list[CandidateList]:
    from bench.encoders import checkpoint_digest   # torch, only when dense retrieval runs

    options = asdict(first_stage_options("dense", params))
    runtime = {k: options.pop(k) for k in DENSE_RUNTIME}
    return _cached(dataset, "dense", pool, cache_dir, {**options, "weights": checkpoint_digest(options["model"])},
                   lambda: dense_rankings(dataset, pool, cache_dir, **options, **runtime))


def given_first_stage(dataset: Dataset, pool: int, cache_dir: str | os.PathLike | None = None,
                      **params: Any) -> list[CandidateList]:
    first_stage_options("given", params)
    return given_candidates(dataset, pool)


# A first stage: (dataset, pool, cache_dir, **options) -> one CandidateList per query. Plugins: entry-point group
# rerank_bench.first_stages.
FIRST_STAGES = Registry("first stage")
# Plugins: entry-point group rerank_bench.first_stages; ``options`` in their registry_meta types their options.
FIRST_STAGES = Registry("first stage")
FIRST_STAGES.add("bm25", bm25_first_stage, options=BM25Options,
                 description="bm25s, Lucene scoring (k1=1.5, b=0.75), English stemming")
FIRST_STAGES.add("dense", dense_first_stage, options=DenseOptions,
                 description="all-MiniLM-L6-v2 bi-encoder, exhaustive cosine search")
FIRST_STAGES.add("given", given_first_stage, options=NoOptions,
                 description="the dataset's own per-query pools (HotpotQA distractor)")


def first_stage_options(method: str, params: dict[str, Any]) -> Any:
    """The typed options of a first stage (strings from ``--first-stage-args`` converted, like every component's
    options); a file of candidates takes none; a plugin without an ``options`` class gets ``params`` as given."""
    cls = FIRST_STAGES.meta(method).get("options") if method in FIRST_STAGES else NoOptions
    return params if cls is None else typed_options(cls, params, f"--first-stage-args {method}")


# --- fingerprints and cache ------------------------------------------------------------------------------------------

def queries_fingerprint(dataset: Dataset) -> str:
    return stable_hash([(q.qid, q.text) for q in dataset.queries])


def _bm25s_version() -> str:
    return version("bm25s")


def first_stage_cache_path(cache_dir: str | os.PathLike, dataset: Dataset, method: str, pool: int,
                           key: dict[str, Any]) -> Path:
    """``key``: everything besides the dataset that determines the results (options, model digest, versions)."""
    digest = stable_hash({"dataset": dataset.name, "split": dataset.split, "corpus": dataset.corpus_fingerprint(),
                          "queries": queries_fingerprint(dataset), "method": method, "pool": pool, "key": key})
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.name).strip("_")[-40:]
    return Path(cache_dir) / "first_stage" / f"{name}.{dataset.split}.{method}.{digest}.jsonl"


def _cached(dataset: Dataset, method: str, pool: int, cache_dir: str | os.PathLike | None, key: dict[str, Any],
            compute: Callable[[], dict[str, Ranking]]) -> list[CandidateList]:
    path = first_stage_cache_path(cache_dir, dataset, method, pool, key) if cache_dir is not None else None
    if path is not None and path.is_file():
        rankings = {obj["qid"]: Ranking.from_json(obj)
                    for _, obj in read_jsonl(path, ("qid", "docids", "scores"), "a Ranking JSON (first-stage cache)")}
        log.info("first stage %s: %d queries from cache %s", method, len(rankings), path)
    else:
        rankings = compute()
        if path is not None:
            _write_lines(path, (json.dumps(r.to_json()) for r in rankings.values()))
    origin = f"first stage {method}"
    return _assemble(dataset, {q: _corpus_candidates(dataset, r, origin) for q, r in rankings.items()}, pool, origin)


def _corpus_candidates(dataset: Dataset, ranking: Ranking, origin: str) -> list[Candidate]:
    out = []
    for docid, score in zip(ranking.docids, ranking.scores):
        doc = dataset.corpus.get(docid)
        if doc is None:
            raise UserError(f"{origin}: docid {docid!r} (query {ranking.qid!r}) is not in the corpus of dataset "
                            f"{dataset.name!r}")
        out.append(Candidate(docid=docid, score=score, doc=doc))
    return out


def _assemble(dataset: Dataset, candidates: dict[str, list[Candidate]], pool: int,
              origin: str) -> list[CandidateList]:
    """The dataset's queries (with their labels), in dataset order, each with its first ``pool`` candidates."""
    if dataset.queries and not any(q.qid in candidates for q in dataset.queries):
        raise UserError(f"{origin}: no query id matches a query of dataset {dataset.name!r} ({dataset.split}), "
                        f"e.g. {dataset.queries[0].qid!r}")
    missing = [q.qid for q in dataset.queries if q.qid not in candidates]
    if missing:
        log.warning("%s: %d of %d queries have no candidates (e.g. %r); they get an empty list",
                    origin, len(missing), len(dataset.queries), missing[0])
    return [CandidateList(query=q, candidates=candidates.get(q.qid, [])[:pool]) for q in dataset.queries]


# --- methods --------------------------------------------------------------------------------------------------------

def bm25_rankings(dataset: Dataset, pool: int, k1: float, b: float, variant: str, stopwords: str | None,
                  stemmer: str | None) -> dict[str, Ranking]:
    """bm25s over ``Document.as_passage()`` (title and text), as xhluca/bm25-benchmarks' ``on_bm25s.py``."""
    import bm25s  # lazy: bm25s (and scipy) only when BM25 runs
    import Stemmer

    if not dataset.corpus:
        raise UserError(f"dataset {dataset.name!r}: empty corpus, nothing to retrieve")
    if variant not in BM25_VARIANTS:
        raise UserError(f"bm25 variant {variant!r}: expected one of {', '.join(BM25_VARIANTS)}")
    stopwords = None if stopwords in (None, "none") else stopwords
    if stemmer in (None, "none"):
        stem = None
    elif stemmer in Stemmer.algorithms():
        stem = Stemmer.Stemmer(stemmer)
    else:
        raise UserError(f"bm25 stemmer {stemmer!r}: expected none or one of {', '.join(Stemmer.algorithms())}")
    docids = list(dataset.corpus)
    corpus_tokens = bm25s.tokenize([dataset.corpus[d].as_passage() for d in docids], stopwords=stopwords,
                                   stemmer=stem, show_progress=True)
    retriever = bm25s.BM25(method=variant, k1=float(k1), b=float(b))
    retriever.index(corpus_tokens, show_progress=True)
    queries = dataset.queries
    if not queries:
        return {}
    query_tokens = bm25s.tokenize([q.text for q in queries], stopwords=stopwords, stemmer=stem, return_ids=False,
                                  show_progress=False)
    k = min(pool, len(docids))
    indices, scores = retriever.retrieve(query_tokens, k=k, show_progress=True)
    rankings = {}
    for q, row_idx, row_scores in zip(queries, indices, scores):
        keep = sorted((j for j in range(k) if row_scores[j] > 0), key=lambda j: (-row_scores[j], row_idx[j]))
        rankings[q.qid] = Ranking(q.qid, [docids[row_idx[j]] for j in keep], [float(row_scores[j]) for j in keep])
    return rankings


def top_indices(scores, k: int):
    """Indices of the ``k`` highest scores, best first, ties by index."""
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]


def dense_rankings(dataset: Dataset, pool: int, cache_dir: str | os.PathLike | None, model: str,
                   max_length: int | None, device: str, dtype: str, batch_size: int) -> dict[str, Ranking]:
    """Exhaustive cosine search with a bi-encoder; corpus embeddings cached on disk."""
    from bench.encoders import BiEncoder, cached_embeddings  # lazy: bench.encoders imports torch

    if not dataset.corpus:
        raise UserError(f"dataset {dataset.name!r}: empty corpus, nothing to retrieve")
    device = resolve_device(device)
    # the first stage has no --trust-remote-code of its own: its bi-encoder never runs a folder's code
    encoder = BiEncoder.load(model, device=device, dtype=resolve_dtype(dtype, device), max_length=max_length,
                             trust_remote_code=False)
    docids = list(dataset.corpus)
    corpus_emb = cached_embeddings(encoder, dataset.corpus_fingerprint(),
                                   [dataset.corpus[d].as_passage() for d in docids], batch_size, cache_dir,
                                   desc="encode corpus")
    queries = dataset.queries
    query_emb = encoder.encode_all([q.text for q in queries], batch_size, desc="encode queries")
    k = min(pool, len(docids))
    rankings = {}
    for start in range(0, len(queries), 256):  # bounds the similarity matrix held at once
        for q, row in zip(queries[start:start + 256], query_emb[start:start + 256] @ corpus_emb.T):
            idx = top_indices(row, k)
            rankings[q.qid] = Ranking(q.qid, [docids[i] for i in idx], [float(row[i]) for i in idx])
    return rankings


def given_candidates(dataset: Dataset, pool: int) -> list[CandidateList]:
    """The dataset's own pools, in the given order; scores count down from the pool size."""
    if not dataset.candidates:
        raise UserError(f"first stage 'given': dataset {dataset.name!r} has no per-query candidate pools; "
                        f"use bm25, dense or a run file")
    origin = f"given pools of dataset {dataset.name!r}"
    rankings = {q: Ranking(q, list(ds), rank_scores(len(ds)))
                for q, ds in dataset.candidates.items()}
    return _assemble(dataset, {q: _corpus_candidates(dataset, r, origin) for q, r in rankings.items()}, pool, origin)


def holds_json_candidates(path: Path) -> bool:
    """A Request JSONL or RankGPT hits file (first non-blank character ``{`` or ``[``), not a TREC run."""
    with path.open("rb") as fh:      # bytes: a byte that is not UTF-8 is named by the reader that meets it
        first = next((line for line in fh if line.strip()), b"")
    return first.lstrip().startswith((b"{", b"["))


def candidates_from_file(dataset: Dataset, path: Path, pool: int) -> list[CandidateList]:
    """A Request JSONL or RankGPT hits file or a TREC run file."""
    if holds_json_candidates(path):
        by_qid = {}
        for cl in read_candidate_file(path):
            by_qid[cl.query.qid] = cl.candidates
        return _assemble(dataset, by_qid, pool, str(path))
    rankings = read_trec_run(path)
    return _assemble(dataset, {q: _corpus_candidates(dataset, r, str(path)) for q, r in rankings.items()}, pool,
                     str(path))


# --- files ----------------------------------------------------------------------------------------------------------

def _write_lines(path: str | os.PathLike, lines: Iterable[str]) -> None:
    """Write atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in lines)))


def write_trec_run(path: str | os.PathLike, rankings_or_lists: Iterable[Ranking | CandidateList], tag: str) -> None:
    """``qid Q0 docid rank score tag`` lines. Scores are the real ones when they strictly decrease down a list;
    otherwise rank-derived (n, n-1, ...), so that trec_eval, which sorts by score and breaks ties by docid (not by
    the rank column), reads every list in its order."""
    if not tag or any(ch.isspace() for ch in tag):
        raise UserError(f"TREC run tag {tag!r}: expected one word without spaces")

    def lines():
        for item in rankings_or_lists:
            if isinstance(item, CandidateList):
                qid, docids, scores = item.query.qid, [c.docid for c in item.candidates], \
                    [c.score for c in item.candidates]
            else:
                qid, docids, scores = item.qid, item.docids, item.scores
            if not all(a > b for a, b in zip(scores, scores[1:])):
                scores = rank_scores(len(docids))
            for rank, (docid, score) in enumerate(zip(docids, scores), 1):
                yield f"{qid} Q0 {docid} {rank} {float(score)!r} {tag}"

    _write_lines(path, lines())


def read_trec_run(path: str | os.PathLike) -> dict[str, Ranking]:
    """A TREC run as qid -> Ranking, queries in file order; each query's documents by score, highest first,
    ties by the rank column, then by line order."""
    rows: dict[str, list[tuple[float, int, int, str]]] = {}
    seen: dict[tuple[str, str], int] = {}
    for lineno, (qid, _, docid, rank, score, _) in column_lines(Path(path), "qid Q0 docid rank score tag"):
        try:
            rank_value, score_value = int(rank), float(score)
        except ValueError:
            raise UserError(f"{path} line {lineno}: rank {rank!r} must be an integer and score {score!r} a number")\
                from None
        if not math.isfinite(score_value):
            raise UserError(f"{path} line {lineno}: score {score!r} is not a finite number")
        if (qid, docid) in seen:
            raise UserError(f"{path} line {lineno}: docid {docid!r} repeats for query {qid!r} "
                            f"(first on line {seen[qid, docid]})")
        seen[qid, docid] = lineno
        rows.setdefault(qid, []).append((-score_value, rank_value, lineno, docid))
    return {qid: Ranking(qid, [r[3] for r in sorted(rs)], [-r[0] for r in sorted(rs)]) for qid, rs in rows.items()}


def write_requests_jsonl(path: str | os.PathLike, lists: Iterable[CandidateList]) -> None:
    """rank_llm Request JSONL, one query per line (labels are not part of the format)."""
    _write_lines(path, (json.dumps(cl.to_request_json(), ensure_ascii=False) for cl in lists))


RANKGPT_EXPECTED = 'a RankGPT item {"query": text, "hits": [{"qid", "docid", "rank", "score", "content"}, ...]}'


def rankgpt_candidates(where: str, item: dict[str, Any]) -> CandidateList | None:
    """One RankGPT item as a CandidateList (hits by rank, ties in file order); None when it has no hits (its qid is
    carried by the hits)."""
    hits = item["hits"]
    if not isinstance(hits, list) or not isinstance(item["query"], str):
        raise UserError(f"{where}: expected {RANKGPT_EXPECTED}")
    if not hits:
        return None
    try:
        qids = {str(h["qid"]) for h in hits}
        ordered = sorted(enumerate(hits), key=lambda ih: (int(ih[1]["rank"]), ih[0]))
        cands = [Candidate(docid=str(h["docid"]), score=float(h["score"]),
                           doc=Document(docid=str(h["docid"]), text=str(h["content"]))) for _, h in ordered]
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{where}: a hit lacks or mangles {exc}; expected {RANKGPT_EXPECTED}") from None
    if len(qids) != 1:
        raise UserError(f"{where}: the hits of one query carry different qids {sorted(qids)}")
    docids = [c.docid for c in cands]
    if len(set(docids)) != len(docids):
        raise UserError(f"{where}: query {qids.pop()!r} lists a docid twice")
    return CandidateList(query=Query(qid=qids.pop(), text=item["query"]), candidates=cands)


def read_candidate_file(path: str | os.PathLike) -> list[CandidateList]:
    """A RankGPT hits file (a JSON list or JSONL of items with ``hits``) or a rank_llm Request JSONL file."""
    path = Path(path)
    first = next((line for _, line in text_lines(path) if line.strip()), "").lstrip()
    if first.startswith("["):
        try:
            items = json.loads(decode_utf8(path, path.read_bytes()))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg}); expected a JSON list of "
                            f"{RANKGPT_EXPECTED}") from None
        where_items = [(f"{path} item {i}", item) for i, item in enumerate(items)]
        for where, item in where_items:
            if not isinstance(item, dict) or "query" not in item or "hits" not in item:
                raise UserError(f"{where}: expected {RANKGPT_EXPECTED}")
    else:
        try:
            is_hits = "hits" in json.loads(first)
        except json.JSONDecodeError:
            is_hits = False             # read_requests_jsonl names the line
        if not is_hits:
            return read_requests_jsonl(path)
        where_items = [(f"{path} line {lineno}", obj)
                       for lineno, obj in read_jsonl(path, ("query", "hits"), RANKGPT_EXPECTED)]
    lists = [cl for where, item in where_items if (cl := rankgpt_candidates(where, item)) is not None]
    seen: set[str] = set()
    for cl in lists:
        if cl.query.qid in seen:
            raise UserError(f"{path}: query {cl.query.qid!r} appears twice")
        seen.add(cl.query.qid)
    return lists
