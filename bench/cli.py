"""``python -m bench run | list | report``."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from bench.errors import UserError
from bench.report import ANSWER_METRICS
from bench.runner import RunConfig, Runner


def _checkpoint_pairs(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, ckpt = v.partition("=")
        if not sep or not name or not ckpt:
            raise UserError(f"--checkpoint {v!r}: expected RERANKER=PATH_OR_HUB_ID, e.g. monot5=/models/monot5")
        out[name] = ckpt
    return out


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """Where ``openai:*`` readers and judges are served: ``bench run``'s options, which ``rrpo train`` shares."""
    d = RunConfig()
    parser.add_argument("--base-url", default=d.base_url, help="OpenAI-compatible server (vLLM, Ollama, ...)")
    parser.add_argument("--api-key-env", default=d.api_key_env, help="NAME of the environment variable with the key")
    parser.add_argument("--judge-base-url", default=d.judge_base_url, help="the judge's server, if not --base-url's")
    parser.add_argument("--judge-api-key-env", default=d.judge_api_key_env, help="the judge's key variable, if not "
                        "--api-key-env's")


def build_parser() -> argparse.ArgumentParser:
    d = RunConfig()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="retrieve, rerank, read, score; write results/<run-id>/ and print the leaderboard")
    run.add_argument("--datasets", nargs="+", default=d.datasets, help="registered names or paths (default: fictional)")
    run.add_argument("--split", default=d.split)
    run.add_argument("--rerankers", nargs="+", default=d.rerankers)
    run.add_argument("--reader", "--readers", dest="readers", nargs="+", default=d.readers,
                     help="smollm2 | hf:<model id or path> | openai:<model> | none (retrieval metrics only)")
    run.add_argument("--judge", default=d.judge, help="engine spec of a reference-based LLM judge (as --reader)")
    run.add_argument("--first-stage", default=d.first_stage, help="bm25 | dense | given | <TREC run or Request JSONL>")
    run.add_argument("--pool", type=int, default=d.pool, help="first-stage candidates per query to rerank")
    run.add_argument("--top-k", type=int, default=d.top_k, help="documents the reader sees (0 = closed book)")
    run.add_argument("--limit", type=int, default=d.limit, help="first N queries only")
    run.add_argument("--baseline", default=d.baseline, help="reranker the significance tests compare against")
    run.add_argument("--primary-metric", default=d.primary_metric, choices=ANSWER_METRICS,
                     help="the answer metric the claim is made on, declared before the run (default: F1, RRPO's "
                          "training metric); named in leaderboard.md")
    run.add_argument("--seed", type=int, default=d.seed)
    run.add_argument("--checkpoint", action="append", default=[], metavar="RERANKER=PATH",
                     help="checkpoint override for one reranker (repeatable)")
    run.add_argument("--rrpo-checkpoint", help="checkpoint (folder or hub id) of the rrpo reranker")
    run.add_argument("--reader-template", default=d.reader_template)
    run.add_argument("--judge-template", default=d.judge_template)
    run.add_argument("--max-tokens", type=int, default=d.max_tokens)
    run.add_argument("--device", default=d.device)
    run.add_argument("--dtype", default=d.dtype)
    run.add_argument("--batch-size", type=int, default=d.batch_size)
    add_server_options(run)
    run.add_argument("--concurrency", type=int, default=d.concurrency)
    run.add_argument("--timeout", type=float, default=d.timeout)
    run.add_argument("--max-retries", type=int, default=d.max_retries)
    run.add_argument("--chunk-size", type=int, default=d.chunk_size)
    run.add_argument("--output", default=d.output)
    run.add_argument("--run-id", default=d.run_id)
    run.add_argument("--cache-dir", default=d.cache_dir)
    run.add_argument("--llm-cache", choices=["use", "bypass", "refresh"], default=d.llm_cache)

    sub.add_parser("list", help="registered rerankers (alias -> checkpoint -> kind -> extra), datasets, readers")

    rep = sub.add_parser("report", help="rebuild the leaderboard of a finished or interrupted run from its records")
    rep.add_argument("run_dir")
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    names = {f.name for f in fields(RunConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values["checkpoints"] = _checkpoint_pairs(args.checkpoint)
    if args.rrpo_checkpoint:
        values["checkpoints"]["rrpo"] = args.rrpo_checkpoint
    for name in ("pool", "top_k", "chunk_size", "batch_size", "concurrency"):
        if values[name] < (0 if name == "top_k" else 1):
            raise UserError(f"--{name.replace('_', '-')} {values[name]}: expected a positive number")
    return RunConfig(**values)


def cmd_list() -> None:
    import pandas as pd

    from bench.data.base import DATASETS
    from rerankers.registry import describe

    import bench.data  # noqa: F401  (registers the dataset names)

    print("Rerankers\n")
    print(pd.DataFrame(describe()).to_markdown(index=False))
    print("\nDatasets (or pass a path: BEIR folder, QA JSONL folder, HotpotQA distractor file)\n")
    print(pd.DataFrame([{"name": n, "description": desc} for n, (_, desc) in sorted(DATASETS.items())])
          .to_markdown(index=False))
    print("\nReaders / judges: smollm2 (offline default) | hf:<model id or path> | openai:<model> "
          "[--base-url URL --api-key-env VAR] | none")


def cmd_report(run_dir: str) -> None:
    from bench.report import ReportOptions, write_reports
    from bench.runner import RecordStore

    path = Path(run_dir)
    if not (path / "records.jsonl").is_file():
        raise UserError(f"{path}: no records.jsonl (expected a results/<run-id>/ folder)")
    cfg = json.loads((path / "config.json").read_text())
    opts = ReportOptions(baseline=cfg.get("baseline", "none"), top_k=cfg.get("top_k", 3), seed=cfg.get("seed", 0),
                         primary_metric=cfg.get("primary_metric", "F1"))
    print(write_reports(list(RecordStore(path / "records.jsonl").records.values()), path, opts))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            runner = Runner(config_from_args(args))
            print(runner.run())
            print(f"\nresults: {runner.out_dir}")
        elif args.command == "list":
            cmd_list()
        else:
            cmd_report(args.run_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
