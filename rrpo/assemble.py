"""From training options to a ready trainer, with the benchmark's one builder: the components RRPO trains with (reader,
judge, backbone) are made exactly as ``python -m bench run`` makes them, so that answers computed during training are
cache hits at evaluation and vice versa. Used by ``python -m rrpo train`` and by the studies (``rrpo.studies``)."""
from __future__ import annotations

from pathlib import Path

import torch

from bench.builder import Builder
from bench.config import Components, Data, RunConfig, Runtime, Servers
from bench.data import load_dataset
from bench.environment import cache_dir as bench_cache_dir
from bench.expansion import expanded_first_stage
from rrpo.rewards import answer_metric, judge_metric
from rrpo.trainer import Dist, RRPOConfig, assemble_trainer


def component_config(cfg: RRPOConfig, servers: Servers, cache_dir: str, trust_remote_code: bool = False) -> RunConfig:
    """The benchmark's configuration of the components RRPO trains with, so that bench's one builder makes them as
    ``python -m bench run`` does (same engines, templates and cache: answers computed during training are cache hits
    at evaluation and vice versa)."""
    judge = cfg.metric[len("judge:"):] if cfg.metric.startswith("judge:") else None
    # the training's data and depth too (the reader sees k documents), so that RunConfig.validate checks them
    return RunConfig(
        components=Components(rerankers=[cfg.backbone], baseline=cfg.backbone, readers=[cfg.reader], judge=judge,
                              top_k=cfg.k, reader_template=cfg.reader_template, max_tokens=cfg.max_tokens,
                              checkpoints={cfg.backbone: cfg.backbone_checkpoint} if cfg.backbone_checkpoint else {},
                              reader_args={cfg.reader: {"batch_size": cfg.reader_batch_size}}),
        data=Data(datasets=[cfg.dataset], split=cfg.split, limit=cfg.limit, first_stage=cfg.first_stage,
                  pool=cfg.pool, query2doc=cfg.query2doc),
        servers=servers,
        runtime=Runtime(seed=cfg.seed, cache_dir=cache_dir, trust_remote_code=trust_remote_code))


def candidate_lists(dataset: str, split: str, first_stage_method: str, pool: int, limit: int | None, cache_dir: str,
                    expander=None, data_dir: str | None = None):
    """The training queries' first-stage candidates, through ``bench run``'s expansion stage (``expander``: a
    ``bench.expansion.Query2Doc``, or None); ``data_dir``: local copies of named datasets, as ``bench run``'s."""
    data = load_dataset(dataset, split=split, cache_dir=cache_dir, data_dir=data_dir).limit(limit)
    return expanded_first_stage(data, first_stage_method, pool, cache_dir=cache_dir, expander=expander)[0]


def training_builder(cfg: RRPOConfig, servers: Servers, trust_remote_code: bool = False):
    """The benchmark's builder configured with the training's components, checked as ``bench run`` checks its own
    (a bad --query2doc, an uninstalled reader or a key pasted for its variable's name fail here)."""
    config = component_config(cfg, servers, str(bench_cache_dir(cfg.cache_dir)), trust_remote_code)
    return Builder(config, config.validate())


def training_lists(cfg: RRPOConfig, builder, data_dir: str | None = None) -> list:
    """The candidate lists a training with ``cfg`` learns from (what its checkpoint's ``training_data`` digests)."""
    return candidate_lists(cfg.dataset, cfg.split, cfg.first_stage, cfg.pool, cfg.limit,
                           builder.config.runtime.cache_dir, builder.query2doc(), data_dir)


def build_trainer(cfg: RRPOConfig, out: Path, servers: Servers, trust_remote_code: bool = False,
                  data_dir: str | None = None):
    cfg.validate()
    builder = training_builder(cfg, servers, trust_remote_code)
    dist = Dist.from_env()
    lists = dist.main_first(lambda: training_lists(cfg, builder, data_dir))
    torch.manual_seed(cfg.seed)
    metric = judge_metric(builder.judge()) if builder.config.components.judge else answer_metric(cfg.metric)
    return assemble_trainer(cfg, builder.reranker(cfg.backbone), builder.reader(cfg.reader), metric, lists, out, dist)
