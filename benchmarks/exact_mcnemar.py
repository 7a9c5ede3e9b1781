"""Exact McNemar p-values for a run's 0/1 answer metrics (accuracy, EM), each reranker against a baseline.

    python benchmarks/exact_mcnemar.py results/<run-id> --baseline minilm

On 0/1 values the paired t-test is optimistic. The exact test counts the discordant questions - b that the
reranker gets right and the baseline wrong, c the other way round - and asks how likely a split at least as uneven
is when each discordant question is a fair coin: the two-sided binomial test of b out of b + c at 1/2 (the exact
McNemar test; the exact sign-flip test of the paired differences gives the same p). A metric counts as 0/1 when every
value of both rerankers is 0 or 1. p_holm is Holm-corrected over every (reranker, metric) row of a (dataset, reader).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.errors import UserError  # noqa: E402
from bench.runner import RecordStore  # noqa: E402
from bench.stats import holm  # noqa: E402
from bench.types import QueryRecord  # noqa: E402


def exact_mcnemar(system: Sequence[float], baseline: Sequence[float]) -> tuple[int, int, float]:
    """(b, c, two-sided exact p) for paired 0/1 values: b = system 1 and baseline 0, c = the reverse."""
    from scipy.stats import binomtest

    b = sum(1 for s, t in zip(system, baseline, strict=True) if s == 1 and t == 0)
    c = sum(1 for s, t in zip(system, baseline, strict=True) if s == 0 and t == 1)
    return b, c, (1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue))


def mcnemar_table(records: Iterable[QueryRecord], baseline: str) -> pd.DataFrame:
    """One row per (dataset, reader, reranker other than the baseline, 0/1 metric), paired by question id."""
    by_key: dict[tuple[str, str, str], dict[str, QueryRecord]] = {}
    for r in records:
        if r.status == "ok":
            by_key.setdefault((r.dataset, r.reader, r.reranker), {})[r.qid] = r
    rows = []
    for (dataset, reader, reranker), recs in sorted(by_key.items()):
        base = by_key.get((dataset, reader, baseline))
        if reranker == baseline or base is None:
            continue
        qids = sorted(recs.keys() & base.keys())
        for metric in sorted(set.intersection(*(set(recs[q].metrics) & set(base[q].metrics) for q in qids))):
            sys_values = [recs[q].metrics[metric] for q in qids]
            base_values = [base[q].metrics[metric] for q in qids]
            if not all(v in (0, 1) for v in sys_values + base_values):
                continue
            b, c, p = exact_mcnemar(sys_values, base_values)
            rows.append({"dataset": dataset, "reader": reader, "reranker": reranker, "baseline": baseline,
                         "metric": metric, "n": len(qids), "system": sum(sys_values) / len(qids),
                         "baseline_value": sum(base_values) / len(qids), "b": b, "c": c, "p_exact": p})
    table = pd.DataFrame(rows, columns=["dataset", "reader", "reranker", "baseline", "metric", "n", "system",
                                        "baseline_value", "b", "c", "p_exact"])
    table["p_holm"] = table.groupby(["dataset", "reader"])["p_exact"].transform(lambda p: holm(list(p)))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a results/<run-id>/ folder")
    parser.add_argument("--baseline", required=True, help="the reranker every other one is compared with")
    args = parser.parse_args(argv)
    path = args.run / "records.jsonl"
    if not path.is_file():
        raise UserError(f"{args.run}: no records.jsonl (expected a results/<run-id>/ folder)")
    table = mcnemar_table(RecordStore(path).records.values(), args.baseline)
    if table.empty:
        raise UserError(f"{path}: no 0/1 answer metric with records of baseline {args.baseline!r} and another "
                        f"reranker")
    print(table.to_markdown(index=False, floatfmt=".4g"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
