"""Reranking cost in (query, passage) pairs per second of several rerankers on the same pairs, one after another in one
process (so they share the machine's load of the moment): the first N queries of a dataset, their BM25 top M.
Wall time and process CPU time; on a shared machine CPU time is the steadier of the two.

    python benchmarks/pair_rate.py --rerankers minilm upr-smollm2 upr-gemma3-270m --queries 4 --pool 20
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rerankers", nargs="+", default=["minilm", "upr-smollm2", "upr-gemma3-270m"])
    parser.add_argument("--dataset", default="fictional")
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-dir")
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--pool", type=int, default=20)
    args = parser.parse_args()

    from bench.data import load_dataset
    from bench.retrieval import first_stage
    from rerankers.registry import RerankerSettings, get_reranker

    dataset = load_dataset(args.dataset, split=args.split, data_dir=args.data_dir).limit(args.queries)
    lists = first_stage(dataset, "bm25", args.pool)
    pairs = sum(len(cl.candidates) for cl in lists)
    print(f"{args.dataset}/{args.split}: {len(lists)} queries, {pairs} pairs (BM25 top {args.pool})\n")
    print("| reranker | wall s | pairs/s (wall) | CPU s | pairs/s (CPU) |\n|---|---|---|---|---|")
    for name in args.rerankers:
        reranker = get_reranker(name, RerankerSettings(device="cpu", dtype="float32"))
        wall, cpu = time.perf_counter(), time.process_time()
        reranker.rerank(lists)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"| {name} | {wall:.1f} | {pairs / wall:.1f} | {cpu:.1f} | {pairs / cpu:.1f} |", flush=True)


if __name__ == "__main__":
    main()
