"""RRPO under torchrun-style data parallelism (2 gloo processes on CPU): the gradient equals one process's with
uneven shards (given the same rollouts, and through a whole ``train_step``), a process without queries in a step
still joins every collective, unused parameters are left alone as in one process, and the reference baseline is
written once per (query, depth)."""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from rrpo.trainer import Dist, RRPOConfig, assemble_trainer
from tests.rrpo_standins import STANDIN_NAME, TableReranker, TargetReader, candidate_list, yes_metric
from tests.test_rrpo_registry import _free_port

WORLD = 2


def _join(rank: int, port: int) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # A process that skips a collective makes the others wait: fail after a minute instead of hanging the suite.
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60))


def _config(**overrides) -> RRPOConfig:
    options = dict(backbone=STANDIN_NAME, pool=8, k=2, rollouts=3, queries_per_step=4, epochs=1, temperature=1.0,
                   trainable="all", lr=0.05)
    return RRPOConfig(**{**options, **overrides})


def _with_unused_parameter() -> TableReranker:
    """The stand-in plus a trainable parameter the score never uses (like a pooler a cross-encoder ignores)."""
    reranker = TableReranker()
    reranker.model.unused = nn.Parameter(torch.ones(3))
    return reranker


def _gradient_worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    _join(rank, port)
    cfg = _config(weight_decay=0.5)
    lists = [candidate_list(f"q{i}") for i in range(3)]
    # The same rollouts in every process: one process's trainer samples all 3 queries (same seed everywhere) ...
    single = assemble_trainer(cfg, _with_unused_parameter(), TargetReader("d0"), yes_metric, lists)
    rollouts = single.collector.collect(lists)
    advantages, _ = single.advantages(rollouts)
    single.gradients(rollouts, advantages, n_queries=3)
    one_process = {n: p.grad.clone() for n, p in single.policy.trainable_parameters().items() if p.grad is not None}
    # ... and the data-parallel trainer takes this process's share: 2 queries on rank 0, 1 on rank 1.
    ddp = assemble_trainer(cfg, _with_unused_parameter(), TargetReader("d0"), yes_metric, lists, None,
                           Dist(rank, WORLD))
    mine = rollouts[rank::WORLD]
    ddp_advantages, _ = ddp.advantages(mine)
    ddp.gradients(mine, ddp_advantages, n_queries=3)
    ddp.optimizer.step()
    params = ddp.policy.trainable_parameters()
    result = {
        "advantages": [[a.tolist() for a in advantages[rank::WORLD]], [a.tolist() for a in ddp_advantages]],
        "one_process": {n: g.flatten().tolist() for n, g in one_process.items()},
        "ddp": {n: p.grad.flatten().tolist() for n, p in params.items() if p.grad is not None},
        "unused_after_step": params["backbone.unused"].tolist(),
    }
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gradient_equals_one_process_gradient_with_uneven_shards(tmp_path):
    torch.multiprocessing.spawn(_gradient_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        r = json.loads((tmp_path / f"rank{rank}.json").read_text())
        expected, got = r["advantages"]
        assert torch.allclose(torch.tensor(got, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                              atol=1e-9), rank                        # standardised over every process's rollouts
        assert set(r["ddp"]) == set(r["one_process"]) and "backbone.layer.1.weight" in r["ddp"]
        assert "backbone.unused" not in r["ddp"]                        # no process used it: no gradient, as in one
        assert max(map(abs, r["one_process"]["backbone.layer.1.weight"])) > 1e-3    # a real gradient, not zeros
        for name, grad in r["one_process"].items():
            assert r["ddp"][name] == pytest.approx(grad, abs=1e-6), (rank, name)
        assert r["unused_after_step"] == [1.0, 1.0, 1.0]              # no zero gradient for weight decay to act on


def _train_step_worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    _join(rank, port)
    # One step holds all 3 queries: 2 on rank 0, 1 on rank 1. One update and no effective clipping, so the gradient
    # left on the parameters after the step is the step's gradient itself.
    cfg = _config(queries_per_step=3, updates_per_batch=1, grad_clip=1e6)
    lists = [candidate_list(f"q{i}") for i in range(3)]
    single = assemble_trainer(cfg, TableReranker(), TargetReader("d0"), yes_metric, lists)
    sampled = {}
    sample = single.collector.collect

    def recorded(batch):
        rollouts = sample(batch)
        sampled.update((ro.cl.query.qid, ro) for ro in rollouts)
        return rollouts

    single.collector.collect = recorded
    single_row = single.train_step()
    # The data-parallel trainer's processes sample with other seeds; hand them the single process's rollouts, so
    # that the rest of train_step (its share, advantages, the count it divides by, the update) is what is compared.
    ddp = assemble_trainer(cfg, TableReranker(), TargetReader("d0"), yes_metric, lists, None, Dist(rank, WORLD))
    ddp.collector.collect = lambda batch: [sampled[cl.query.qid] for cl in batch]
    shard = len(ddp.batch(0))
    ddp_row = ddp.train_step()
    grads = {name: {n: p.grad.flatten().tolist() for n, p in trainer.policy.trainable_parameters().items()}
             for name, trainer in (("one_process", single), ("ddp", ddp))}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"shard": shard, "queries": [single_row["queries"], ddp_row["queries"]], **grads}, f)
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_train_step_gradient_equals_one_process_train_step_gradient_with_uneven_shards(tmp_path):
    """Each process must divide its loss by the step's global number of queries; dividing by its own count (2 and 1
    here) would weigh rank 1's query twice as much as in one process."""
    torch.multiprocessing.spawn(_train_step_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        r = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert r["shard"] == 2 - rank and r["queries"] == [3, 3]
        assert max(map(abs, r["one_process"]["backbone.layer.1.weight"])) > 1e-3    # a real gradient, not zeros
        assert set(r["ddp"]) == set(r["one_process"])
        for name, grad in r["one_process"].items():
            assert r["ddp"][name] == pytest.approx(grad, abs=1e-6), (rank, name)


def _training_worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    _join(rank, port)
    cfg = _config(epochs=2, weight_decay=0.5, save_every=100)
    lists = [candidate_list(f"q{i}") for i in range(5)]           # 4 per step: steps of 4, 1, 4, 1 queries
    trainer = assemble_trainer(cfg, _with_unused_parameter(), TargetReader("d0"), yes_metric, lists,
                               Path(out) / "run", Dist(rank, WORLD))
    seen = [len(trainer.batch(s)) for s in range(trainer.cfg.epochs * trainer.steps_per_epoch)]
    log = trainer.train()
    params = {n: p.detach().flatten().tolist() for n, p in trainer.policy.trainable_parameters().items()}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"params": params, "seen": seen, "queries": [r["queries"] for r in log],
                   "computed": trainer.collector.baseline.computed}, f)
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_training_with_an_idle_process_one_baseline_writer_and_unused_parameters(tmp_path):
    torch.multiprocessing.spawn(_training_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD))
    assert r0["seen"] == [2, 1, 2, 1] and r1["seen"] == [2, 0, 2, 0]   # rank 1 has nothing in steps 2 and 4
    assert r0["queries"] == r1["queries"] == [4, 1, 4, 1]
    for name in r0["params"]:
        assert r0["params"][name] == pytest.approx(r1["params"][name], abs=1e-6), name
    assert r0["params"]["backbone.unused"] == r1["params"]["backbone.unused"] == [1.0, 1.0, 1.0]
    rows = [json.loads(line) for line in (tmp_path / "run" / "reference_baseline.jsonl").read_text().splitlines()]
    assert sorted((row["qid"], row["t"]) for row in rows) == sorted((f"q{i}", t) for i in range(5) for t in (1, 2))
    assert r0["computed"] + r1["computed"] == 10                      # each (query, depth) asked once, anywhere
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3, 4]
    assert sum(row["baseline_computed"] for row in log) == 10
