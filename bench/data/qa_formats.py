"""QA sets in their own release formats, each with gold answers and their aliases.

Reading-comprehension sets whose questions bring their own paragraphs (each question ranks its own pool,
``Dataset.candidates``, docids ``"<qid>:<i>"``; supporting paragraphs get qrel grade 1; ``oracle`` puts them first):

* **MuSiQue** (github.com/StonyBrookNLP/musique, ``musique_ans_v1.0_dev.jsonl``): one record per line with ``id``,
  ``question``, ``answer``, ``answer_aliases``, ``answerable`` and 20 ``paragraphs`` (``idx``, ``title``,
  ``paragraph_text``, ``is_supporting``). Gold = ``answer`` + ``answer_aliases``. Records with ``answerable: false``
  (MuSiQue-Full) have no gold answer and are left out.
* **2WikiMultihopQA** (github.com/Alab-NII/2wikimultihop, ``dev.json``): a JSON list in HotpotQA's layout (``_id``,
  ``question``, ``answer``, ``context`` = ``[[title, [sentence, ...]], ...]``, ``supporting_facts`` =
  ``[[title, sent_id], ...]``) plus ``type`` and ``evidences``. With the ids release (``data_ids_april7.zip``)
  records carry ``answer_id`` and ``id_aliases.json`` beside the file (one ``{"Q_id", "aliases", "demonyms"}`` per
  line) adds the answer's aliases to the gold.

Open-domain sets (questions and answers only; ``corpus`` is empty unless DPR's Wikipedia passages are given, so
their candidates come from a first-stage file: ``--first-stage`` a rank_llm Request JSONL, a RankGPT hits file or a
TREC run over the corpus, or a DPR retriever-output file, below, loaded as the dataset itself):

* **NQ-open** (github.com/google-research-datasets/natural-questions, ``nq_open/NQ-open.dev.jsonl``): lines
  ``{"question", "answer": [...]}`` without ids; the qid is the 0-based line index among the questions.
* **TriviaQA** (nlp.cs.washington.edu/triviaqa, ``unfiltered-web-dev.json`` in ``triviaqa-unfiltered.tar.gz``):
  ``{"Data": [{"QuestionId", "Question", "Answer": {"Value", "Aliases", ...}}, ...]}``. Gold = ``Value`` +
  ``Aliases``.
* **AmbigNQ** (nlp.cs.washington.edu/ambigqa, ``dev_light.json`` in ``ambignq_light.zip``): a JSON list of
  ``{"id", "question", "annotations": [...]}``; an annotation is ``{"type": "singleAnswer", "answer": [...]}`` or
  ``{"type": "multipleQAs", "qaPairs": [{"question", "answer": [...]}, ...]}``. Gold = every answer of every
  interpretation of every annotator (EM/F1 take the maximum over them: an answer to any interpretation counts).
* **PopQA** (huggingface.co/datasets/akariasai/PopQA, ``test.tsv``): a TSV with a header including ``id``,
  ``question`` and ``possible_answers`` (a JSON list).
* **DPR retriever output** (github.com/facebookresearch/DPR, also FiD / Self-RAG eval files): a JSON list (or JSONL)
  of ``{"question", "answers": [...], "ctxs": [{"id", "title", "text", "score", "has_answer"}, ...]}``, optional
  ``id``/``q_id``. The ``ctxs`` are the question's pool in the given order; ``has_answer`` (answer string found in
  the passage, DPR's retrieval-accuracy label) is the qrel grade 1.

The retrieval corpus of the open-domain sets is DPR's 21M-passage Wikipedia split (``psgs_w100.tsv`` from
https://dl.fbaipublicfiles.com/dpr/wikipedia_split/psgs_w100.tsv.gz, header ``id<TAB>text<TAB>title``): put the
unzipped file beside the questions to use it as the corpus.
"""
from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from bench.data.base import Dataset
from bench.data.loaders import decode_utf8, first_record, hotpot_records, load_hotpotqa, read_jsonl, text_lines
from bench.errors import UserError
from bench.types import Document, Query

log = logging.getLogger(__name__)

DPR_PASSAGES_FILE = "psgs_w100.tsv"
MUSIQUE_EXPECTED = 'a MuSiQue record with "id", "question", "answer" and "paragraphs"'
NQ_OPEN_EXPECTED = 'a JSON object with "question" and "answer" (a list)'
DPR_EXPECTED = 'a DPR retriever record with "question", "answers" and "ctxs"'


def unique(values) -> list[str]:
    """The strings of ``values`` once each, in order (gold lists repeat aliases)."""
    return list(dict.fromkeys(str(v) for v in values if str(v).strip()))


def read_json(path: Path, expected: str) -> Any:
    try:
        return json.loads(decode_utf8(path, path.read_bytes()))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg}); expected {expected}") from None


def records(path: Path, fields: tuple[str, ...], expected: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) from a JSON list or a JSONL file; ``where`` names the line or list index."""
    if path.suffix == ".jsonl":
        for lineno, obj in read_jsonl(path, fields, expected):
            yield f"{path} line {lineno}", obj
        return
    data = read_json(path, f"a JSON list of {expected}")
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of {expected}, got {type(data).__name__}")
    for i, obj in enumerate(data):
        missing = [f for f in fields if f not in obj] if isinstance(obj, dict) else list(fields)
        if missing:
            raise UserError(f"{path} record {i}: lacks {', '.join(map(repr, missing))}; expected {expected}")
        yield f"{path} record {i}", obj


def string_list(where: str, field: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise UserError(f"{where}: {field!r} must be a string or a list of strings, got {value!r:.80}")
    return unique(value)


def open_corpus(folder: Path) -> dict[str, Document]:
    """DPR's Wikipedia passages when ``psgs_w100.tsv`` lies in ``folder``; otherwise no corpus."""
    path = folder / DPR_PASSAGES_FILE
    if not path.is_file():
        return {}
    csv.field_size_limit(sys.maxsize)
    corpus: dict[str, Document] = {}
    rows = csv.reader((line for _, line in text_lines(path)), delimiter="\t")
    if next(rows, None) != ["id", "text", "title"]:
        raise UserError(f"{path} line 1: expected the header 'id<TAB>text<TAB>title' (DPR's psgs_w100.tsv)")
    for lineno, row in enumerate(rows, 2):
        if len(row) != 3:
            raise UserError(f"{path} line {lineno}: expected 'id<TAB>text<TAB>title', got {len(row)} fields")
        corpus[row[0]] = Document(docid=row[0], text=row[1], title=row[2])
    return corpus


def _dataset(name: str, split: str, corpus, queries: list[Query], candidates=None, source: Path | None = None):
    if not queries:
        raise UserError(f"{source}: no questions")
    seen: set[str] = set()
    for q in queries:
        if q.qid in seen:
            raise UserError(f"{source}: question id {q.qid!r} appears twice")
        seen.add(q.qid)
    return Dataset(name=name, split=split, corpus=corpus, queries=queries, candidates=candidates or {})


# --- reading comprehension: each question's own paragraphs -----------------------------------------------------

def load_musique(path: Path, split: str = "dev", name: str | None = None) -> Dataset:
    corpus: dict[str, Document] = {}
    queries: list[Query] = []
    candidates: dict[str, list[str]] = {}
    unanswerable = 0
    for where, rec in records(path, ("id", "question", "answer", "paragraphs"), MUSIQUE_EXPECTED):
        if rec.get("answerable", True) is False:
            unanswerable += 1
            continue
        qid = str(rec["id"])
        docids, qrels = [], {}
        try:
            for i, para in enumerate(rec["paragraphs"]):
                docid = f"{qid}:{i}"
                corpus[docid] = Document(docid=docid, title=str(para["title"]), text=str(para["paragraph_text"]))
                docids.append(docid)
                if para["is_supporting"]:
                    qrels[docid] = 1
        except (KeyError, TypeError) as exc:
            raise UserError(f"{where}: paragraphs must be objects with 'title', 'paragraph_text' and "
                            f"'is_supporting' (missing {exc})") from None
        candidates[qid] = docids
        answers = [str(rec["answer"]), *string_list(where, "answer_aliases", rec.get("answer_aliases", []))]
        queries.append(Query(qid=qid, text=str(rec["question"]), answers=unique(answers), qrels=qrels))
    if unanswerable:
        log.info("%s: left out %d unanswerable questions (MuSiQue-Full)", path, unanswerable)
    return _dataset(name or path.stem, split, corpus, queries, candidates, path)


def read_2wiki_aliases(path: Path) -> dict[str, list[str]]:
    """Wikidata id -> aliases (and demonyms) from 2WikiMultihopQA's ``id_aliases.json`` (JSON lines)."""
    out = {}
    for _, obj in read_jsonl(path, ("Q_id", "aliases"), 'a JSON object with "Q_id" and "aliases"'):
        out[str(obj["Q_id"])] = [*(obj.get("aliases") or []), *(obj.get("demonyms") or [])]
    return out


def load_2wikimultihopqa(path: Path, split: str = "dev", name: str | None = None) -> Dataset:
    """HotpotQA's reader (same layout), plus the answer aliases of the ids release when ``id_aliases.json`` is
    beside the file."""
    dataset = load_hotpotqa(path, split, name=name or path.stem)
    alias_file = path.parent / "id_aliases.json"
    if alias_file.is_file():
        aliases = read_2wiki_aliases(alias_file)
        answer_ids = {str(r.get("_id", r.get("id"))): str(r.get("answer_id", "")) for _, r in hotpot_records(path)}
        for q in dataset.queries:
            q.answers = unique([*q.answers, *aliases.get(answer_ids.get(q.qid, ""), [])])
    return dataset


# --- open domain ---------------------------------------------------------------------------------------------------

def load_nq_open(path: Path, split: str = "dev", name: str | None = None) -> Dataset:
    queries = []
    for i, (lineno, obj) in enumerate(read_jsonl(path, ("question", "answer"), NQ_OPEN_EXPECTED)):
        answers = string_list(f"{path} line {lineno}", "answer", obj["answer"])
        queries.append(Query(qid=str(obj.get("id", i)), text=str(obj["question"]), answers=answers))
    return _dataset(name or path.stem, split, open_corpus(path.parent), queries, source=path)


def load_triviaqa(path: Path, split: str = "dev", name: str | None = None) -> Dataset:
    data = read_json(path, 'TriviaQA\'s {"Data": [...]}')
    if not isinstance(data, dict) or not isinstance(data.get("Data"), list):
        raise UserError(f"{path}: expected TriviaQA's {{\"Data\": [{{\"QuestionId\", \"Question\", \"Answer\"}}]}}")
    queries = []
    for i, rec in enumerate(data["Data"]):
        try:
            answer = rec["Answer"]
            gold = unique([answer["Value"], *answer.get("Aliases", [])])
            queries.append(Query(qid=str(rec["QuestionId"]), text=str(rec["Question"]), answers=gold))
        except (KeyError, TypeError) as exc:
            raise UserError(f"{path} Data[{i}]: expected QuestionId, Question and Answer.Value (missing {exc})") \
                from None
    return _dataset(name or path.stem, split, open_corpus(path.parent), queries, source=path)


def ambignq_answers(where: str, annotations: Any) -> list[str]:
    gold: list[str] = []
    try:
        for ann in annotations:
            if ann["type"] == "singleAnswer":
                gold += ann["answer"]
            elif ann["type"] == "multipleQAs":
                for pair in ann["qaPairs"]:
                    gold += pair["answer"]
            else:
                raise UserError(f"{where}: annotation type {ann['type']!r}; expected singleAnswer or multipleQAs")
    except (KeyError, TypeError) as exc:
        raise UserError(f"{where}: expected annotations [{{\"type\": \"singleAnswer\", \"answer\": [...]}} or "
                        f"{{\"type\": \"multipleQAs\", \"qaPairs\": [{{\"answer\": [...]}}]}}] (missing {exc})") \
            from None
    return unique(gold)


def load_ambignq(path: Path, split: str = "dev", name: str | None = None) -> Dataset:
    queries = [Query(qid=str(rec["id"]), text=str(rec["question"]), answers=ambignq_answers(where, rec["annotations"]))
               for where, rec in records(path, ("id", "question", "annotations"),
                                         'an AmbigNQ record with "id", "question" and "annotations"')]
    return _dataset(name or path.stem, split, open_corpus(path.parent), queries, source=path)


def load_popqa(path: Path, split: str = "test", name: str | None = None) -> Dataset:
    csv.field_size_limit(sys.maxsize)
    queries = []
    rows = csv.DictReader((line for _, line in text_lines(path)), delimiter="\t")
    missing = [f for f in ("id", "question", "possible_answers") if f not in (rows.fieldnames or [])]
    if missing:
        raise UserError(f"{path} line 1: the header lacks {', '.join(missing)}; expected PopQA's TSV "
                        f"(id, ..., question, possible_answers)")
    for lineno, row in enumerate(rows, 2):
        try:
            gold = json.loads(row["possible_answers"] or "")
        except json.JSONDecodeError:
            raise UserError(f"{path} line {lineno}: possible_answers must be a JSON list of strings") from None
        queries.append(Query(qid=row["id"], text=row["question"],
                             answers=string_list(f"{path} line {lineno}", "possible_answers", gold)))
    return _dataset(name or path.stem, split, open_corpus(path.parent), queries, source=path)


def load_dpr_results(path: Path, split: str = "dev", name: str | None = None) -> Dataset:
    corpus: dict[str, Document] = {}
    queries: list[Query] = []
    candidates: dict[str, list[str]] = {}
    for i, (where, rec) in enumerate(records(path, ("question", "answers", "ctxs"), DPR_EXPECTED)):
        qid = str(rec.get("id", rec.get("q_id", i)))
        docids, qrels = [], {}
        try:
            for ctx in rec["ctxs"]:
                docid = str(ctx["id"])
                corpus.setdefault(docid, Document(docid=docid, title=str(ctx.get("title") or ""),
                                                  text=str(ctx["text"])))
                docids.append(docid)
                if ctx.get("has_answer"):
                    qrels[docid] = 1
        except (KeyError, TypeError) as exc:
            raise UserError(f"{where}: ctxs must be objects with 'id' and 'text' (missing {exc})") from None
        candidates[qid] = docids
        queries.append(Query(qid=qid, text=str(rec["question"]),
                             answers=string_list(where, "answers", rec["answers"]), qrels=qrels))
    return _dataset(name or path.stem, split, corpus, queries, candidates, path)


# --- format detection ----------------------------------------------------------------------------------------------

FileLoader = Callable[..., Dataset]


def release_format(path: Path) -> FileLoader | None:
    """The loader of a QA release file, told by its first record; None for other files (HotpotQA, QA JSONL...)."""
    if path.suffix == ".tsv":
        header = next((line for _, line in text_lines(path)), "").rstrip("\r\n").split("\t")
        return load_popqa if "possible_answers" in header else None
    if path.suffix == ".jsonl":
        first = first_record(path)
    elif path.suffix == ".json":
        data = read_json(path, "a JSON file")
        if isinstance(data, dict):
            return load_triviaqa if "Data" in data else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    else:
        return None
    if "paragraphs" in first and "question_decomposition" in first:
        return load_musique
    if "evidences" in first and "supporting_facts" in first:
        return load_2wikimultihopqa
    if "ctxs" in first:
        return load_dpr_results
    if "annotations" in first and "question" in first:
        return load_ambignq
    if path.suffix == ".jsonl" and isinstance(first.get("answer"), list) and "context" not in first:
        return load_nq_open
    return None
