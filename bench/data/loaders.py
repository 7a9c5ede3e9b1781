"""Loaders for the dataset formats rerank-bench reads, and the downloads behind the registered BEIR names.

Formats (``bench.data.load_path`` tells them apart by their files):

* **BEIR folder** — ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``) and
  ``qrels/<split>.tsv`` (header line, then ``query-id<TAB>corpus-id<TAB>score``). Read with beir's
  ``GenericDataLoader``; only the queries judged in the split's qrels are kept. BEIR carries no answers, except
  where a query's ``metadata`` holds ``answer``/``answers`` (they are used when present).
* **HotpotQA distractor** — a ``.json`` file holding a list of records or a ``.jsonl`` file of one record per line,
  each with ``question``, ``answer``, ``context`` (``[[title, [sentence, ...]], ...]``) and ``supporting_facts``
  (``[[title, sent_id], ...]``), and ``_id`` (or ``id``). The Hugging Face layout (``context`` as
  ``{"title": [...], "sentences": [...]}``, ``supporting_facts`` as ``{"title": [...], "sent_id": [...]}``) is read
  too. Each question's paragraphs become its own candidate pool (``Dataset.candidates``, in the given order) with
  docids ``"<qid>:<i>"``; a paragraph's text is its sentences joined; supporting paragraphs get qrel grade 1.
* **QA JSONL with a corpus** (FlashRAG's layout) — a folder holding ``corpus.jsonl`` and the questions as
  ``<split>.jsonl`` or ``questions.jsonl``, or the path of such a questions file with ``corpus.jsonl`` beside it.
  Questions: ``id``, ``question``, ``golden_answers`` (a list or one string), optionally ``qrels``
  (``{docid: grade}``). Corpus: ``id`` with either ``title`` + ``text`` or FlashRAG's ``contents``
  (``"Title"\\ntext``: the first line, unquoted, is the title).

A malformed line fails with a ``UserError`` naming the file, the line number and what was expected; so do bytes
that are not UTF-8, a repeated document or question id (a corpus would silently keep the last copy) and an empty
corpus.

Registered BEIR names download ``<base>/<name>.zip`` with ``<base>`` =
https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets, or ``$RERANK_BENCH_BEIR_URL`` when set (an
``http://``, ``https://`` or ``file://`` folder URL holding the same zips), into ``<cache>/beir/`` where
``<cache>`` is the ``cache_dir`` argument, else ``$RERANK_BENCH_CACHE``, else ``~/.cache/rerank-bench``. Each zip is
checked against the md5 BEIR publishes in its README's dataset table (``BEIR_DATASETS`` below has one for every
name); a download without a known md5 is not verified, and its sha256 is recorded. Either way
``<cache>/beir/<name>.download.json`` records the URL, md5 and sha256 of the bytes that were unzipped. Without
network the error names the URL and the two ways round it: pass the unzipped folder as the dataset path, or point
``$RERANK_BENCH_BEIR_URL`` at a local copy. CQADupStack is not registered: its zip nests 12 sub-forum corpora, so
pass one of its sub-folders as a path instead.

``hotpotqa`` is BEIR's HotpotQA (a 5.2M-passage corpus); ``hotpotqa-distractor`` is the official HotpotQA dev set
in the distractor setting (each question ranks its own 10 paragraphs), downloaded from the HotpotQA site (no
published checksum: its sha256 is recorded), or read from any path given instead of the name.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator

from bench.data.base import Dataset
from bench.data.download import download
from bench.environment import cache_dir as cache_dir_of
from bench.errors import UserError
from bench.types import CandidateList, Document, Query, check_grade

BEIR_URL_ENV = "RERANK_BENCH_BEIR_URL"
BEIR_BASE_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"
HOTPOTQA_DEV_DISTRACTOR_URL = "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json"

# name -> (md5 of <name>.zip, description). The md5s are the ones in the dataset table of BEIR's README
# (github.com/beir-cellar/beir), which also lists bioasq, signal1m, trec-news and robust04: those are not public.
BEIR_DATASETS: dict[str, tuple[str, str]] = {
    "msmarco": ("444067daf65d982533ea17ebd59501e4", "MS MARCO passages (8.8M docs; splits train/dev/test)"),
    "trec-covid": ("ce62140cb23feb9becf6270d0d1fe6d1", "TREC-COVID (171K docs, 50 queries)"),
    "nfcorpus": ("a89dba18a62ef92f7d323ec890a0d38d", "NFCorpus (3.6K docs, 323 test queries)"),
    "nq": ("d4d3d2e48787a744b6f6e691ff534307", "Natural Questions (2.68M docs, 3,452 queries)"),
    "hotpotqa": ("f412724f78b0d91183a0e86805e16114", "HotpotQA, BEIR version (5.23M docs, 7,405 queries)"),
    "fiqa": ("17918ed23cd04fb15047f73e6c3bd9d9", "FiQA-2018 (57K docs, 648 test queries)"),
    "arguana": ("8ad3e3c2a5867cdced806d6503f29b99", "ArguAna (8.7K docs, 1,406 queries)"),
    "webis-touche2020": ("46f650ba5a527fc69e0a6521c5a23563", "Touche-2020 (382K docs, 49 queries)"),
    "quora": ("18fb154900ba42a600f84b839c173167", "Quora (523K docs; splits dev/test)"),
    "dbpedia-entity": ("c2a39eb420a3164af735795df012ac2c", "DBPedia-entity (4.63M docs; splits dev/test)"),
    "scidocs": ("38121350fc3a4d2f48850f6aff52e4a9", "SCIDOCS (25K docs, 1,000 queries)"),
    "fever": ("5a818580227bfb4b35bb6fa46d9b6c03", "FEVER (5.42M docs, 6,666 test queries)"),
    "climate-fever": ("8b66f0a9126c521bae2bde127b4dc99d", "Climate-FEVER (5.42M docs, 1,535 queries)"),
    "scifact": ("5f7d1de60b170fc8027bb7898e2efca1", "SciFact (5.2K docs, 300 test queries)"),
}

BEIR_EXPECTED = {
    "corpus": 'a JSON object with "_id", "title" and "text"',
    "queries": 'a JSON object with "_id" and "text"',
}
QA_QUESTION_EXPECTED = 'a JSON object with "id", "question" and "golden_answers"'
QA_CORPUS_EXPECTED = 'a JSON object with "id" and either "contents" or "text" (and "title")'
HOTPOT_FIELDS = ("question", "answer", "context", "supporting_facts")
HOTPOT_EXPECTED = 'a HotpotQA record with "_id", "question", "answer", "context" and "supporting_facts"'


# --- line-numbered readers ------------------------------------------------------------------------------------

def not_utf8(path: Path, lineno: int, exc: UnicodeDecodeError) -> UserError:
    return UserError(f"{path} line {lineno}: not UTF-8 text (byte {exc.object[exc.start]:#04x}); "
                     f"expected a UTF-8 file")


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of a UTF-8 text file; bytes that are not UTF-8 fail naming the line."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8(path, lineno, exc) from None


def column_lines(path: Path, columns: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line of a UTF-8 file of whitespace-separated ``columns`` (TREC's
    ``qid iteration docid grade`` qrels, ``qid Q0 docid rank score tag`` runs); a line with another number of fields
    fails naming the file and line."""
    n = len(columns.split())
    for lineno, line in text_lines(path):
        fields = line.split()
        if fields and len(fields) != n:
            raise UserError(f"{path} line {lineno}: expected {n} fields '{columns}', got {len(fields)}")
        if fields:
            yield lineno, fields


def decode_utf8(path: Path, data: bytes) -> str:
    """A whole file's bytes as text; bytes that are not UTF-8 fail naming the line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, data.count(b"\n", 0, exc.start) + 1, exc) from None


def read_jsonl(path: Path, fields: tuple[str, ...], expected: str, id_field: str | None = None,
               strings: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a UTF-8 file; a line that is not a JSON object with
    ``fields`` fails, and so does one where a field of ``strings`` is present but not a string. With ``id_field``
    (one of ``fields``), an id seen on an earlier line fails too."""
    first_seen: dict[str, int] = {}
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} line {lineno}: invalid JSON ({exc.msg}); expected {expected}") from None
        missing = [f for f in fields if f not in obj] if isinstance(obj, dict) else list(fields)
        if missing:
            raise UserError(f"{path} line {lineno}: lacks {', '.join(map(repr, missing))}; expected {expected}")
        for name in strings:
            if name in obj and not isinstance(obj[name], str):
                raise UserError(f"{path} line {lineno}: {name!r} is a {type(obj[name]).__name__}, expected a string")
        if id_field is not None:
            key = str(obj[id_field])
            if key in first_seen:
                raise UserError(f"{path} line {lineno}: {id_field} {key!r} repeats line {first_seen[key]}; "
                                f"expected unique ids")
            first_seen[key] = lineno
        yield lineno, obj


def empty_corpus(path: Path) -> UserError:
    return UserError(f"{path}: the corpus file is empty; expected one document per line")


def read_qrels_tsv(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """(line number, query id, doc id, grade) per line of a BEIR qrels file, after its header line."""
    for lineno, row in enumerate(csv.reader((line for _, line in text_lines(path)), delimiter="\t"), 1):
        if lineno == 1 or not row:
            continue
        if len(row) < 3:
            raise UserError(f"{path} line {lineno}: expected query-id<TAB>corpus-id<TAB>integer score, "
                            f"got {chr(9).join(row)!r}")
        yield lineno, row[0], row[1], check_grade(row[2], f"{path} line {lineno}")


# --- BEIR -----------------------------------------------------------------------------------------------------

def qrels_splits(folder: Path) -> list[str]:
    return sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))


def load_beir_folder(folder: Path, split: str = "test", name: str | None = None) -> Dataset:
    from beir.datasets.data_loader import GenericDataLoader

    if not (folder / "qrels" / f"{split}.tsv").is_file():
        raise UserError(f"{folder}: no qrels for split {split!r} (expected qrels/{split}.tsv); splits found: "
                        f"{', '.join(qrels_splits(folder)) or 'none'}")
    for _ in read_qrels_tsv(folder / "qrels" / f"{split}.tsv"):    # grades checked before beir reads them
        pass
    try:
        corpus, queries, qrels = GenericDataLoader(data_folder=str(folder)).load(split=split)
    except (ValueError, IndexError, KeyError, AttributeError, StopIteration) as exc:
        # GenericDataLoader's errors carry no file or line: find the offending line and say what was expected.
        locate_beir_error(folder, split)
        raise UserError(f"{folder}: beir could not load split {split!r}: {exc!r}") from exc
    if None in corpus or None in queries or not all(isinstance(k, str) for k in (*corpus, *queries)) \
            or not all(isinstance(d.get(f, ""), str) for d in corpus.values() for f in ("title", "text")) \
            or not all(isinstance(t, str) for t in queries.values()):
        locate_beir_error(folder, split)
    corpus_file = folder / "corpus.jsonl"
    with corpus_file.open("rb") as fh:
        if sum(1 for _ in fh) != len(corpus):      # beir keeps the last of repeated ids: find the repeat
            for _ in read_jsonl(corpus_file, ("_id",), BEIR_EXPECTED["corpus"], id_field="_id"):
                pass
    if not queries:
        raise UserError(f"{folder / 'qrels' / f'{split}.tsv'}: no judged queries")
    answers = beir_answers(folder / "queries.jsonl")
    return Dataset(
        name=name or folder.name, split=split,
        corpus={did: Document(docid=did, text=d.get("text") or "", title=d.get("title") or "")
                for did, d in corpus.items()},
        queries=[Query(qid=qid, text=text, answers=answers.get(qid, []), qrels=dict(qrels.get(qid, {})))
                 for qid, text in queries.items()])


def locate_beir_error(folder: Path, split: str) -> None:
    """Raise a UserError at the first malformed line of a BEIR folder, or for an empty corpus (returns when every
    line is well formed)."""
    if not sum(1 for _ in read_jsonl(folder / "corpus.jsonl", ("_id",), BEIR_EXPECTED["corpus"],
                                     strings=("_id", "title", "text"))):
        raise empty_corpus(folder / "corpus.jsonl")
    qids = {str(obj["_id"]) for _, obj in read_jsonl(folder / "queries.jsonl", ("_id", "text"),
                                                      BEIR_EXPECTED["queries"], strings=("_id", "text"))}
    qrels_file = folder / "qrels" / f"{split}.tsv"
    for lineno, qid, _, _ in read_qrels_tsv(qrels_file):
        if qid not in qids:
            raise UserError(f"{qrels_file} line {lineno}: query id {qid!r} is not in {folder / 'queries.jsonl'}")


def beir_answers(queries_file: Path) -> dict[str, list[str]]:
    """Gold answers some BEIR query files carry in ``metadata`` (``answer`` or ``answers``)."""
    out: dict[str, list[str]] = {}
    for _, obj in read_jsonl(queries_file, ("_id",), BEIR_EXPECTED["queries"], id_field="_id"):
        meta = obj.get("metadata") or {}
        value = meta.get("answers", meta.get("answer")) if isinstance(meta, dict) else None
        if value:
            out[str(obj["_id"])] = [value] if isinstance(value, str) else [str(v) for v in value]
    return out


def fetch_beir(name: str, cache_dir: str | None = None, base_url: str | None = None,
               md5: str | None = None, local_copy_hint: str = "") -> Path:
    """The unzipped BEIR folder of ``name`` in the cache, downloading and verifying it first when absent.
    ``md5`` defaults to BEIR's published one for registered names; ``local_copy_hint`` (for catalogued names: the
    ``--data-dir`` layout and ``bench data pull``) goes into the error of a failed download."""
    root = cache_dir_of(cache_dir) / "beir"
    folder = root / name
    if (folder / "corpus.jsonl").is_file():
        return folder
    base = (base_url or os.environ.get(BEIR_URL_ENV) or BEIR_BASE_URL).rstrip("/")
    url = f"{base}/{name}.zip"
    md5 = md5 or BEIR_DATASETS.get(name, ("", ""))[0] or None
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"{name}.zip"
    how_to_avoid = (f"{local_copy_hint + '; or ' if local_copy_hint else ''}set {BEIR_URL_ENV} to a folder URL "
                    f"holding {name}.zip (e.g. file:///data/beir)")
    record = download(url, archive, md5, how_to_avoid)
    staging = root / f".{name}.unzip"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{url}: the download is not a zip file ({exc})") from exc
    unzipped = staging / name
    if not (unzipped / "corpus.jsonl").is_file():
        raise UserError(f"{url}: the zip lacks {name}/corpus.jsonl (not a BEIR dataset archive)")
    unzipped.rename(folder)
    shutil.rmtree(staging)
    archive.unlink()
    (root / f"{name}.download.json").write_text(json.dumps(record, indent=1) + "\n")
    return folder


# --- HotpotQA distractor --------------------------------------------------------------------------------------

def hotpot_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for a ``.json`` list or a ``.jsonl`` file of HotpotQA records; ``where`` names the line or
    list index for error messages."""
    if path.suffix == ".jsonl":
        for lineno, obj in read_jsonl(path, HOTPOT_FIELDS, HOTPOT_EXPECTED):
            yield f"{path} line {lineno}", obj
        return
    try:
        records = json.loads(decode_utf8(path, path.read_bytes()))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg}); expected a JSON list of "
                        f"HotpotQA records") from None
    if not isinstance(records, list):
        raise UserError(f"{path}: expected a JSON list of HotpotQA records, got {type(records).__name__}")
    for i, obj in enumerate(records):
        where = f"{path} record {i}"
        if not isinstance(obj, dict) or any(f not in obj for f in HOTPOT_FIELDS):
            raise UserError(f"{where}: expected {HOTPOT_EXPECTED}")
        yield where, obj


def hotpot_paragraphs(where: str, record: dict[str, Any]) -> tuple[list[tuple[str, list[str]]], set[str]]:
    """(paragraphs as (title, sentences), supporting titles), from the original or the Hugging Face layout."""
    context, facts = record["context"], record["supporting_facts"]
    try:
        if isinstance(context, dict):
            context = list(zip(context["title"], context["sentences"]))
        supporting = set(facts["title"]) if isinstance(facts, dict) else {str(f[0]) for f in facts}
        paragraphs = [(str(title), list(sentences)) for title, sentences in context]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise UserError(f"{where}: expected context [[title, [sentence, ...]], ...] and supporting_facts "
                        f"[[title, sent_id], ...] ({exc!r})") from None
    return paragraphs, supporting


def load_hotpotqa(path: Path, split: str = "dev", name: str | None = None) -> Dataset:
    corpus: dict[str, Document] = {}
    queries: list[Query] = []
    candidates: dict[str, list[str]] = {}
    for where, record in hotpot_records(path):
        qid = str(record.get("_id", record.get("id", "")))
        if not qid:
            raise UserError(f"{where}: lacks '_id' (or 'id'); expected {HOTPOT_EXPECTED}")
        if qid in candidates:
            raise UserError(f"{where}: question id {qid!r} appears twice")
        paragraphs, supporting = hotpot_paragraphs(where, record)
        docids = []
        for i, (title, sentences) in enumerate(paragraphs):
            docid = f"{qid}:{i}"
            corpus[docid] = Document(docid=docid, title=title, text="".join(sentences).strip())
            docids.append(docid)
        candidates[qid] = docids
        qrels = {d: 1 for d, (title, _) in zip(docids, paragraphs) if title in supporting}
        queries.append(Query(qid=qid, text=record["question"], answers=[str(record["answer"])], qrels=qrels))
    if not queries:
        raise UserError(f"{path}: no HotpotQA records")
    return id_split(Dataset(name=name or path.stem, split=split, corpus=corpus, queries=queries,
                            candidates=candidates))


# RRPO's splits of a HotpotQA file, by a hash of the question id (not file order, so adding or reordering records
# never moves a question to another part): train on rrpo-train, choose between settings on rrpo-select (carved from
# the train side), report on rrpo-heldout only. Every other split name keeps the whole file.
ID_SPLITS = {"rrpo-train": (0.0, 0.45), "rrpo-select": (0.45, 0.55), "rrpo-heldout": (0.55, 1.0)}


def id_fraction(qid: str) -> float:
    """A question's place in [0, 1), from the sha256 of its id."""
    return int(hashlib.sha256(qid.encode()).hexdigest()[:16], 16) / 16 ** 16


def id_split(dataset: Dataset, split: str | None = None) -> Dataset:
    """The questions of ``dataset`` whose id falls in split ``ID_SPLITS[split]`` (default: ``dataset.split``), with
    only their own passages; the dataset unchanged for any other split name."""
    split = split or dataset.split
    if split not in ID_SPLITS:
        return dataset
    lo, hi = ID_SPLITS[split]
    queries = [q for q in dataset.queries if lo <= id_fraction(q.qid) < hi]
    candidates = {q.qid: dataset.candidates[q.qid] for q in queries}
    corpus = {d: dataset.corpus[d] for docids in candidates.values() for d in docids}
    return Dataset(dataset.name, split, corpus, queries, candidates)


# --- QA JSONL + corpus (FlashRAG layout) ----------------------------------------------------------------------

def flashrag_document(docid: str, obj: dict[str, Any]) -> Document:
    if "contents" in obj:
        title, sep, text = str(obj["contents"]).partition("\n")
        return Document(docid=docid, title=title.strip().strip('"') if sep else "", text=text if sep else title)
    return Document(docid=docid, title=str(obj.get("title") or ""), text=str(obj.get("text") or ""))


def load_qa_jsonl(questions: Path, corpus_file: Path, split: str, name: str | None = None) -> Dataset:
    corpus: dict[str, Document] = {}
    for lineno, obj in read_jsonl(corpus_file, ("id",), QA_CORPUS_EXPECTED, id_field="id"):
        if "contents" not in obj and "text" not in obj:
            raise UserError(f"{corpus_file} line {lineno}: lacks 'contents' or 'text'; expected {QA_CORPUS_EXPECTED}")
        docid = str(obj["id"])
        corpus[docid] = flashrag_document(docid, obj)
    if not corpus:
        raise empty_corpus(corpus_file)
    queries = []
    for lineno, obj in read_jsonl(questions, ("id", "question", "golden_answers"), QA_QUESTION_EXPECTED,
                                  id_field="id"):
        gold = obj["golden_answers"]
        qrels = obj.get("qrels") or {}
        if not isinstance(qrels, dict):
            raise UserError(f"{questions} line {lineno}: 'qrels' must be an object of docid -> integer grade")
        queries.append(Query(qid=str(obj["id"]), text=str(obj["question"]),
                             answers=[gold] if isinstance(gold, str) else [str(a) for a in gold],
                             qrels={str(d): check_grade(g, f"{questions} line {lineno}") for d, g in qrels.items()}))
    if not queries:
        raise UserError(f"{questions}: no questions")
    return Dataset(name=name or questions.parent.name, split=split, corpus=corpus, queries=queries)


# --- format detection -----------------------------------------------------------------------------------------

def first_record(path: Path) -> dict[str, Any]:
    """The first JSON object of a JSONL file (validated only as JSON)."""
    for _, obj in read_jsonl(path, (), "a JSON object per line"):
        return obj if isinstance(obj, dict) else {}
    raise UserError(f"{path}: empty file")


def read_requests_jsonl(path: str | os.PathLike) -> list[CandidateList]:
    out = []
    for lineno, obj in read_jsonl(Path(path), ("query", "candidates"), "a rank_llm Request"):
        try:
            cl = CandidateList.from_request_json(obj)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path} line {lineno}: not a rank_llm Request "
                            f"(expected query.qid, query.text, candidates[].docid; {type(exc).__name__}: {exc})") \
                from None
        docids = [c.docid for c in cl.candidates]
        if len(set(docids)) != len(docids):
            raise UserError(f"{path} line {lineno}: query {cl.query.qid!r} lists a docid twice")
        out.append(cl)
    return out
