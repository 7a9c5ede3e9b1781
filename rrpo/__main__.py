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

from bench.cli import add_server_options
from bench.environment import cache_dir as bench_cache_dir
from bench.errors import UserError
from rrpo.trainer import RRPOConfig

_PARSERS = {"int": int, "float": float, "str": str, "int | None": int, "float | None": float, "str | None": str}


@dataclass(frozen=True)
class Servers:
    """Where ``openai:*`` readers and judges are served: ``bench run``'s ``--base-url``, ``--api-key-env`` and the
    judge's own pair. Not training options (not in ``RRPOConfig``): a run may resume against another server."""

    base_url: str | None
    api_key_env: str
    judge_base_url: str | None
    judge_api_key_env: str | None

    def reader(self) -> dict[str, str | None]:
        return {"base_url": self.base_url, "api_key_env": self.api_key_env}

    def judge(self) -> dict[str, str | None]:
        return {"base_url": self.judge_base_url or self.base_url,
                "api_key_env": self.judge_api_key_env or self.api_key_env}


def make_reader(spec: str, template: str, max_tokens: int, cache_dir: str, batch_size: int, servers: Servers):
    """The benchmark's reader (same engine, template and cache as ``python -m bench run``), so answers computed
    during training are cache hits at evaluation and vice versa."""
    from bench.llm import make_cached_engine
    from bench.llm.cache import open_cache
    from bench.prompts import load_template
    from bench.readers import Reader

    engine = make_cached_engine(spec, open_cache(cache_dir), batch_size=batch_size, **servers.reader())
    return Reader(engine, load_template(template), max_tokens=max_tokens)


def make_metric(name: str, cache_dir: str, servers: Servers):
    from rrpo.rewards import answer_metric, judge_metric

    if name.startswith("judge:"):
        from bench.judges import Judge
        from bench.llm import make_cached_engine
        from bench.llm.cache import open_cache

        return judge_metric(Judge(make_cached_engine(name[len("judge:"):], open_cache(cache_dir), **servers.judge())))
    return answer_metric(name)


def candidate_lists(dataset: str, split: str, first_stage_method: str, pool: int, limit: int | None, cache_dir: str):
    from bench.data import load_dataset
    from bench.retrieval import first_stage

    data = load_dataset(dataset, split=split, cache_dir=cache_dir).limit(limit)
    return first_stage(data, first_stage_method, pool, cache_dir=cache_dir)


def build_trainer(cfg: RRPOConfig, out: Path, servers: Servers):
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
    reader = make_reader(cfg.reader, cfg.reader_template, cfg.max_tokens, cache_dir, cfg.reader_batch_size, servers)
    return assemble_trainer(cfg, reranker, reader, make_metric(cfg.metric, cache_dir, servers), lists, out, dist)


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

    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = RRPOConfig(**{f.name: getattr(args, f.name) for f in fields(RRPOConfig)})
        servers = Servers(**{f.name: getattr(args, f.name) for f in fields(Servers)})
        trainer = build_trainer(cfg, Path(args.out), servers)
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
