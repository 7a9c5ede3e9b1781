"""``python -m rrpo train``: train a pointwise reranker by RRPO.

train      every option of ``rrpo.trainer.RRPOConfig`` (defaults and reasons are documented there); ``--out`` gets
           config.json + rrpo_delta.safetensors (the reloadable checkpoint), train_log.jsonl, training_curves.png,
           reference_baseline.jsonl and resume/ (re-running with the same --out continues from there).
           Several processes: ``torchrun --nproc_per_node 2 -m rrpo train ...`` (gloo on CPU).
Compare the result with its backbone through the benchmark (same reader, cache and paired tests):
``python -m bench run --rerankers minilm rrpo --baseline minilm --rrpo-checkpoint OUT``.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

from bench.cli import add_server_options, add_trust_remote_code_option
from bench.environment import cache_dir as bench_cache_dir
from bench.errors import UserError
from bench.runner import RunConfig
from rrpo.trainer import RRPOConfig

_PARSERS = {"int": int, "float": float, "str": str, "int | None": int, "float | None": float, "str | None": str}


@dataclass(frozen=True)
class Servers:
    """Where ``openai:*`` readers and judges are served: ``bench run``'s ``--base-url``, ``--api-key-env`` and the
    judge's own pair. Not training options (not in ``RRPOConfig``): a run may resume against another server."""

    base_url: str | list[str] | None
    api_key_env: str
    judge_base_url: str | list[str] | None
    judge_api_key_env: str | None

    def reader(self) -> dict[str, str | list[str] | None]:
        return {"base_url": self.base_url, "api_key_env": self.api_key_env}

    def judge(self) -> dict[str, str | list[str] | None]:
        return {"base_url": self.judge_base_url or self.base_url,
                "api_key_env": self.judge_api_key_env or self.api_key_env}


def component_config(cfg: RRPOConfig, servers: Servers, cache_dir: str, trust_remote_code: bool = False) -> RunConfig:
    """The benchmark's configuration of the components RRPO trains with, so that bench's one builder makes them as
    ``python -m bench run`` does (same engines, templates and cache: answers computed during training are cache hits
    at evaluation and vice versa)."""
    judge = cfg.metric[len("judge:"):] if cfg.metric.startswith("judge:") else None
    return RunConfig(rerankers=[cfg.backbone], readers=[cfg.reader], judge=judge, query2doc=cfg.query2doc,
                     reader_template=cfg.reader_template,
                     max_tokens=cfg.max_tokens, seed=cfg.seed, cache_dir=cache_dir,
                     checkpoints={cfg.backbone: cfg.backbone_checkpoint} if cfg.backbone_checkpoint else {},
                     reader_args={cfg.reader: {"batch_size": cfg.reader_batch_size}},
                     trust_remote_code=trust_remote_code, **asdict(servers))


def candidate_lists(dataset: str, split: str, first_stage_method: str, pool: int, limit: int | None, cache_dir: str,
                    expander=None):
    """The training queries' first-stage candidates, through ``bench run``'s expansion stage (``expander``: a
    ``bench.expansion.Query2Doc``, or None)."""
    from bench.data import load_dataset
    from bench.expansion import expanded_first_stage

    data = load_dataset(dataset, split=split, cache_dir=cache_dir).limit(limit)
    return expanded_first_stage(data, first_stage_method, pool, cache_dir=cache_dir, expander=expander)[0]


def build_trainer(cfg: RRPOConfig, out: Path, servers: Servers, trust_remote_code: bool = False):
    import torch

    from bench.builder import Builder
    from rrpo.rewards import answer_metric, judge_metric
    from rrpo.trainer import Dist, assemble_trainer

    cfg.validate()
    if cfg.query2doc:
        from bench.expansion import check_query2doc

        check_query2doc(cfg.query2doc, cfg.first_stage, RunConfig.query2doc_template, RunConfig.query2doc_max_tokens)
    dist = Dist.from_env()
    cache_dir = str(bench_cache_dir(cfg.cache_dir))
    builder = Builder(component_config(cfg, servers, cache_dir, trust_remote_code))
    lists = dist.main_first(lambda: candidate_lists(cfg.dataset, cfg.split, cfg.first_stage, cfg.pool, cfg.limit,
                                                    cache_dir, builder.query2doc()))
    torch.manual_seed(cfg.seed)
    metric = judge_metric(builder.judge()) if builder.config.judge else answer_metric(cfg.metric)
    return assemble_trainer(cfg, builder.reranker(cfg.backbone), builder.reader(cfg.reader), metric, lists, out, dist)


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
    add_server_options(train)
    add_trust_remote_code_option(train)

    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = RRPOConfig(**{f.name: getattr(args, f.name) for f in fields(RRPOConfig)})
        servers = Servers(**{f.name: getattr(args, f.name) for f in fields(Servers)})
        trainer = build_trainer(cfg, Path(args.out), servers, args.trust_remote_code)
        trainer.train()
        if trainer.dist.main:
            last = json.loads((Path(args.out) / "train_log.jsonl").read_text().splitlines()[-1])
            print(json.dumps({"out": args.out, "steps": last["step"], "seconds": last["seconds"],
                              "cache_fraction": last["cache_fraction"], "config": asdict(cfg)}, indent=2))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
