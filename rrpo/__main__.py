"""``python -m rrpo train|study``: train a pointwise reranker by RRPO; run the paper's studies.

train      every option of ``rrpo.trainer.RRPOConfig`` (defaults and reasons are documented there); ``--out`` gets
           config.json + rrpo_delta.safetensors (the reloadable checkpoint), train_log.jsonl, training_curves.png,
           reference_baseline.jsonl and resume/ (re-running with the same --out continues from there).
           Several processes: ``torchrun --nproc_per_node 2 -m rrpo train ...`` (gloo on CPU).
study      the RRPO paper's studies (``rrpo.studies``): ``study transfer --train-readers A B --eval-readers A B C``,
           ``study noisy --noise flip --p 0 0.1 0.3 0.5 [--supervisors A B]``, ``study depth --k 1 3 5``; each trains
           (or reuses) its checkpoints, evaluates them against the backbone, writes table.md/csv and a plot.
Compare the result with its backbone through the benchmark (same reader, cache and paired tests):
``python -m bench run --rerankers minilm rrpo --baseline minilm --rrpo-checkpoint OUT``.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Sequence

from bench.cli import add_server_options, add_trust_remote_code_option, servers_from_args
from bench.errors import UserError
from bench.options import argparse_type, field_types
from bench.store import read_jsonl
from rrpo.assemble import build_trainer
from rrpo.studies import add_study_parsers, study_from_args
from rrpo.trainer import RRPOConfig

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rrpo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a reranker by RRPO (options: rrpo.trainer.RRPOConfig)")
    defaults, types = RRPOConfig(), field_types(RRPOConfig)
    for f in fields(RRPOConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if types[f.name] is bool:
            train.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            train.add_argument(flag, type=argparse_type(types[f.name], flag), default=default,
                               help=f"default: {default}")
    train.add_argument("--out", required=True, help="run folder (checkpoint, log, plot); re-run to resume")
    train.add_argument("--data-dir", help="local copies of named datasets, as bench run's (default $RERANK_BENCH_DATA)")
    add_server_options(train)
    add_trust_remote_code_option(train)
    add_study_parsers(sub)

    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "study":
            study = study_from_args(args)
            print(study.run())
            print(f"study folder: {study.folder}")
            return 0
        cfg = RRPOConfig(**{f.name: getattr(args, f.name) for f in fields(RRPOConfig)})
        trainer = build_trainer(cfg, Path(args.out), servers_from_args(args), args.trust_remote_code, args.data_dir)
        trainer.train()
        if trainer.dist.main:
            last = read_jsonl(Path(args.out) / "train_log.jsonl")[-1]
            print(json.dumps({"out": args.out, "steps": last["step"], "seconds": last["seconds"],
                              "cache_fraction": last["cache_fraction"], "config": asdict(cfg)}, indent=2))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
