"""The configuration of a run (``RunConfig``) and its one validation, which every path that makes one calls: ``bench
run``'s flags and ``--config`` files, ``rrpo train`` (``rrpo.assemble``) and the studies (through ``Runner.run``).

``RunConfig`` groups five sections (``bench.sections``): the components, the data and first stage, the LLM servers,
the runtime, and the reporting (where the run goes, what its reports add). Each field keeps its flag's name
(``--pool`` is ``data.pool``), unique across the sections, so a run's ``config.json`` keeps them flat and the run id
(a hash of the identity's fields) does not depend on the grouping.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from bench.builder import Builder
from bench.data import DATASETS
from bench.data.base import unknown_dataset
from bench.errors import UserError
from bench.expansion import check_query2doc
from bench.hashing import stable_hash
from bench.llm import check_engine_installed
from bench.options import check_server_options, field_types, typed_options
from bench.prompts import load_template
from bench.registry import did_you_mean
from bench.retrieval import check_first_stage, first_stage_options
from bench.sections import SECTIONS, Components, Data, Reporting, Runtime, Servers
from rerankers.registry import RerankerSpec, components, resolve

__all__ = ["Components", "Data", "Reporting", "RunConfig", "Runtime", "Servers"]

log = logging.getLogger(__name__)

# the section of each field
FIELD_SECTION = {f.name: section for section, cls in SECTIONS.items() for f in fields(cls)}


@dataclass(frozen=True)
class RunConfig:
    """A run's configuration, in sections (``bench.sections``). Field names are unique across the sections, so a
    flat mapping of them (flags, ``bench.run(pool=5)``, a run's ``config.json``) has one reading: ``from_fields``."""

    components: Components = field(default_factory=Components)
    data: Data = field(default_factory=Data)
    servers: Servers = field(default_factory=Servers)
    runtime: Runtime = field(default_factory=Runtime)
    reporting: Reporting = field(default_factory=Reporting)

    # Not part of the run's identity: where things go, how the cache is used, how fast and where it runs, what the
    # report adds (utility labels change no end-to-end number).
    NON_IDENTITY = ("output", "run_id", "cache_dir", "data_dir", "llm_cache", "concurrency", "timeout", "max_retries",
                    "chunk_size", "batch_size", "device", "primary_metric", "trust_remote_code", "utility",
                    "utility_depth", "utility_only")
    # Nor are the servers: the cache keys name the model, not the server, so a run moves between servers (or fleets)
    # and keeps its folder. They stay in the identity as None, so that the ids of runs made without them hold.
    SERVERS = ("base_url", "judge_base_url")

    COMPONENT_ARGS = ("reranker_args", "reader_args", "judge_args", "first_stage_args")
    QUERY2DOC = ("query2doc", "query2doc_template", "query2doc_max_tokens")

    # --- the flat view: every field by its own name -----------------------------------------------------------
    @staticmethod
    def field_types() -> dict[str, Any]:
        """Every field of every section and its type, in section order."""
        return {name: kind for cls in SECTIONS.values() for name, kind in field_types(cls).items()}

    @classmethod
    def from_fields(cls, values: Mapping[str, Any], where: str = "setting", base: RunConfig | None = None) -> RunConfig:
        """``base`` (default: the defaults) with the fields of ``values`` replaced, each in its section; a string is
        converted to its field's type (``bench.options``), another value must already have it."""
        base = base if base is not None else cls()
        by_section: dict[str, dict[str, Any]] = {}
        for name, value in RunConfig.fields_of(values, where).items():
            by_section.setdefault(FIELD_SECTION[name], {})[name] = value
        return replace(base, **{section: typed_options(SECTIONS[section], changes, where, base=getattr(base, section))
                                for section, changes in by_section.items()})

    @staticmethod
    def fields_of(values: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The fields of a mapping that holds them in sections (``{"data": {"pool": 5}}``: the ``--config`` format
        of docs/configuration.md) or flat (``{"pool": 5}``: a run's ``config.json``, ``bench.run``'s keywords). An
        unknown key, a field under another section, a section that is not a mapping or a field given twice fails in
        one line."""
        flat: dict[str, Any] = {}
        for key, value in values.items():
            if key in SECTIONS:
                if not isinstance(value, Mapping):
                    raise UserError(f"{where}: {key}={value!r}: expected a mapping of the section's fields "
                                    f"({', '.join(f.name for f in fields(SECTIONS[key]))})")
                for name in value:
                    if FIELD_SECTION.get(name) != key:
                        home = f"a field of {FIELD_SECTION[name]}" if name in FIELD_SECTION else "no field"
                        raise UserError(f"{where}: {key}.{name}: {home}; {key} has "
                                        f"{', '.join(f.name for f in fields(SECTIONS[key]))}")
                items = dict(value)
            elif key in FIELD_SECTION:
                items = {key: value}
            else:
                raise UserError(f"{where}: unknown key {key!r}; {did_you_mean(key, [*SECTIONS, *FIELD_SECTION])}"
                                f"valid: the sections {', '.join(SECTIONS)} or their fields {', '.join(FIELD_SECTION)}")
            twice = sorted(set(items) & set(flat))
            if twice:
                raise UserError(f"{where}: {twice[0]} given twice")
            flat.update(items)
        return flat

    def flat(self) -> dict[str, Any]:
        """Every field by its name (what a run's ``config.json`` holds, and what ``from_fields`` reads back)."""
        return {name: value for section in SECTIONS for name, value in asdict(getattr(self, section)).items()}

    def identity(self) -> dict[str, Any]:
        # Component options and the Query2doc settings join the identity only when given, so that the ids of runs
        # without them hold.
        return {k: None if k in self.SERVERS else v for k, v in self.flat().items()
                if k not in self.NON_IDENTITY and not (k in self.COMPONENT_ARGS and not v)
                and not (k in self.QUERY2DOC and not self.data.query2doc)}

    def with_baseline_listed(self) -> RunConfig:
        """The significance tests compare every reranker with ``baseline``, so it must be run: when it is not among
        ``rerankers`` it is put first, with one line saying so (by default ``none``, the first-stage order: free)."""
        c = self.components
        if c.baseline in c.rerankers:
            return self
        log.warning("--baseline %s is not among --rerankers: added as the first row (the reranker every other is "
                    "compared with%s)", c.baseline, "; the first-stage order, free" if c.baseline == "none" else "")
        return replace(self, components=replace(c, rerankers=[c.baseline, *c.rerankers]))

    def resolved_run_id(self, content: dict[str, Any]) -> str:
        """``--run-id``, or a name derived from the identity and ``content`` (fingerprints of the data and weights,
        so that changed data or a retrained checkpoint start a new run instead of resuming with stale records)."""
        if self.reporting.run_id:
            return self.reporting.run_id
        names = "+".join(Path(d).name for d in self.data.datasets)
        return f"{names}-{self.data.split}-{stable_hash({**self.identity(), 'content': content}, 10)}"

    # --- one validation for every path: flags, --config files, rrpo, studies -----------------------------------
    def stages(self) -> list[str]:
        """Every reranker the run builds, a cascade's stages each (``minilm@20>upr@5``: minilm, upr), once."""
        return list(dict.fromkeys(n for rr in self.components.rerankers for n in components(rr)))

    def validate(self) -> dict[str, RerankerSpec]:
        """Fail on a bad name, number or missing package before any model loads, any query runs or a run folder is
        made. ``bench run`` (flags and ``--config``), ``rrpo train`` and the studies all come through here. Returns
        the spec of every reranker the run builds (``stages`` and ``--utility-only``), each name resolved here once:
        the runner's fingerprints, pre-flight and builder take them from here."""
        self._validate_numbers()
        check_server_options(self.servers.base_url, self.servers.api_key_env, self.servers.judge_base_url,
                             self.servers.judge_api_key_env)
        specs = {name: resolve(name) for name in self.reporting.utility_only}
        self._validate_utility()
        specs.update(self._validate_names())
        self._validate_component_args(specs)
        return specs

    def _validate_numbers(self) -> None:
        sections = (self.data, self.components, self.runtime, self.servers)
        for name, least in (("pool", 1), ("top_k", 0), ("chunk_size", 1), ("batch_size", 1), ("concurrency", 1),
                            ("limit", 1), ("max_tokens", 1)):
            value = getattr(next(s for s in sections if hasattr(s, name)), name)
            if value is not None and value < least:
                expected = "0 or a positive number" if least == 0 else "a positive number"
                raise UserError(f"--{name.replace('_', '-')} {value}: expected {expected}")
        if self.servers.timeout <= 0:
            raise UserError(f"--timeout {self.servers.timeout}: expected a positive number of seconds")
        if self.servers.max_retries < 0:
            raise UserError(f"--max-retries {self.servers.max_retries}: expected 0 or a positive number")
        top_k, pool = self.components.top_k, self.data.pool
        if top_k > pool and any(spec != "none" for spec in self.components.readers):
            raise UserError(f"--top-k {top_k} is larger than --pool {pool}: the reader would see only "
                            f"{pool} documents; raise --pool or lower --top-k")

    def _validate_names(self) -> dict[str, RerankerSpec]:
        """The other names, and the spec of every reranker stage (their extras: with their weights, in
        ``Runner.preflight``)."""
        c, d = self.components, self.data
        check_first_stage(d.first_stage)
        if d.query2doc:
            check_query2doc(d.query2doc, d.first_stage, d.query2doc_template, d.query2doc_max_tokens)
        specs = {name: resolve(name) for name in self.stages()}
        for spec in [*c.readers, *([c.judge] if c.judge else [])]:
            if spec != "none":
                check_engine_installed(spec)
        if any(spec != "none" for spec in c.readers):
            load_template(c.reader_template)
        if c.judge:
            load_template(c.judge_template)
        for ds in d.datasets:
            if ds not in DATASETS and not Path(ds).expanduser().exists():
                raise unknown_dataset(ds)
        return specs

    def _validate_utility(self) -> None:
        o = self.reporting
        if o.utility_depth < 1:
            raise UserError(f"--utility-depth {o.utility_depth}: expected a positive number")
        for name in o.utility_only:
            if name in self.components.rerankers:
                raise UserError(f"--utility-only {name}: also in --rerankers, which reads it end to end; name it in "
                                f"one of them")

    def _validate_component_args(self, specs: dict[str, RerankerSpec]) -> None:
        """Each ``--*-args NAME:...`` names a component of the run, and its keys and values fit that component's
        options (checked by building the options, not the component)."""
        c, d = self.components, self.data
        for flag, args, names in (("--first-stage-args", d.first_stage_args, [d.first_stage]),
                                  ("--reranker-args", c.reranker_args, self.stages()),
                                  ("--reader-args", c.reader_args, [s for s in c.readers if s != "none"]),
                                  ("--judge-args", c.judge_args, [c.judge] if c.judge else [])):
            for name in args:
                if name not in names:
                    raise UserError(f"{flag} {name}: not a component of this run ({', '.join(names) or 'none'})")
        for method, values in d.first_stage_args.items():
            first_stage_options(method, values)
        builder = Builder(self, specs)
        for name in c.reranker_args:
            builder.reranker_settings(name)
        for role, args in (("reader", c.reader_args), ("judge", c.judge_args)):
            for spec in args:
                builder.engine_options(spec, role)
