"""Answer position: does a reranker help because it finds the answer-bearing passage, or because it orders passages
the way this reader likes?

Each record of a run keeps the docids of its query's answer-bearing passages (``info["answer_bearing"]``, written
by the runner from ``answer_bearing``). Per (dataset, reader, reranker) the answered queries are split by where the
best-placed answer-bearing passage landed in the reranker's list — rank 1, ranks 2..k, not in the top k (k = the
run's ``top_k``, the passages the reader saw; a passage the first stage never retrieved counts as not in the top k) —
and every answer metric is averaged within each part. If two rerankers' accuracies within a part are alike, the one
that wins overall wins by putting the passage where the reader sees it (which would help any reader), not by an
order this reader prefers; a reader-specific preference shows as a difference within a part.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from bench.metrics import is_answer_metric
from bench.types import QueryRecord

SOURCE_QRELS = "qrels (max grade)"


def answer_bearing(labels: Mapping[str, float], source: str = SOURCE_QRELS) -> dict | None:
    """The record entry naming the answer-bearing passages: those with the highest label, if it is above 0. ``labels``
    is docid -> label: a query's qrels grades, or per-passage utility labels where a run has them (say which in
    ``source``). None when no passage is labelled above 0 (the query then sits outside the analysis)."""
    top = max(labels.values(), default=0)
    if top <= 0:
        return None
    return {"source": source, "docids": sorted(d for d, v in labels.items() if v == top)}


def position_labels(top_k: int) -> list[str]:
    """The parts of the split, best first ("ranks 2..k" only when k > 1)."""
    return ["rank 1", *([f"ranks 2..{top_k}"] if top_k > 1 else []), f"not in top {top_k}"]


def answer_position(ranking: Sequence[str], docids: Sequence[str], top_k: int) -> str:
    """Where the best-placed of ``docids`` is in ``ranking``, as one of ``position_labels(top_k)``."""
    wanted = set(docids)
    rank = next((i for i, d in enumerate(ranking) if d in wanted), None)
    labels = position_labels(top_k)
    if rank is None or rank >= top_k:
        return labels[-1]
    return labels[0] if rank == 0 else labels[1]


def answer_position_table(records: Sequence[QueryRecord], top_k: int) -> pd.DataFrame:
    """One row per (dataset, reader, reranker, position), in first-seen order and position order: ``n`` answered
    queries with an answer-bearing passage in that position, ``share`` of the reranker's labelled answered queries,
    the mean of every answer metric there (NaN where n = 0), and ``source`` (where the labels came from). Queries
    without a label (``info["answer_bearing"]`` absent) and failed ones are left out; empty when no record has a
    label or ``top_k`` < 1 (closed book: the reader saw no passage)."""
    labelled = [r for r in records if r.status == "ok" and r.info.get("answer_bearing")]
    if top_k < 1 or not labelled:
        return pd.DataFrame()
    metrics = list(dict.fromkeys(m for r in labelled for m in r.metrics if is_answer_metric(m)))
    groups: dict[tuple[str, str, str], list[QueryRecord]] = {}
    for r in labelled:
        groups.setdefault((r.dataset, r.reader, r.reranker), []).append(r)
    rows = []
    for (dataset, reader, reranker), recs in groups.items():
        where = [answer_position(r.ranking, r.info["answer_bearing"]["docids"], top_k) for r in recs]
        sources = ", ".join(sorted({r.info["answer_bearing"]["source"] for r in recs}))
        for label in position_labels(top_k):
            part = [r for r, w in zip(recs, where) if w == label]
            row = {"dataset": dataset, "reader": reader, "reranker": reranker, "position": label, "n": len(part),
                   "share": len(part) / len(recs)}
            for m in metrics:
                values = [r.metrics[m] for r in part if m in r.metrics]
                row[m] = sum(values) / len(values) if values else float("nan")
            rows.append({**row, "source": sources})
    return pd.DataFrame(rows)


def answer_position_markdown(table: pd.DataFrame, top_k: int, primary_metric: str) -> str | None:
    """The leaderboard section: per (dataset, reader) a table of reranker × position with n, share, accuracy and the
    primary metric. None when ``table`` is empty."""
    if table.empty:
        return None
    shown = [m for m in dict.fromkeys(("accuracy", primary_metric)) if m in table.columns]
    parts = ["### Where the answer-bearing passage landed", "",
             f"Answered queries split by the rank of the best-placed answer-bearing passage (labels: "
             f"{', '.join(sorted(set(table['source'])))}) in the reranker's list; the reader saw the top {top_k}. "
             f"Within one position, a reranker that helps only by finding the passage scores like the others; a "
             f"difference there is how it orders passages for this reader. `answer_position.csv` has every answer "
             f"metric.", ""]
    for (dataset, reader), g in table.groupby(["dataset", "reader"], sort=False):
        cells = pd.DataFrame({"reranker": g["reranker"], "position": g["position"], "n": g["n"],
                              "share": [f"{v:.3f}" for v in g["share"]],
                              **{f"{m} (primary)" if m == primary_metric else m:
                                 ["–" if pd.isna(v) else f"{v:.3f}" for v in g[m]] for m in shown}})
        table_md = cells.to_markdown(index=False, disable_numparse=True)    # the cells are formatted already
        parts += [f"#### {dataset} · reader {reader}", "", table_md, ""]
    return "\n".join(parts).rstrip()
