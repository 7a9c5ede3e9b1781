"""One builder: the components of a run (LLM engines behind the shared cache, readers, the judge, rerankers) built
from its configuration in one place, with every option the configuration carries: the run-wide ones (device,
dtype, ``--batch-size``, servers, retries, cache) and each component's own typed options (``--reranker-args``,
``--reader-args``, ``--judge-args``; see ``bench.options``). ``bench run`` builds through it; so does anything that
wants the same components (``python -m rrpo train`` shares its engine building through
``bench.llm.make_cached_engine``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Protocol

from bench.errors import UserError
from bench.llm import EngineOptions, make_cached_engine
from bench.options import typed_options
from rerankers.base import PER_BACKEND_SETTINGS, Reranker, RerankerSettings
from rerankers.cascade import Cascade, is_cascade
from rerankers.registry import RERANKERS, get_reranker


class BuildConfig(Protocol):
    """The fields of ``bench.config.RunConfig`` the builder reads."""

    device: str
    dtype: str
    batch_size: int | None
    base_url: str | None
    api_key_env: str
    judge_base_url: str | None
    judge_api_key_env: str | None
    concurrency: int
    timeout: float
    max_retries: int
    cache_dir: str
    llm_cache: str
    seed: int
    checkpoints: Mapping[str, str]
    trust_remote_code: bool
    reranker_args: Mapping[str, Mapping[str, Any]]
    reader_args: Mapping[str, Mapping[str, Any]]
    judge_args: Mapping[str, Mapping[str, Any]]
    reader_template: str
    judge_template: str
    max_tokens: int
    judge: str | None
    readers: list[str]
    query2doc: str | None
    query2doc_template: str
    query2doc_max_tokens: int


class Builder:
    def __init__(self, config: BuildConfig):
        self.config = config
        self.engines: dict[str, Any] = {}       # label (the spec) -> cached engine, shared by every user of it
        self._options_of: dict[str, EngineOptions] = {}
        self._llm_cache = None

    # --- LLM engines --------------------------------------------------------------------------------------------
    def engine_options(self, spec: str, role: str = "reader", **overrides: Any) -> EngineOptions:
        """The run-wide engine options, the judge's own server for the judge, ``overrides`` (a listwise reranker's
        server), then the role's ``--reader-args`` / ``--judge-args`` for this spec."""
        c = self.config
        base = EngineOptions(device=c.device, dtype=c.dtype, base_url=c.base_url, api_key_env=c.api_key_env,
                             concurrency=c.concurrency, timeout=c.timeout, max_retries=c.max_retries,
                             cache_dir=c.cache_dir, seed=c.seed, trust_remote_code=c.trust_remote_code,
                             **({"batch_size": c.batch_size} if c.batch_size is not None else {}))
        if role == "judge":
            base = dataclasses.replace(base, base_url=c.judge_base_url or c.base_url,
                                       api_key_env=c.judge_api_key_env or c.api_key_env)
        base = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
        args = {"reader": c.reader_args, "judge": c.judge_args}.get(role, {}).get(spec, {})
        return typed_options(EngineOptions, args, f"--{role}-args {spec}", base=base)

    def engine(self, spec: str, role: str = "reader", **overrides: Any):
        """One cached engine per (spec, options), shared by the readers, the judge and the listwise rerankers of a
        run; labelled by its spec (plus its role when the same spec runs with other options)."""
        options = self.engine_options(spec, role, **overrides)
        for label, built in self._options_of.items():
            if built == options and label.split(" (")[0] == spec:
                return self.engines[label]
        label = spec if spec not in self.engines else f"{spec} ({role})"
        if self._llm_cache is None:
            from bench.llm.cache import open_cache

            self._llm_cache = open_cache(self.config.cache_dir)
        self.engines[label] = make_cached_engine(spec, self._llm_cache, self.config.llm_cache,
                                                 **dataclasses.asdict(options))
        self._options_of[label] = options
        return self.engines[label]

    def reader(self, spec: str):
        from bench.prompts import load_template
        from bench.readers import Reader

        c = self.config
        return Reader(self.engine(spec, "reader"), load_template(c.reader_template), max_tokens=c.max_tokens)

    def judge(self):
        from bench.judges import Judge
        from bench.prompts import load_template

        c = self.config
        if c.judge is None:
            raise UserError("no --judge given")
        return Judge(self.engine(c.judge, "judge"), load_template(c.judge_template))

    def query2doc(self):
        """The Query2doc expander of ``--query2doc`` (None without it), on the run's cached engines."""
        from bench.expansion import Query2Doc
        from bench.prompts import load_template

        c = self.config
        if not c.query2doc:
            return None
        return Query2Doc(self.engine(c.query2doc, "query2doc"), load_template(c.query2doc_template),
                         max_tokens=c.query2doc_max_tokens)

    # --- rerankers ----------------------------------------------------------------------------------------------
    def reranker_settings(self, name: str) -> RerankerSettings:
        """The run-wide settings, ``--checkpoint`` and ``--reranker-args NAME:...`` (the backend's ``Options`` and the
        per-backend settings), checked and typed; a listwise reranker's server defaults to the run's."""
        c = self.config
        cls: type[Reranker] = RERANKERS.load(name)
        args = dict(c.reranker_args.get(name, {}))
        where = f"--reranker-args {name}"
        option_names = {f.name for f in dataclasses.fields(cls.Options)}
        settings_args = {k: args.pop(k) for k in list(args) if k in PER_BACKEND_SETTINGS and k not in option_names}
        unknown = sorted(set(args) - option_names)
        if unknown:
            raise UserError(f"{where}: unknown option {unknown[0]!r}; valid: "
                            f"{', '.join([*PER_BACKEND_SETTINGS, *sorted(option_names)])}")
        # run-wide values a backend's options may take: the server, and the reader (oracle-utility reads with it)
        readers = [spec for spec in c.readers if spec != "none"]
        run_wide = {"base_url": c.base_url, "api_key_env": c.api_key_env, "reader": readers[0] if readers else "none",
                    "reader_template": c.reader_template, "reader_max_tokens": c.max_tokens}
        defaults = {k: v for k, v in run_wide.items() if k in option_names}
        options = typed_options(cls.Options, {**defaults, **args}, where)
        settings = RerankerSettings(checkpoint=c.checkpoints.get(name), device=c.device, dtype=c.dtype, seed=c.seed,
                                    cache_dir=c.cache_dir, trust_remote_code=c.trust_remote_code, options=options,
                                    **({"batch_size": c.batch_size} if c.batch_size is not None else {}))
        settings = typed_options(RerankerSettings, settings_args, where, base=settings)

        def engine_factory(spec: str):
            return self.engine(spec, "reranker", base_url=getattr(options, "base_url", None),
                               api_key_env=getattr(options, "api_key_env", None))

        settings.engine_factory = engine_factory
        return settings

    def reranker(self, name: str) -> Reranker:
        """The reranker of a name; a cascade's stages each get their own settings (``--checkpoint``,
        ``--reranker-args`` by stage name)."""
        if is_cascade(name):
            return Cascade.build(name, self.reranker)
        return get_reranker(name, self.reranker_settings(name))
