"""Where rerank-bench keeps its caches, and which device and dtype a model runs on: one definition for every stage."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "RERANK_BENCH_CACHE"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Caches and converted models: ``override``, else ``$RERANK_BENCH_CACHE``, else ``~/.cache/rerank-bench``."""
    return Path(override or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "rerank-bench").expanduser()


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        from bench.errors import UserError

        raise UserError(f"--dtype {dtype!r}: expected auto, float32, bfloat16 or float16") from None
