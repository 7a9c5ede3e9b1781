"""Processes started by torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``): the process group RRPO training and
data-parallel evaluation share, and how ``bench run`` splits a run folder's files over the ranks.

Evaluation shards the queries by position after the first stage (query i goes to rank i mod world size). Each rank
appends to its own part of every file it writes (``records.rank<r>.jsonl``, ``rankings/<x>.rank<r>.jsonl``), so no
two processes ever append to one file; rank 0 then merges the parts into the files a one-process run writes. A run
resumed with any number of processes (one included) reads the merged file and every part left by a killed run.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from bench.errors import UserError

T = TypeVar("T")
# Ranks wait for the slowest at the end of an evaluation: a shard can take hours longer than another (gloo's default
# is 30 minutes). A rank that dies is noticed by torchrun, which stops the others.
EVALUATION_TIMEOUT = datetime.timedelta(hours=72)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, backend: str | None = None, timeout: datetime.timedelta | None = None) -> "Dist":
        """Under torchrun (WORLD_SIZE > 1) join the process group: ``backend``, by default gloo on CPU and nccl on
        GPUs."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch  # lazy: torch only when processes exchange tensors
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
            if backend == "nccl":
                torch.cuda.set_device(local_rank)
            dist.init_process_group(backend, **({"timeout": timeout} if timeout else {}))
        return cls(dist.get_rank(), world, local_rank)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist  # lazy: torch only when processes exchange tensors

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def sum_gradients(self, params: Sequence[Any]) -> None:
        """All-reduce a plain sum of the gradients (each process divides its loss by the global number of queries).
        A parameter that no process used keeps no gradient, as in one process, so AdamW's weight decay does not move
        it; one used elsewhere but not here (e.g. a process without queries this step) contributes zeros."""
        if self.world == 1:
            return
        import torch  # lazy: torch only when processes exchange tensors
        import torch.distributed as dist

        used = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
        dist.all_reduce(used)
        for p, anyone in zip(params, used.tolist()):
            if anyone:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist  # lazy: torch only when processes exchange tensors

            dist.barrier()

    def close(self) -> None:
        """Leave the process group: a process that exits while gloo's threads still run aborts ("terminate called
        without an active exception"), and torchrun then reports the whole run failed."""
        if self.world > 1:
            import torch.distributed as dist  # lazy: torch only when processes exchange tensors

            dist.barrier()
            dist.destroy_process_group()

    # --- data-parallel evaluation ----------------------------------------------------------------------------
    def device(self, device: str) -> str:
        """Each rank on its own GPU: ``auto`` or ``cuda`` become ``cuda:LOCAL_RANK`` when there are GPUs (ranks
        share them round-robin when a node runs more processes than it has GPUs)."""
        if self.world == 1 or device not in ("auto", "cuda"):
            return device
        import torch  # lazy: torch only when processes exchange tensors

        return f"cuda:{self.local_rank % torch.cuda.device_count()}" if torch.cuda.is_available() else device

    def shard(self, items: Sequence[T]) -> list[T]:
        return list(items[self.rank::self.world])

    def main_first(self, compute: Callable[[], T]) -> T:
        """``compute()`` on rank 0 first (it fills a cache), then on the other ranks (which read that cache). A
        failure on rank 0 is raised on every rank instead of leaving the others waiting."""
        if self.world == 1:
            return compute()
        if not self.main:
            error = self.gather(None)[0]
            if error is not None:
                raise UserError(f"rank 0 failed, so this rank stops too: {error}")
            return compute()
        try:
            result = compute()
        except BaseException as exc:
            self.gather(str(exc) or type(exc).__name__)
            raise
        self.gather(None)
        return result

    def part(self, path: Path) -> Path:
        """The file this rank appends to instead of ``path`` (``path`` itself in a one-process run)."""
        return path if self.world == 1 else path.with_name(f"{path.stem}.rank{self.rank}{path.suffix}")

    def lock_name(self, name: str) -> str:
        return name if self.world == 1 or self.main else f"{name}.rank{self.rank}"


def parts_of(path: Path) -> list[Path]:
    """``path`` and every rank's part of it left in its folder, in the order to read them (merged file first)."""
    return [path, *sorted(path.parent.glob(f"{path.stem}.rank*{path.suffix}"),
                          key=lambda p: int(p.stem.rsplit(".rank", 1)[1]))]


def remove_parts(path: Path) -> None:
    """After ``path`` was rewritten with everything its parts held."""
    for part in parts_of(path)[1:]:
        part.unlink()


def merge_costs(costs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One ``costs.json`` from every rank's: LLM counts summed (each call was made by one rank), stage times the
    longest rank's (the ranks ran side by side)."""
    llm: dict[str, Any] = {}
    for rank_costs in costs:
        llm = _sum_counts(llm, rank_costs["llm"])
    stages: dict[str, float] = {}
    for rank_costs in costs:
        for stage, seconds in rank_costs["stage_seconds"].items():
            stages[stage] = max(stages.get(stage, 0.0), seconds)
    return {"stage_seconds": stages, "llm": llm}


def _sum_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Numbers added key by key, nested dicts (e.g. per-server counts) likewise."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            out[key] = _sum_counts(out.get(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = out.get(key, 0) + value
        else:
            out[key] = value
    return out
