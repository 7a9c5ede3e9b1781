"""LLM engines behind one interface (``bench.llm.base.Engine``), built from a spec string by ``make_engine``.

Specs: ``smollm2`` (the default reader, offline), ``gemma3-270m`` (a base model, offline), ``hf:<model id or
path>`` (any local transformers causal LM), ``openai:<model>`` (any OpenAI-compatible server: OpenAI, vLLM, Ollama;
``base_url`` picks the server). Engines import their heavy dependencies only when built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench.errors import UserError
from bench.llm.base import Engine


@dataclass(frozen=True)
class EngineOptions:
    """Options of every engine kind; each kind reads the ones that concern it."""

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 5
    cache_dir: str | None = None     # where converted offline models are kept (default: the bench cache)


def _smollm2(o: EngineOptions) -> Engine:
    from bench.llm.hf import load_smollm2

    return load_smollm2(device=o.device, dtype=o.dtype, batch_size=o.batch_size, cache_dir=o.cache_dir)


def _gemma3(o: EngineOptions) -> Engine:
    from bench.llm.hf import load_gemma3_270m

    return load_gemma3_270m(device=o.device, dtype=o.dtype, batch_size=o.batch_size, cache_dir=o.cache_dir)


def _hf(model: str, o: EngineOptions) -> Engine:
    from bench.llm.hf import HFEngine

    return HFEngine(model, device=o.device, dtype=o.dtype, batch_size=o.batch_size)


def _openai(model: str, o: EngineOptions) -> Engine:
    from bench.llm.openai_engine import OpenAIEngine

    return OpenAIEngine(model, base_url=o.base_url, api_key_env=o.api_key_env, concurrency=o.concurrency,
                        timeout=o.timeout, max_retries=o.max_retries)


NAMED_ENGINES: dict[str, Callable[[EngineOptions], Engine]] = {"smollm2": _smollm2, "gemma3-270m": _gemma3}
PREFIXED_ENGINES: dict[str, Callable[[str, EngineOptions], Engine]] = {"hf": _hf, "openai": _openai}
ENGINE_FORMS = (*NAMED_ENGINES, "hf:<model id or path>", "openai:<model>")


def make_cached_engine(spec: str, cache, mode: str = "use", **options: object) -> Engine:
    """``make_engine(spec, **options)`` behind the LLM cache (a ``bench.llm.cache.LLMCache``): how ``bench run`` builds
    its readers, judge and listwise rerankers and ``rrpo train`` its reader and judge, so that an answer computed by
    one is a cache hit for the other."""
    from bench.llm.cache import CachedEngine

    return CachedEngine(make_engine(spec, **options), cache, mode=mode)


def make_engine(spec: str, **options: object) -> Engine:
    """Build an engine from ``spec``; ``options`` are the fields of ``EngineOptions``."""
    try:
        opts = EngineOptions(**options)  # type: ignore[arg-type]
    except TypeError as exc:
        raise UserError(f"make_engine: {exc}; known options: {', '.join(EngineOptions.__dataclass_fields__)}") \
            from None
    if spec in NAMED_ENGINES:
        return NAMED_ENGINES[spec](opts)
    prefix, sep, model = spec.partition(":")
    if sep and model and prefix in PREFIXED_ENGINES:
        return PREFIXED_ENGINES[prefix](model, opts)
    raise UserError(f"unknown LLM engine {spec!r}; expected one of: {', '.join(ENGINE_FORMS)}")
