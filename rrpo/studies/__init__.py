"""The RRPO paper's studies as commands: ``python -m rrpo study transfer|noisy|depth``.

- ``transfer``: one checkpoint per training reader, each evaluated with every evaluation reader (heatmap);
- ``noisy``: checkpoints trained from flipped or perturbed rewards, and from weaker supervisors (curve over p);
- ``depth``: checkpoints trained with k_train picks per episode (curve over k).

Each writes its own folder with the per-query records behind every cell, resumes like a run, and reports paired
gains over the backbone with exact tests (``rrpo.studies.base`` says how).
"""
from __future__ import annotations

import argparse

from bench.cli import add_server_options, add_trust_remote_code_option, servers_from_args
from bench.errors import UserError
from bench.options import convert, field_types
from rrpo.studies.base import EVAL_METRICS, StudyOptions
from rrpo.studies.depth import DepthStudy
from rrpo.studies.noisy import NoisyStudy
from rrpo.studies.transfer import TransferStudy
from rrpo.trainer import RRPOConfig

def training_option(item: str) -> tuple[str, object]:
    """``NAME=VALUE`` of an ``rrpo train`` option (``lr=3e-5``, ``ratio_anchor=reference``), typed like its flag
    (``bench.options.convert``)."""
    name, sep, value = item.partition("=")
    name = name.strip().replace("-", "_")
    types = field_types(RRPOConfig)
    if not sep or name not in types:
        raise argparse.ArgumentTypeError(f"{item!r}: expected NAME=VALUE with NAME an option of rrpo train "
                                          f"({', '.join(types)})")
    try:
        return name, convert(value, types[name], name)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_study_parsers(sub) -> None:
    study = sub.add_parser("study", help="the RRPO paper's studies: transfer, noisy, depth")
    kinds = study.add_subparsers(dest="study", required=True)
    transfer = kinds.add_parser("transfer", help="trained with reader X -> evaluated with reader Y (heatmap)")
    transfer.add_argument("--train-readers", nargs="+", required=True, help="one checkpoint per reader")
    noisy = kinds.add_parser("noisy", help="noisy or weaker supervisors (curve of the answer metric over p)")
    noisy.add_argument("--noise", default="flip", help="flip (r -> 1 - r) or gaussian (r + N(0, sigma))")
    noisy.add_argument("--p", nargs="+", type=float, default=[0.0, 0.1, 0.3, 0.5], help="noise probabilities")
    noisy.add_argument("--sigma", type=float, default=0.1, help="the gaussian noise's standard deviation")
    noisy.add_argument("--supervisors", nargs="+", help="readers giving the reward (default: the training reader)")
    depth = kinds.add_parser("depth", help="training horizon k_train (curve of the answer metric over k)")
    depth.add_argument("--k", nargs="+", type=int, default=[1, 3, 5], help="training horizons")
    d = StudyOptions()
    for parser in (transfer, noisy, depth):
        parser.add_argument("--eval-readers", nargs="+", default=d.eval_readers, help="readers answering at evaluation")
        parser.add_argument("--dataset", help="training and evaluation dataset (default: the shipped checkpoint's, "
                                              "fictional-large)")
        parser.add_argument("--train-split", help="default: train")
        parser.add_argument("--train-limit", type=int, help="train on the first N questions (default: the shipped "
                                                            "checkpoint's, 160)")
        parser.add_argument("--epochs", type=int, help="default: the shipped checkpoint's, 2")
        parser.add_argument("--train-option", nargs="+", action="extend", type=training_option, default=[],
                            metavar="NAME=VALUE",
                            help="any other rrpo train option over the shipped checkpoint's settings")
        parser.add_argument("--eval-split", default=d.eval_split, help="report on test; choose settings on dev")
        parser.add_argument("--eval-limit", type=int, help="evaluate on the first N questions")
        parser.add_argument("--top-k", type=int, default=d.top_k, help="documents the evaluation reader reads")
        parser.add_argument("--primary-metric", default=d.primary_metric, choices=EVAL_METRICS)
        parser.add_argument("--budget-minutes", type=float, help="the study's training time, shared among the cells "
                            "that still train; cells cut short are marked in the table")
        parser.add_argument("--reuse", nargs="+", default=[], metavar="FOLDER",
                            help="finished rrpo train folders a cell with exactly their options may reuse")
        parser.add_argument("--out", help="study folder (default: results/studies/<study>-<hash>); re-run to resume")
        parser.add_argument("--cache-dir", help="LLM and first-stage cache (default: the benchmark's)")
        parser.add_argument("--data-dir", help="local copies of named datasets (default $RERANK_BENCH_DATA)")
        add_server_options(parser)
        add_trust_remote_code_option(parser)


def study_from_args(args):
    shorthands = {"dataset": args.dataset, "split": args.train_split, "limit": args.train_limit,
                  "epochs": args.epochs}
    training = {**{k: v for k, v in shorthands.items() if v is not None}, **dict(args.train_option)}
    options = StudyOptions(eval_readers=args.eval_readers, eval_split=args.eval_split, eval_limit=args.eval_limit,
                           top_k=args.top_k, primary_metric=args.primary_metric, training=training,
                           budget_minutes=args.budget_minutes, reuse=args.reuse, out=args.out,
                           cache_dir=args.cache_dir, data_dir=args.data_dir, trust_remote_code=args.trust_remote_code)
    servers = servers_from_args(args)
    if args.study == "transfer":
        return TransferStudy(options, args.train_readers, servers)
    if args.study == "noisy":
        return NoisyStudy(options, args.noise, args.p, args.supervisors, args.sigma, servers)
    if args.study == "depth":
        return DepthStudy(options, args.k, servers)
    raise UserError(f"unknown study {args.study!r}")
