"""Where each reranker puts each kind of passage of the embedded ``fictional`` datasets, from a run's records.

    python benchmarks/fictional_roles.py results/<run-id> [--top-k 3]

For every (reader, reranker) of the run's ``fictional`` and ``fictional-large`` records (a table per dataset): the
mean rank of each passage role of the question (answer-bearing, echoing topical, unknown-fact, related, near-miss;
ranks over the reranked pool, 1 = first), how many questions have the answer-bearing passage and a near-miss one in
the top-k, and how often the reader's answer says the fact is unknown, with and without an unknown-fact passage in
its top-k. The roles come from the generator (``generate(seed, sizes).roles``), so the numbers trace back to
``records.jsonl`` and the seed alone.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data.synthetic import (ANSWER, LARGE_SPLIT_SIZES, NEAR_MISS, RELATED, SPLIT_SIZES, TOPICAL,  # noqa: E402
                                   UNKNOWN, generate)

ROLES = (ANSWER, TOPICAL, UNKNOWN, RELATED, NEAR_MISS)
FICTIONAL_SIZES = {"fictional": SPLIT_SIZES, "fictional-large": LARGE_SPLIT_SIZES}   # each its own collection
# How SmolLM2 and other readers put "the context does not say": the unknown-fact passages' own words among them.
SAYS_UNKNOWN = re.compile(r"myster|nobody knows|no one knows|unknown|not known", re.IGNORECASE)


def role_table(records: Iterable[Mapping], roles: Mapping[str, tuple[str, str]], top_k: int) -> pd.DataFrame:
    """One row per (reader, reranker): mean rank per role, answer / near-miss in the top-k (share of questions),
    and the share of answers saying the fact is unknown with / without an unknown-fact passage in the top-k."""
    rows = []
    for r in records:
        own = [role if qid == r["qid"] else "" for qid, role in (roles.get(d, ("", "")) for d in r["ranking"])]
        row = {"reader": r["reader"], "reranker": r["reranker"]}
        for role in ROLES:
            row[f"rank {role}"] = [i + 1 for i, x in enumerate(own) if x == role]
        row[f"answer in top {top_k}"] = ANSWER in own[:top_k]
        row[f"near-miss in top {top_k}"] = NEAR_MISS in own[:top_k]
        says_unknown = bool(SAYS_UNKNOWN.search(r.get("answer") or ""))
        with_unknown = UNKNOWN in own[:top_k]
        row[f"says unknown (unknown-fact in top {top_k})"] = says_unknown if with_unknown else None
        row["says unknown (otherwise)"] = None if with_unknown else says_unknown
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in (f"rank {role}" for role in ROLES):
        frame[column] = frame[column].map(lambda ranks: sum(ranks) / len(ranks) if ranks else None)
    grouped = frame.groupby(["reader", "reranker"], sort=False)
    return grouped.agg({c: "mean" for c in frame.columns if c not in ("reader", "reranker")}).reset_index()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a results/<run-id> folder")
    p.add_argument("--top-k", type=int, help="default: the run's top-k (config.json)")
    p.add_argument("--seed", type=int, default=0, help="the fictional dataset's seed (the registered name is 0)")
    args = p.parse_args(argv)
    config = json.loads((args.run / "config.json").read_text())
    top_k = args.top_k if args.top_k is not None else config["top_k"]
    with open(args.run / "records.jsonl") as f:
        records = [json.loads(line) for line in f if line.strip()]
    found = False
    for dataset, sizes in FICTIONAL_SIZES.items():
        mine = [r for r in records if r["dataset"] == dataset and r["status"] == "ok"]
        if mine:
            found = True
            table = role_table(mine, generate(args.seed, sizes).roles, top_k)
            print(f"{dataset}\n\n{table.to_markdown(index=False, floatfmt='.3f')}\n")
    if not found:
        print(f"error: {args.run / 'records.jsonl'}: no answered fictional or fictional-large records", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
