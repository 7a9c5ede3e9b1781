"""Query2doc's effect, measured on the same queries with and without expansion (``bench.expansion``).

    python benchmarks/query2doc.py --datasets fictional scifact --data-dir /work/shared/data --query2doc smollm2 \\
        --out results/query2doc

1. First stage: BM25 Recall@20 and nDCG@10 (trec_eval through ``bench.metrics.retrieval_metrics``) of the first
   ``--pool`` candidates, every query with qrels, plain vs expanded; paired randomization test (``bench.stats``).
2. Answers, for the datasets with gold answers: two real ``bench run``s (``--rerankers``, ``--reader``), without and
   with ``--query2doc``; per reranker F1 (paired randomization test) and accuracy (0/1: exact McNemar test).

Writes ``query2doc.csv`` and ``query2doc.md`` into ``--out`` (the runs go to ``--out/runs``). Every LLM call goes
through the benchmark's cache: a re-run recomputes the tables without generating anything.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.builder import Builder  # noqa: E402
from bench.cli import add_server_options, servers_from_args  # noqa: E402
from bench.config import Components, Data, Reporting, RunConfig, Runtime  # noqa: E402
from bench.data import load_dataset  # noqa: E402
from bench.data.base import Dataset  # noqa: E402
from bench.errors import UserError  # noqa: E402
from bench.expansion import check_query2doc, expanded_first_stage  # noqa: E402
from bench.metrics import is_binary_metric, retrieval_metrics  # noqa: E402
from bench.report import paired_values, scored_values  # noqa: E402
from bench.runner import Runner  # noqa: E402
from bench.stats import mcnemar_exact, paired_tests  # noqa: E402
from bench.store import RecordStore  # noqa: E402
from bench.types import Ranking  # noqa: E402

FIRST_STAGE_METRICS = ("Recall@20", "nDCG@10")
ANSWER_METRICS = ("F1", "accuracy")


def compare(section: str, dataset: str, system: str, metric: str, without: dict[str, float],
            with_: dict[str, float]) -> dict:
    """One table row: the means, the queries expansion made better and worse, and the paired test of ``with_``
    against ``without`` on the queries both score (exact McNemar for a 0/1 metric, else paired randomization)."""
    x, y = paired_values(with_, without)
    binary = is_binary_metric(metric)
    p = mcnemar_exact(x, y) if binary else paired_tests(x, y).p_randomization
    mean = lambda v: sum(v) / len(v) if v else float("nan")   # noqa: E731
    return {"section": section, "dataset": dataset, "system": system, "metric": metric, "n": len(x),
            "without": mean(y), "with query2doc": mean(x), "difference": mean(x) - mean(y),
            "better": sum(a > b for a, b in zip(x, y)), "worse": sum(a < b for a, b in zip(x, y)), "p": p,
            "test": "exact McNemar" if binary else "paired randomization"}


def first_stage_rows(config: RunConfig, dataset: Dataset) -> tuple[list[dict], dict]:
    """Recall@20 and nDCG@10 of the first stage's candidate lists without and with expansion, and facts about the
    pseudo-documents (count, mean words)."""
    expander, d = Builder(config).query2doc(), config.data
    per_condition = {}
    pseudo_docs = {}
    for name, exp in (("without", None), ("with", expander)):
        lists, docs = expanded_first_stage(dataset, d.first_stage, d.pool, cache_dir=config.runtime.cache_dir,
                                           expander=exp)
        pseudo_docs.update(docs)
        rankings = {cl.query.qid: Ranking(cl.query.qid, [c.docid for c in cl.candidates],
                                          [c.score for c in cl.candidates]) for cl in lists}
        qrels = {cl.query.qid: cl.query.qrels for cl in lists if cl.query.qrels}
        per_condition[name] = retrieval_metrics(rankings, qrels, top_k=20, relevance_level=dataset.relevance_level)
    rows = [compare("first stage", dataset.name, d.first_stage, m,
                    {q: v[m] for q, v in per_condition["without"].items()},
                    {q: v[m] for q, v in per_condition["with"].items()}) for m in FIRST_STAGE_METRICS]
    words = [len(d.text.split()) for d in pseudo_docs.values()]
    facts = {"dataset": dataset.name, "queries": len(dataset.queries), "pseudo-documents": len(words),
             "mean words": sum(words) / len(words) if words else 0.0,
             "empty": sum(w == 0 for w in words)}
    return rows, facts


def answer_rows(config: RunConfig, dataset_name: str) -> list[dict]:
    """Two real runs of ``dataset_name`` (without, with --query2doc); F1 and accuracy per reranker."""
    records = {}
    for name, spec in (("without", None), ("with", config.data.query2doc)):
        runner = Runner(replace(config, data=replace(config.data, datasets=[dataset_name], query2doc=spec)))
        runner.run()
        records[name] = list(RecordStore(runner.out_dir / "records.jsonl").records.values())
    rows = []
    for reranker in config.components.rerankers:
        for metric in ANSWER_METRICS:
            without, with_ = (scored_values([r for r in records[k] if r.reranker == reranker], metric)
                              for k in ("without", "with"))
            rows.append(compare("answers", records["with"][0].dataset,
                                f"{reranker} → {config.components.readers[0]}", metric, without, with_))
    return rows


def to_markdown(rows: pd.DataFrame, facts: pd.DataFrame, config: RunConfig) -> str:
    shown = rows.copy()
    for column in ("without", "with query2doc", "difference"):
        shown[column] = shown[column].map(lambda v: f"{v:+.3f}" if column == "difference" else f"{v:.3f}")
    shown["p"] = shown["p"].map(lambda v: f"{v:.3g}")
    d = config.data
    return (f"# Query2doc: {d.query2doc} writes the pseudo-documents ({d.query2doc_template}, at most "
            f"{d.query2doc_max_tokens} tokens)\n\n"
            f"First stage {d.first_stage}, pool {d.pool}, split {d.split}; the same queries with and "
            f"without expansion; p: two-sided, per row (no correction across rows).\n\n"
            f"{shown.to_markdown(index=False, disable_numparse=True)}\n\n"
            f"Pseudo-documents\n\n{facts.to_markdown(index=False)}\n")


def main(argv: list[str] | None = None) -> int:
    d = SimpleNamespace(**RunConfig().flat())
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["fictional"])
    p.add_argument("--split", default=d.split)
    p.add_argument("--query2doc", default="smollm2", metavar="ENGINE", help="the LLM that writes pseudo-documents")
    p.add_argument("--query2doc-template", default=d.query2doc_template)
    p.add_argument("--query2doc-max-tokens", type=int, default=d.query2doc_max_tokens)
    p.add_argument("--first-stage", default=d.first_stage)
    p.add_argument("--pool", type=int, default=d.pool)
    p.add_argument("--top-k", type=int, default=d.top_k, help="documents the reader sees in the answer runs")
    p.add_argument("--limit", type=int, help="first N queries only")
    p.add_argument("--rerankers", nargs="+", default=["none", "minilm"], help="of the answer runs")
    p.add_argument("--reader", default="smollm2", help="of the answer runs")
    p.add_argument("--no-answers", action="store_true", help="first stage only")
    p.add_argument("--data-dir", default=d.data_dir)
    p.add_argument("--cache-dir", default=d.cache_dir)
    p.add_argument("--out", type=Path, default=Path("results/query2doc"))
    add_server_options(p)
    args = p.parse_args(argv)
    config = RunConfig(
        components=Components(rerankers=args.rerankers, readers=[args.reader], top_k=args.top_k,
                              baseline=args.rerankers[0]),
        data=Data(split=args.split, first_stage=args.first_stage, pool=args.pool, limit=args.limit,
                  query2doc=args.query2doc, query2doc_template=args.query2doc_template,
                  query2doc_max_tokens=args.query2doc_max_tokens, data_dir=args.data_dir),
        servers=servers_from_args(args), runtime=Runtime(cache_dir=args.cache_dir),
        reporting=Reporting(output=str(args.out / "runs")))
    d = config.data
    try:
        check_query2doc(d.query2doc, d.first_stage, d.query2doc_template, d.query2doc_max_tokens)
        rows, facts = [], []
        for name in args.datasets:
            dataset = load_dataset(name, split=d.split, cache_dir=config.runtime.cache_dir,
                                   data_dir=d.data_dir).limit(d.limit)
            ds_rows, ds_facts = first_stage_rows(config, dataset)
            rows += ds_rows
            facts.append(ds_facts)
            if dataset.has_answers and not args.no_answers:
                rows += answer_rows(config, name)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table, facts_table = pd.DataFrame(rows), pd.DataFrame(facts)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "query2doc.csv", index=False)
    markdown = to_markdown(table, facts_table, config)
    (args.out / "query2doc.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
