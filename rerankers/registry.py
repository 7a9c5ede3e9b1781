"""Decorator registry of reranker backends, with aliases (in the spirit of lm-evaluation-harness).

A backend module registers its class once per checkpoint family::

    @register("monot5", aliases=("monot5-base",), checkpoint="castorini/monot5-base-msmarco-10k",
              kind="pointwise", extra="t5")
    @register("monot5-3b", checkpoint="castorini/monot5-3b-msmarco-10k", kind="pointwise", extra="t5")
    class MonoT5(PointwiseReranker): ...

``get_reranker(name, settings)`` builds ``cls(checkpoint=..., settings=...)``. Names are looked up exactly (never by
substring); an unknown name fails with the list of registered ones. Backend modules are imported lazily by
``load_backends`` so that heavy dependencies load only when a backend is used.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from bench.errors import UserError


@dataclass
class RerankerSettings:
    """Options every backend understands; backend-specific ones go in ``options``."""

    checkpoint: str | None = None      # overrides the registered checkpoint (local path or hub id)
    device: str = "auto"               # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"                # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16
    batch_size: int = 32
    max_length: int | None = None      # truncation; None = the model's own limit
    seed: int = 0
    cache_dir: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RerankerSpec:
    name: str
    factory: Callable[..., Any]
    checkpoint: str | None
    kind: str              # pointwise | listwise | baseline
    extra: str | None      # the pip extra that installs its dependencies
    description: str


RERANKERS: dict[str, RerankerSpec] = {}
ALIASES: dict[str, str] = {}


def register(name: str, *, aliases: tuple[str, ...] = (), checkpoint: str | None = None, kind: str = "pointwise",
             extra: str | None = None, description: str = "") -> Callable[[Any], Any]:
    def deco(factory: Any) -> Any:
        for n in (name, *aliases):
            if n in RERANKERS or n in ALIASES:
                raise ValueError(f"reranker name {n!r} registered twice")
        RERANKERS[name] = RerankerSpec(name, factory, checkpoint, kind, extra,
                                       description or (factory.__doc__ or "").strip().split("\n")[0])
        for a in aliases:
            ALIASES[a] = name
        return factory

    return deco


def load_backends() -> None:
    """Import every module of the ``rerankers`` package so their ``@register`` calls run. Backend modules import
    their heavy dependencies inside functions, so this is cheap."""
    import rerankers

    for mod in pkgutil.iter_modules(rerankers.__path__):
        if mod.name not in {"registry", "base"}:
            importlib.import_module(f"rerankers.{mod.name}")


def resolve(name: str) -> RerankerSpec:
    load_backends()
    key = ALIASES.get(name, name)
    if key not in RERANKERS:
        names = sorted(set(RERANKERS) | set(ALIASES))
        raise UserError(f"unknown reranker {name!r}; registered: {', '.join(names)}")
    return RERANKERS[key]


def get_reranker(name: str, settings: RerankerSettings | None = None):
    spec = resolve(name)
    settings = settings or RerankerSettings()
    reranker = spec.factory(checkpoint=settings.checkpoint or spec.checkpoint, settings=settings)
    reranker.name = name
    return reranker


def weights_fingerprint(name: str, checkpoint: str | None = None) -> str | None:
    """What identifies the weights ``get_reranker(name)`` would load (``checkpoint`` overrides the registered one),
    without loading them."""
    spec = resolve(name)
    return spec.factory.weights_fingerprint(checkpoint or spec.checkpoint)


def describe() -> list[dict[str, str]]:
    """Rows for ``python -m bench list``: every name and alias with its checkpoint, kind and extra."""
    load_backends()
    rows = []
    for name, spec in sorted(RERANKERS.items()):
        aliases = sorted(a for a, n in ALIASES.items() if n == name)
        rows.append({"name": name, "aliases": ", ".join(aliases), "checkpoint": spec.checkpoint or "-",
                     "kind": spec.kind, "extra": spec.extra or "-", "description": spec.description})
    return rows
