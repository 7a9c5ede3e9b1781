"""Human-labelled answers: (question, gold answers, answer, human verdict) rows, what ``bench judge-eval`` holds the
answer metrics and an LLM judge against.

Two formats:

- the OpenQA-eval release (Kamalloo et al., ACL 2023, github.com/ehsk/OpenQA-eval, MIT licence; catalog name
  ``openqa-eval``): ``NQ301_human.tsv`` (columns ``id``, ``Question``, ``Model answer``, ``Acceptable?`` = Yes/No,
  then the annotators' own columns) holds the human verdicts on the answers of 12 systems to 301 NQ-open questions;
  the gold answers come from ``model_outputs/NQ_DPR.jsonl`` (``question``, ``answer`` = the gold list, one line per
  NQ-open test question; every model_outputs file carries the same gold lists), joined on the question text. The TSV
  is read literally (no CSV quoting: an answer may start with a quotation mark). A row that repeats an earlier
  (question, answer, verdict) is dropped (the release repeats one: 1,490 rows, 1,489 distinct judgments); the same
  (question, answer) with another verdict is an error.
- a generic JSONL file, one labelled answer per line:
  ``{"question": str, "gold_answers": [str, ...], "answer": str, "human_correct": true|false}`` plus an optional
  ``"id"`` (default: the line number).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from bench.data import catalog
from bench.data.loaders import read_jsonl
from bench.errors import UserError

OPENQA_EVAL = "openqa-eval"
HUMAN_FILE = "NQ301_human.tsv"
GOLD_FILE = "NQ_DPR.jsonl"
HUMAN_COLUMNS = ("id", "Question", "Model answer", "Acceptable?")
HUMAN_VERDICTS = {"Yes": True, "No": False}
JSONL_KEYS = ("question", "gold_answers", "answer", "human_correct")
JSONL_FIELDS = "question (string), gold_answers (non-empty list of strings), answer (string), human_correct (bool)"


@dataclass(frozen=True)
class LabelledAnswer:
    qid: str
    question: str
    gold_answers: tuple[str, ...]
    answer: str
    human_correct: bool


@dataclass(frozen=True)
class LabelledSet:
    name: str
    rows: list[LabelledAnswer]
    source: str                     # the file(s) read
    dropped_duplicates: int = 0


def read_gold_answers(path: Path) -> dict[str, tuple[str, ...]]:
    """question -> gold answers of an OpenQA-eval model_outputs file."""
    gold = {}
    for n, obj in read_jsonl(path, ("question", "answer"), "question (string) and answer (the gold list)"):
        question, answers = obj.get("question"), obj.get("answer")
        if not isinstance(question, str) or not isinstance(answers, list) or not answers \
                or not all(isinstance(a, str) for a in answers):
            raise UserError(f"{path} line {n}: expected question (string) and answer (a non-empty list of strings)")
        gold[question] = tuple(answers)
    return gold


def load_openqa_eval(folder: Path, name: str = OPENQA_EVAL) -> LabelledSet:
    """The human judgments of ``folder/NQ301_human.tsv`` with the gold answers of ``folder/NQ_DPR.jsonl``."""
    human, gold_path = folder / HUMAN_FILE, folder / GOLD_FILE
    for path in (human, gold_path):
        if not path.is_file():
            raise UserError(f"{path}: missing (expected the OpenQA-eval release files {HUMAN_FILE} and {GOLD_FILE};"
                            f" `python -m bench data pull {OPENQA_EVAL}` fetches them)")
    gold = read_gold_answers(gold_path)
    with human.open(encoding="utf-8", newline="") as fh:
        lines = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not lines or tuple(lines[0][:len(HUMAN_COLUMNS)]) != HUMAN_COLUMNS:
        raise UserError(f"{human} line 1: expected the header columns {', '.join(HUMAN_COLUMNS)} (tab-separated)")
    rows, seen, dropped = [], {}, 0
    for n, cells in enumerate(lines[1:], 2):
        if not any(cells):
            continue
        if len(cells) < len(HUMAN_COLUMNS):
            raise UserError(f"{human} line {n}: expected {len(HUMAN_COLUMNS)} tab-separated columns "
                            f"({', '.join(HUMAN_COLUMNS)}), got {len(cells)}")
        qid, question, answer, verdict = cells[:len(HUMAN_COLUMNS)]
        if verdict not in HUMAN_VERDICTS:
            raise UserError(f"{human} line {n}: Acceptable? is {verdict!r}, expected Yes or No")
        if question not in gold:
            raise UserError(f"{human} line {n}: the question {question!r} is not in {gold_path}")
        pair = (question, answer)
        if pair in seen:
            if seen[pair] != HUMAN_VERDICTS[verdict]:
                raise UserError(f"{human} line {n}: the answer {answer!r} to {question!r} is judged both Yes and "
                                f"No")
            dropped += 1
            continue
        seen[pair] = HUMAN_VERDICTS[verdict]
        rows.append(LabelledAnswer(qid, question, gold[question], answer, HUMAN_VERDICTS[verdict]))
    if not rows:
        raise UserError(f"{human}: no judged answers")
    return LabelledSet(name, rows, f"{human} + {gold_path}", dropped)


def _field(obj: dict, key: str, path: Path, n: int):
    value = obj.get(key)
    valid = {"question": isinstance(value, str), "answer": isinstance(value, str),
             "human_correct": isinstance(value, bool),
             "gold_answers": isinstance(value, list) and bool(value) and all(isinstance(g, str) for g in value)}[key]
    if not valid:
        raise UserError(f"{path} line {n}: field {key!r} is {value!r}; expected {JSONL_FIELDS}")
    return value


def load_labelled_jsonl(path: Path) -> LabelledSet:
    """The generic format: one ``{"question", "gold_answers", "answer", "human_correct"[, "id"]}`` object a line."""
    rows = []
    for n, obj in read_jsonl(path, JSONL_KEYS, JSONL_FIELDS):
        question, gold, answer, human = (_field(obj, k, path, n) for k in JSONL_KEYS)
        rows.append(LabelledAnswer(str(obj.get("id", n)), question, tuple(gold), answer, human))
    if not rows:
        raise UserError(f"{path}: no labelled answers (expected one JSON object a line with {JSONL_FIELDS})")
    return LabelledSet(path.stem, rows, str(path))


def load_labelled(name_or_path: str, data_dir: str | None = None, cache_dir: str | None = None) -> LabelledSet:
    """``openqa-eval`` (its checked local copy, downloaded when missing), a folder holding the OpenQA-eval files, or
    a JSONL file in the generic format."""
    if name_or_path == OPENQA_EVAL:
        return load_openqa_eval(catalog.checked_folder(OPENQA_EVAL, data_dir, cache_dir))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return load_openqa_eval(path, path.name)
    if path.is_file():
        return load_labelled_jsonl(path)
    raise UserError(f"--data {name_or_path}: not {OPENQA_EVAL!r}, a folder with the OpenQA-eval files, nor a JSONL "
                    f"file of labelled answers")
