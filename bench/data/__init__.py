"""Datasets: ``load_dataset(name_or_path, split)`` returns a ``Dataset`` (corpus + the split's queries with their
answers and qrels).

A name is looked up in the registry (``bench.data.base.DATASETS``, plugins included): ``fictional`` (the embedded offline dataset,
``bench.data.synthetic``), the BEIR names (downloaded on first use), ``hotpotqa-distractor`` and the catalog's
benchmarks (TREC DL, MuSiQue, 2WikiMultihopQA, NQ-open, TriviaQA, AmbigNQ, PopQA: ``bench.data.catalog``).
Anything else is read as a path: a BEIR folder, a HotpotQA distractor file, a QA JSONL with its corpus (formats in
``bench.data.loaders``) or a QA release file (``bench.data.qa_formats``).
"""
from __future__ import annotations

import inspect
from pathlib import Path

from bench.data import catalog, loaders, qa_formats, synthetic  # noqa: F401  (importing them registers names)
from bench.data.base import DATASETS, Dataset, register_dataset, unknown_dataset
from bench.errors import UserError

__all__ = ["DATASETS", "Dataset", "load_dataset", "register_dataset"]


def load_dataset(name_or_path: str, split: str = "test", cache_dir: str | None = None,
                 data_dir: str | None = None) -> Dataset:
    """``data_dir``: the folder of local copies (default ``$RERANK_BENCH_DATA``; see ``bench.data.catalog``); loaders
    without files (``fictional``) take no data dir."""
    if name_or_path in DATASETS:
        loader = DATASETS.load(name_or_path)
        reads_files = "data_dir" in inspect.signature(loader).parameters
        dataset = loader(split=split, cache_dir=cache_dir,
                         **({"data_dir": data_dir} if data_dir and reads_files else {}))
        if not isinstance(dataset, Dataset):
            raise UserError(f"dataset {name_or_path!r}: its loader returned a {type(dataset).__name__}, expected a "
                            f"bench.data.Dataset")
    else:
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise unknown_dataset(name_or_path)
        dataset = load_path(path, split)
    dataset.validate()          # ids and texts of every loader, plugins' included: strings, some text
    return dataset


def load_path(path: Path, split: str = "test") -> Dataset:
    """A dataset from a folder or file path, whose format is told by its files (the formats are described in
    ``bench.data.loaders`` and ``bench.data.qa_formats``)."""
    if path.is_dir():
        if (path / "qrels").is_dir() and (path / "queries.jsonl").is_file() and (path / "corpus.jsonl").is_file():
            return loaders.load_beir_folder(path, split)
        questions = next((p for p in (path / f"{split}.jsonl", path / "questions.jsonl") if p.is_file()), None)
        if questions is not None and (path / "corpus.jsonl").is_file():
            return loaders.load_qa_jsonl(questions, path / "corpus.jsonl", split, name=path.name)
        raise UserError(f"{path}: not a dataset folder; expected corpus.jsonl with queries.jsonl + qrels/<split>.tsv "
                        f"(BEIR) or with {split}.jsonl / questions.jsonl (QA JSONL)")
    release_loader = qa_formats.release_format(path)   # MuSiQue, 2Wiki, NQ-open, TriviaQA, AmbigNQ, PopQA, DPR
    if release_loader is not None:
        return release_loader(path, split)
    if path.suffix == ".json":
        return loaders.load_hotpotqa(path, split)
    if path.suffix == ".jsonl":
        first = loaders.first_record(path)
        if "context" in first and "supporting_facts" in first:
            return loaders.load_hotpotqa(path, split)
        if "golden_answers" in first:
            corpus_file = path.parent / "corpus.jsonl"
            if not corpus_file.is_file():
                raise UserError(f"{path}: QA JSONL questions need their corpus as {corpus_file}")
            return loaders.load_qa_jsonl(path, corpus_file, split, name=path.stem)
    raise UserError(f"{path}: unrecognised dataset file; expected a HotpotQA .json/.jsonl file (records with "
                    f"context and supporting_facts), a QA .jsonl (id, question, golden_answers) beside corpus.jsonl, "
                    f"or a release file of MuSiQue, 2WikiMultihopQA, NQ-open, TriviaQA, AmbigNQ, PopQA or DPR")
