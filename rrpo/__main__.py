"""``python -m rrpo train | evaluate``: train a pointwise reranker by RRPO; compare it with its backbone.

train      every option of ``rrpo.trainer.RRPOConfig`` (defaults and reasons are documented there); ``--out`` gets
           config.json + rrpo_delta.safetensors (the reloadable checkpoint), train_log.jsonl, training_curves.png,
           reference_baseline.jsonl and resume/ (re-running with the same --out continues from there).
           Several processes: ``torchrun --nproc_per_node 2 -m rrpo train ...`` (gloo on CPU).
evaluate   answer F1/EM/accuracy of the reader from the top-k of the backbone and of the RRPO checkpoint on one split,
           with a paired t-test and a paired randomization test.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Sequence

from bench.environment import cache_dir as bench_cache_dir
from bench.errors import UserError
from rrpo.trainer import RRPOConfig

_PARSERS = {"int": int, "float": float, "str": str, "int | None": int, "float | None": float, "str | None": str}


def make_reader(spec: str, template: str, max_tokens: int, cache_dir: str, batch_size: int = 8):
    """The benchmark's reader (same engine, template and cache as ``python -m bench run``), so answers computed
    during training are cache hits at evaluation and vice versa."""
    from bench.llm import make_engine
    from bench.llm.cache import CachedEngine, LLMCache
    from bench.prompts import load_template
    from bench.readers import Reader

    engine = CachedEngine(make_engine(spec, batch_size=batch_size), LLMCache(Path(cache_dir) / "llm-cache.sqlite"))
    return Reader(engine, load_template(template), max_tokens=max_tokens)


def make_metric(name: str, cache_dir: str):
    from rrpo.rewards import answer_metric, judge_metric

    if name.startswith("judge:"):
        from bench.judges import Judge
        from bench.llm import make_engine
        from bench.llm.cache import CachedEngine, LLMCache

        engine = CachedEngine(make_engine(name[len("judge:"):]), LLMCache(Path(cache_dir) / "llm-cache.sqlite"))
        return judge_metric(Judge(engine))
    return answer_metric(name)


def candidate_lists(dataset: str, split: str, first_stage_method: str, pool: int, limit: int | None, cache_dir: str):
    from bench.data import load_dataset
    from bench.retrieval import first_stage

    data = load_dataset(dataset, split=split, cache_dir=cache_dir).limit(limit)
    return first_stage(data, first_stage_method, pool, cache_dir=cache_dir)


def build_trainer(cfg: RRPOConfig, out: Path):
    import torch

    from rerankers.registry import RerankerSettings, get_reranker
    from rrpo.trainer import Dist, assemble_trainer

    cfg.validate()
    dist = Dist.from_env()
    cache_dir = str(bench_cache_dir(cfg.cache_dir))
    lists = candidate_lists(cfg.dataset, cfg.split, cfg.first_stage, cfg.pool, cfg.limit, cache_dir)
    torch.manual_seed(cfg.seed)
    reranker = get_reranker(cfg.backbone, RerankerSettings(checkpoint=cfg.backbone_checkpoint, seed=cfg.seed,
                                                           cache_dir=cache_dir))
    reader = make_reader(cfg.reader, cfg.reader_template, cfg.max_tokens, cache_dir, cfg.reader_batch_size)
    return assemble_trainer(cfg, reranker, reader, make_metric(cfg.metric, cache_dir), lists, out, dist)


def evaluate(checkpoint: str, dataset: str, split: str, reader: str, k: int, pool: int, first_stage: str,
             backbone: str, limit: int | None, reader_template: str, max_tokens: int, cache_dir: str) -> dict[str, Any]:
    from bench.metrics import answer_metrics
    from bench.stats import paired_tests
    from rerankers.registry import RerankerSettings, get_reranker

    lists = candidate_lists(dataset, split, first_stage, pool, limit, cache_dir)
    read = make_reader(reader, reader_template, max_tokens, cache_dir)
    systems = {backbone: get_reranker(backbone), "rrpo": get_reranker("rrpo", RerankerSettings(checkpoint=checkpoint))}
    per_query: dict[str, dict[str, list[float]]] = {}
    for name, reranker in systems.items():
        rankings = reranker.rerank(lists)
        docs = [[cl_docs[d] for d in r.docids[:k]]
                for cl_docs, r in zip(({c.docid: c.doc for c in cl.candidates} for cl in lists), rankings)]
        answers = read.answer([cl.query for cl in lists], docs)
        scores = [answer_metrics(a.text, cl.query.answers) for a, cl in zip(answers, lists)]
        per_query[name] = {m: [float(s[m]) for s in scores] for m in ("F1", "EM", "accuracy")}
    result: dict[str, Any] = {"dataset": dataset, "split": split, "queries": len(lists), "reader": reader, "k": k,
                              "pool": pool, "checkpoint": checkpoint, "baseline": backbone, "metrics": {}}
    for m in ("F1", "EM", "accuracy"):
        test = paired_tests(per_query["rrpo"][m], per_query[backbone][m])
        result["metrics"][m] = {backbone: sum(per_query[backbone][m]) / len(lists),
                                "rrpo": sum(per_query["rrpo"][m]) / len(lists),
                                "mean_diff": test.mean_diff, "p_ttest": test.p_ttest,
                                "p_randomization": test.p_randomization}
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rrpo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a reranker by RRPO (options: rrpo.trainer.RRPOConfig)")
    defaults = RRPOConfig()
    for f in fields(RRPOConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.type == "bool":
            train.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            train.add_argument(flag, type=_PARSERS[f.type], default=default, help=f"default: {default}")
    train.add_argument("--out", required=True, help="run folder (checkpoint, log, plot); re-run to resume")

    ev = sub.add_parser("evaluate", help="answer metrics of backbone vs RRPO checkpoint, with paired tests")
    ev.add_argument("--checkpoint", required=True, help="RRPO checkpoint folder (a train --out) or hub id")
    ev.add_argument("--dataset", default="fictional")
    ev.add_argument("--split", default="test")
    ev.add_argument("--reader", default="smollm2", help="engine spec; may differ from the training reader")
    ev.add_argument("--k", type=int, default=3)
    ev.add_argument("--pool", type=int, default=20)
    ev.add_argument("--first-stage", default="bm25")
    ev.add_argument("--backbone", default="minilm", help="the registered reranker to compare against")
    ev.add_argument("--limit", type=int, default=None)
    ev.add_argument("--reader-template", default="reader-qa")
    ev.add_argument("--max-tokens", type=int, default=32)
    ev.add_argument("--cache-dir", default=None)
    ev.add_argument("--output", help="also write the result JSON here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            cfg = RRPOConfig(**{f.name: getattr(args, f.name) for f in fields(RRPOConfig)})
            trainer = build_trainer(cfg, Path(args.out))
            trainer.train()
            if trainer.dist.main:
                last = json.loads((Path(args.out) / "train_log.jsonl").read_text().splitlines()[-1])
                print(json.dumps({"out": args.out, "steps": last["step"], "seconds": last["seconds"],
                                  "cache_fraction": last["cache_fraction"], "config": asdict(cfg)}, indent=2))
        else:
            result = evaluate(args.checkpoint, args.dataset, args.split, args.reader, args.k, args.pool,
                              args.first_stage, args.backbone, args.limit, args.reader_template, args.max_tokens,
                              str(bench_cache_dir(args.cache_dir)))
            text = json.dumps(result, indent=2)
            if args.output:
                Path(args.output).write_text(text + "\n")
            print(text)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
