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

from bench.data import catalog, loaders, synthetic  # noqa: F401  (importing them registers their names)
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
        dataset = loaders.load_path(path, split)
    dataset.validate()
    return dataset
