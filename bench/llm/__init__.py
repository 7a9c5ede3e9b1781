"""LLM engines behind one interface (``bench.llm.base.Engine``), built from a spec string by ``make_engine``.

Specs: ``smollm2`` (the default reader, offline), ``gemma3-270m`` (a base model, offline), ``hf:<model id or path>``
(any local transformers causal LM), ``openai:<model>`` (any OpenAI-compatible server: OpenAI, vLLM, Ollama;
``base_url`` picks the server), ``vllm:<model>`` (vLLM in-process, the ``vllm`` extra). The names are registered in
``ENGINES`` (``bench.registry.Registry``; plugins: entry-point group ``rerank_bench.engines``): each entry is a factory
``(model, EngineOptions) -> Engine``, whose ``model`` is the part of the spec after the colon for entries registered
with a ``model`` placeholder, else None. Engines import their heavy dependencies only when built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from bench.environment import check_server_reachable, check_weights_available, resolve_dtype
from bench.errors import UserError, check_extra
from bench.llm.base import Engine
from bench.llm.cache import CachedEngine
from bench.llm.hf import HFEngine, load_gemma3_270m, load_smollm2, smollm2_gguf_folder
from bench.llm.openai_engine import OpenAIEngine, missing_key, server_urls
from bench.llm.vllm_engine import VLLMEngine
from bench.registry import Registry


@dataclass(frozen=True)
class EngineOptions:
    """Options of every engine kind; each kind reads the ones that concern it."""

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    base_url: str | Sequence[str] | None = None    # one server, or several serving the same model
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 5
    cache_dir: str | None = None     # where converted offline models are kept (default: the bench cache)
    seed: int = 0                    # engines that sample with a seed of their own (vllm)
    trust_remote_code: bool = False  # the user's --trust-remote-code, for engines that load a checkpoint


def _smollm2(model: None, o: EngineOptions) -> Engine:
    return load_smollm2(device=o.device, dtype=o.dtype, batch_size=o.batch_size, cache_dir=o.cache_dir)


def _gemma3(model: None, o: EngineOptions) -> Engine:
    return load_gemma3_270m(device=o.device, dtype=o.dtype, batch_size=o.batch_size, cache_dir=o.cache_dir)


def _hf(model: str, o: EngineOptions) -> Engine:
    return HFEngine(model, device=o.device, dtype=o.dtype, batch_size=o.batch_size,
                    trust_remote_code=o.trust_remote_code)


def _openai(model: str, o: EngineOptions) -> Engine:
    return OpenAIEngine(model, base_url=o.base_url, api_key_env=o.api_key_env, concurrency=o.concurrency,
                        timeout=o.timeout, max_retries=o.max_retries)


def _vllm(model: str, o: EngineOptions) -> Engine:
    return VLLMEngine(model, dtype=o.dtype if o.dtype == "auto" else resolve_dtype(o.dtype, "cuda"), seed=o.seed,
                      trust_remote_code=o.trust_remote_code)


ENGINES = Registry("engine")
ENGINES.add("smollm2", _smollm2, description="SmolLM2-135M-Instruct, offline (the default reader)")
ENGINES.add("gemma3-270m", _gemma3, extra="gemma", description="Gemma-3-270m base model, offline")
ENGINES.add("hf", _hf, model="<model id or path>", description="any local transformers causal LM")
ENGINES.add("openai", _openai, model="<model>", description="any OpenAI-compatible server (--base-url)")
ENGINES.add("vllm", _vllm, model="<model>", extra="vllm", description="vLLM in-process (GPU)")


def engine_forms() -> list[str]:
    """How each registered engine is written as a spec, for messages and ``python -m bench list``."""
    return [f"{e.name}:{ENGINES.meta(e.name)['model']}" if "model" in ENGINES.meta(e.name) else e.name
            for e in ENGINES.entries()]


def parse_engine_spec(spec: str) -> tuple[str, str | None]:
    """(registered name, model or None) of a spec; an unknown spec fails in one line with the known forms."""
    if spec in ENGINES and "model" not in ENGINES.meta(spec):
        return spec, None
    prefix, sep, model = spec.partition(":")
    if sep and model and prefix in ENGINES and "model" in ENGINES.meta(prefix):
        return prefix, model
    raise UserError(f"unknown LLM engine {spec!r}; {ENGINES.did_you_mean(prefix if sep else spec)}expected one of: "
                    f"{', '.join(engine_forms())}")


def make_cached_engine(spec: str, cache, mode: str = "use", **options: object) -> Engine:
    """``make_engine(spec, **options)`` behind the LLM cache (a ``bench.llm.cache.LLMCache``): how ``bench run`` builds
    its readers, judge and listwise rerankers and ``rrpo train`` its reader and judge, so that an answer computed by
    one is a cache hit for the other."""
    return CachedEngine(make_engine(spec, **options), cache, mode=mode)


def check_engine_installed(spec: str) -> None:
    """Fail (one line) on a spec that is not an engine (with the known forms) or when the packages of engine
    ``spec`` are missing (with the install command), before any model loads."""
    name, _ = parse_engine_spec(spec)
    if spec == "smollm2":
        smollm2_gguf_folder()
        return
    extra = ENGINES.meta(name).get("extra")
    if extra:
        check_extra(extra, f"the {spec} reader")


def check_engine_reachable(spec: str, options: EngineOptions, what: str) -> None:
    """Before a run's first question: the engine's packages are installed, and its weights are at hand (local
    engines) or its servers answer (``openai``); one line saying what is missing otherwise. Nothing loads."""
    check_engine_installed(spec)
    name, model = parse_engine_spec(spec)
    if name == "openai":
        urls = server_urls(options.base_url)
        missing = missing_key(urls, options.api_key_env)
        if missing:
            raise UserError(f"{what}: {missing}")
        for url in urls:
            check_server_reachable(url, what, options.api_key_env)
    elif name in ("hf", "vllm"):
        check_weights_available(model, what, "a local folder in the spec (hf:/path/to/model)")


def make_engine(spec: str, **options: object) -> Engine:
    """Build an engine from ``spec``; ``options`` are the fields of ``EngineOptions``."""
    try:
        opts = EngineOptions(**options)  # type: ignore[arg-type]
    except TypeError as exc:
        raise UserError(f"make_engine: {exc}; known options: {', '.join(EngineOptions.__dataclass_fields__)}") \
            from None
    name, model = parse_engine_spec(spec)
    engine = ENGINES.load(name)(model, opts)
    if not isinstance(engine, Engine):
        raise UserError(f"engine {name!r} ({ENGINES.entry(name).source}) built a {type(engine).__name__}, expected a "
                        f"bench.llm.base.Engine")
    return engine
