"""trec_eval (through pytrec_eval) on the TREC run files a run folder writes, checked against its leaderboard."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import pytrec_eval


def trec_eval_means(run_file: Path, qrels: dict[str, dict[str, int]], relevance_level: int,
                    top_k: int) -> dict[str, float]:
    """Means over every query of ``qrels`` (one missing from the run scores 0, as ``trec_eval -c``) of the
    leaderboard's headline retrieval metrics and MAP; MRR@10 is recip_rank on the run cut at rank 10."""
    with run_file.open() as f:
        run = pytrec_eval.parse_run(f)
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", f"recall.{top_k},10,100", "map"},
                                          relevance_level=relevance_level).evaluate(run)
    cut_run = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in run.items()}
    cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=relevance_level).evaluate(cut_run)
    names = {"nDCG@10": "ndcg_cut_10", f"Recall@{top_k}": f"recall_{top_k}", "Recall@10": "recall_10",
             "Recall@100": "recall_100", "MAP": "map"}
    means = {name: sum(full.get(q, {}).get(key, 0.0) for q in qrels) / len(qrels) for name, key in names.items()}
    means["MRR@10"] = sum(cut.get(q, {}).get("recip_rank", 0.0) for q in qrels) / len(qrels)
    return means


def assert_trec_runs_reproduce_leaderboard(run_dir: Path, dataset: str, rerankers: list[str],
                                           qrels: dict[str, dict[str, int]], relevance_level: int,
                                           top_k: int) -> None:
    board = pd.read_csv(run_dir / "leaderboard.csv")
    for reranker in rerankers:
        means = trec_eval_means(run_dir / "runs" / f"{dataset}__{reranker}.trec", qrels, relevance_level, top_k)
        rows = board[(board["dataset"] == dataset) & (board["reranker"] == reranker)]
        assert len(rows) > 0
        for _, row in rows.iterrows():          # one row per reader: the same rankings
            for name, value in means.items():
                assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-15), (reranker, name)
