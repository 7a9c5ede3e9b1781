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
from bench.expansion import Query2Doc
from bench.judges import Judge
from bench.llm import EngineOptions, make_cached_engine
from bench.llm.cache import open_cache
from bench.options import typed_options
from bench.prompts import load_template
from bench.readers import Reader
from bench.sections import Components, Data, Runtime, Servers
from rerankers.base import PER_BACKEND_SETTINGS, Reranker, RerankerSettings
from rerankers.cascade import Cascade, is_cascade
from rerankers.registry import RerankerSpec, get_reranker, resolve


class BuildConfig(Protocol):
    """The sections of ``bench.config.RunConfig`` the builder reads (``bench.config`` sits above this module)."""

    components: Components
    data: Data
    servers: Servers
    runtime: Runtime


class Builder:
    def __init__(self, config: BuildConfig, specs: Mapping[str, RerankerSpec] | None = None):
        """``specs``: the rerankers' names already resolved (``RunConfig.validate``); others are resolved on first
        use, once."""
        self.config = config
        self.specs: dict[str, RerankerSpec] = dict(specs or {})
        self.engines: dict[str, Any] = {}       # label (the spec) -> cached engine, shared by every user of it
        self._options_of: dict[str, EngineOptions] = {}
        self._llm_cache = None

    def spec(self, name: str) -> RerankerSpec:
        """The registry's spec of a reranker name, looked up once per builder."""
        if name not in self.specs:
            self.specs[name] = resolve(name)
        return self.specs[name]

    # --- LLM engines --------------------------------------------------------------------------------------------
    def engine_options(self, spec: str, role: str = "reader", **overrides: Any) -> EngineOptions:
        """The run-wide engine options, the judge's own server for the judge, ``overrides`` (a listwise reranker's
        server), then the role's ``--reader-args`` / ``--judge-args`` for this spec."""
        r, s = self.config.runtime, self.config.servers
        base = EngineOptions(device=r.device, dtype=r.dtype, **(s.judge() if role == "judge" else s.reader()),
                             concurrency=s.concurrency, timeout=s.timeout, max_retries=s.max_retries,
                             cache_dir=r.cache_dir, seed=r.seed, trust_remote_code=r.trust_remote_code,
                             **({"batch_size": r.batch_size} if r.batch_size is not None else {}))
        base = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
        c = self.config.components
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
            self._llm_cache = open_cache(self.config.runtime.cache_dir)
        self.engines[label] = make_cached_engine(spec, self._llm_cache, self.config.runtime.llm_cache,
                                                 **dataclasses.asdict(options))
        self._options_of[label] = options
        return self.engines[label]

    def reader(self, spec: str):
        c = self.config.components
        return Reader(self.engine(spec, "reader"), load_template(c.reader_template), max_tokens=c.max_tokens)

    def judge(self):
        c = self.config.components
        if c.judge is None:
            raise UserError("no --judge given")
        return Judge(self.engine(c.judge, "judge"), load_template(c.judge_template))

    def query2doc(self):
        """The Query2doc expander of ``--query2doc`` (None without it), on the run's cached engines."""
        c = self.config.data
        if not c.query2doc:
            return None
        return Query2Doc(self.engine(c.query2doc, "query2doc"), load_template(c.query2doc_template),
                         max_tokens=c.query2doc_max_tokens)

    # --- rerankers ----------------------------------------------------------------------------------------------
    def reranker_settings(self, name: str) -> RerankerSettings:
        """The run-wide settings, ``--checkpoint`` and ``--reranker-args NAME:...`` (the backend's ``Options`` and the
        per-backend settings), checked and typed; a listwise reranker's server defaults to the run's."""
        c, r, s = self.config.components, self.config.runtime, self.config.servers
        cls: type[Reranker] = self.spec(name).backend()
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
        run_wide = {**s.reader(), "reader": readers[0] if readers else "none",
                    "reader_template": c.reader_template, "reader_max_tokens": c.max_tokens}
        defaults = {k: v for k, v in run_wide.items() if k in option_names}
        options = typed_options(cls.Options, {**defaults, **args}, where)
        settings = RerankerSettings(checkpoint=c.checkpoints.get(name), device=r.device, dtype=r.dtype, seed=r.seed,
                                    cache_dir=r.cache_dir, trust_remote_code=r.trust_remote_code, options=options,
                                    **({"batch_size": r.batch_size} if r.batch_size is not None else {}))
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
        return get_reranker(self.spec(name), self.reranker_settings(name), name)
