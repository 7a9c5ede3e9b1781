"""From training options to a ready trainer, with the benchmark's one builder: the components RRPO trains with (reader,
judge, backbone) are made exactly as ``python -m bench run`` makes them, so that answers computed during training are
cache hits at evaluation and vice versa. Used by ``python -m rrpo train`` and by the studies (``rrpo.studies``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from bench.environment import cache_dir as bench_cache_dir
from bench.config import RunConfig
from rrpo.trainer import RRPOConfig


@dataclass(frozen=True)
class Servers:
    """Where ``openai:*`` readers and judges are served: ``bench run``'s ``--base-url``, ``--api-key-env`` and the
    judge's own pair. Not training options (not in ``RRPOConfig``): a run may resume against another server."""

    base_url: str | list[str] | None
    api_key_env: str
    judge_base_url: str | list[str] | None
    judge_api_key_env: str | None

    def __post_init__(self) -> None:
        # the same checks as bench run's, before anything is trained or written (a key pasted as a name included)
        from bench.options import check_server_options

        check_server_options(self.base_url, self.api_key_env, self.judge_base_url, self.judge_api_key_env)

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
    # the training's data and depth too (the reader sees k documents), so that RunConfig.validate checks them
    return RunConfig(datasets=[cfg.dataset], split=cfg.split, limit=cfg.limit, first_stage=cfg.first_stage,
                     pool=cfg.pool, top_k=cfg.k, rerankers=[cfg.backbone], baseline=cfg.backbone,
                     readers=[cfg.reader], judge=judge, query2doc=cfg.query2doc,
                     reader_template=cfg.reader_template,
                     max_tokens=cfg.max_tokens, seed=cfg.seed, cache_dir=cache_dir,
                     checkpoints={cfg.backbone: cfg.backbone_checkpoint} if cfg.backbone_checkpoint else {},
                     reader_args={cfg.reader: {"batch_size": cfg.reader_batch_size}},
                     trust_remote_code=trust_remote_code, **asdict(servers))


def candidate_lists(dataset: str, split: str, first_stage_method: str, pool: int, limit: int | None, cache_dir: str,
                    expander=None, data_dir: str | None = None):
    """The training queries' first-stage candidates, through ``bench run``'s expansion stage (``expander``: a
    ``bench.expansion.Query2Doc``, or None); ``data_dir``: local copies of named datasets, as ``bench run``'s."""
    from bench.data import load_dataset
    from bench.expansion import expanded_first_stage

    data = load_dataset(dataset, split=split, cache_dir=cache_dir, data_dir=data_dir).limit(limit)
    return expanded_first_stage(data, first_stage_method, pool, cache_dir=cache_dir, expander=expander)[0]


def training_builder(cfg: RRPOConfig, servers: Servers, trust_remote_code: bool = False):
    """The benchmark's builder configured with the training's components, checked as ``bench run`` checks its own
    (a bad --query2doc, an uninstalled reader or a key pasted for its variable's name fail here)."""
    from bench.builder import Builder

    config = component_config(cfg, servers, str(bench_cache_dir(cfg.cache_dir)), trust_remote_code)
    config.validate()
    return Builder(config)


def training_lists(cfg: RRPOConfig, builder, data_dir: str | None = None) -> list:
    """The candidate lists a training with ``cfg`` learns from (what its checkpoint's ``training_data`` digests)."""
    return candidate_lists(cfg.dataset, cfg.split, cfg.first_stage, cfg.pool, cfg.limit, builder.config.cache_dir,
                           builder.query2doc(), data_dir)


def build_trainer(cfg: RRPOConfig, out: Path, servers: Servers, trust_remote_code: bool = False,
                  data_dir: str | None = None):
    import torch

    from rrpo.rewards import answer_metric, judge_metric
    from rrpo.trainer import Dist, assemble_trainer

    cfg.validate()
    builder = training_builder(cfg, servers, trust_remote_code)
    dist = Dist.from_env()
    lists = dist.main_first(lambda: training_lists(cfg, builder, data_dir))
    torch.manual_seed(cfg.seed)
    metric = judge_metric(builder.judge()) if builder.config.judge else answer_metric(cfg.metric)
    return assemble_trainer(cfg, builder.reranker(cfg.backbone), builder.reader(cfg.reader), metric, lists, out, dist)
