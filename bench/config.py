"""The configuration of a run (``RunConfig``) and its one validation, which every path that makes one calls: ``bench
run``'s flags and ``--config`` files, ``rrpo train`` (``rrpo.assemble``) and the studies (through ``Runner.run``).

The fields are flat (``--pool`` is ``pool``, as in every saved ``config.json``), in sections: the components, the
data and first stage, the LLM servers, the runtime, and the output. A field's section says whether it is part of
the run's identity (``NON_IDENTITY``).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.builder import Builder
from bench.data import DATASETS
from bench.data.base import unknown_dataset
from bench.environment import cache_dir
from bench.errors import UserError
from bench.expansion import check_query2doc
from bench.hashing import stable_hash
from bench.llm import check_engine_installed
from bench.options import check_server_options
from bench.prompts import load_template
from bench.retrieval import check_first_stage, first_stage_options
from rerankers.registry import components, resolve

log = logging.getLogger(__name__)


def default_cache_dir() -> str:
    return str(cache_dir())


@dataclass
class RunConfig:
    datasets: list[str] = field(default_factory=lambda: ["fictional"])
    split: str = "test"
    rerankers: list[str] = field(default_factory=lambda: ["none", "random", "minilm", "rrpo", "oracle"])
    readers: list[str] = field(default_factory=lambda: ["smollm2"])
    judge: str | None = None
    first_stage: str = "bm25"
    # Query2doc expansion of the first stage's query (bench.expansion): the LLM that writes the pseudo-documents
    query2doc: str | None = None
    query2doc_template: str = "query2doc"
    # a passage's length (~95 words); the generation cap of reimplementations of the paper
    query2doc_max_tokens: int = 128
    pool: int = 20
    top_k: int = 3
    limit: int | None = None
    seed: int = 0
    baseline: str = "none"
    primary_metric: str = "F1"             # the answer metric a claim is made on, declared before the run
    reader_template: str = "reader-qa"
    judge_template: str = "judge-reference"
    max_tokens: int = 32
    checkpoints: dict[str, str] = field(default_factory=dict)    # reranker name -> checkpoint override
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None          # every reranker's and reader's batch; None: each one's own default
    base_url: str | list[str] | None = None   # OpenAI-compatible server(s) for openai:* readers/judges/rerankers
    api_key_env: str = "OPENAI_API_KEY"    # the NAME of the variable holding the key, never the key
    judge_base_url: str | list[str] | None = None   # the judge's server(s) when not --base-url's (e.g. OpenAI)
    judge_api_key_env: str | None = None   # likewise for its key variable
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 5
    chunk_size: int = 32                   # queries per reader call; records are flushed after each chunk
    trust_remote_code: bool = False        # let checkpoints that ship model code run it (only by the user's flag)
    # Each component's own typed options, by its name or spec: {"rankzephyr": {"window": 20}} (--reranker-args ...)
    reranker_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    reader_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    judge_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_stage_args: dict[str, dict[str, Any]] = field(default_factory=dict)   # {"bm25": {"k1": 0.9, "b": 0.4}}
    # Utility labels (bench.utility): they add eRAG metrics to the records and change no end-to-end number, so they
    # are not part of the run's identity; rerankers in utility_only are judged by eRAG alone (never read end to end).
    utility: bool = False
    utility_depth: int = 10
    utility_only: list[str] = field(default_factory=list)
    # Not part of the run's identity: where things go and how the cache is used.
    output: str = "results"
    run_id: str | None = None
    cache_dir: str = field(default_factory=default_cache_dir)
    data_dir: str | None = None            # local copies of named datasets (default $RERANK_BENCH_DATA)
    llm_cache: str = "use"                 # use | bypass | refresh

    NON_IDENTITY = ("output", "run_id", "cache_dir", "data_dir", "llm_cache", "concurrency", "timeout", "max_retries",
                    "chunk_size", "batch_size", "device", "primary_metric", "trust_remote_code", "utility",
                    "utility_depth", "utility_only")
    # Nor are the servers: the cache keys name the model, not the server, so a run moves between servers (or fleets)
    # and keeps its folder. They stay in the identity as None, so that the ids of runs made without them hold.
    SERVERS = ("base_url", "judge_base_url")

    COMPONENT_ARGS = ("reranker_args", "reader_args", "judge_args", "first_stage_args")
    QUERY2DOC = ("query2doc", "query2doc_template", "query2doc_max_tokens")

    def identity(self) -> dict[str, Any]:
        # Component options and the Query2doc settings join the identity only when given, so that the ids of runs
        # without them hold.
        return {k: None if k in self.SERVERS else v for k, v in asdict(self).items()
                if k not in self.NON_IDENTITY and not (k in self.COMPONENT_ARGS and not v)
                and not (k in self.QUERY2DOC and not self.query2doc)}

    def with_baseline_listed(self) -> RunConfig:
        """The significance tests compare every reranker with ``baseline``, so it must be run: when it is not among
        ``rerankers`` it is put first, with one line saying so (by default ``none``, the first-stage order: free)."""
        if self.baseline in self.rerankers:
            return self
        log.warning("--baseline %s is not among --rerankers: added as the first row (the reranker every other is "
                    "compared with%s)", self.baseline, "; the first-stage order, free" if self.baseline == "none" else "")
        return replace(self, rerankers=[self.baseline, *self.rerankers])

    def resolved_run_id(self, content: dict[str, Any]) -> str:
        """``--run-id``, or a name derived from the identity and ``content`` (fingerprints of the data and weights,
        so that changed data or a retrained checkpoint start a new run instead of resuming with stale records)."""
        if self.run_id:
            return self.run_id
        names = "+".join(Path(d).name for d in self.datasets)
        return f"{names}-{self.split}-{stable_hash({**self.identity(), 'content': content}, 10)}"

    # --- one validation for every path: flags, --config files, rrpo, studies -----------------------------------
    def stages(self) -> list[str]:
        """Every reranker the run builds, a cascade's stages each (``minilm@20>upr@5``: minilm, upr), once."""
        return list(dict.fromkeys(n for rr in self.rerankers for n in components(rr)))

    def validate(self) -> None:
        """Fail on a bad name, number or missing package before any model loads, any query runs or a run folder is
        made. ``bench run`` (flags and ``--config``), ``rrpo train`` and the studies all come through here."""
        self._validate_numbers()
        self._validate_key_variables()
        self._validate_utility()
        self._validate_names()
        self._validate_component_args()

    def _validate_numbers(self) -> None:
        for name, least in (("pool", 1), ("top_k", 0), ("chunk_size", 1), ("batch_size", 1), ("concurrency", 1),
                            ("limit", 1), ("max_tokens", 1)):
            value = getattr(self, name)
            if value is not None and value < least:
                expected = "0 or a positive number" if least == 0 else "a positive number"
                raise UserError(f"--{name.replace('_', '-')} {value}: expected {expected}")
        if self.timeout <= 0:
            raise UserError(f"--timeout {self.timeout}: expected a positive number of seconds")
        if self.max_retries < 0:
            raise UserError(f"--max-retries {self.max_retries}: expected 0 or a positive number")
        if self.top_k > self.pool and any(spec != "none" for spec in self.readers):
            raise UserError(f"--top-k {self.top_k} is larger than --pool {self.pool}: the reader would see only "
                            f"{self.pool} documents; raise --pool or lower --top-k")

    def _validate_key_variables(self) -> None:
        check_server_options(self.base_url, self.api_key_env, self.judge_base_url, self.judge_api_key_env)

    def _validate_names(self) -> None:
        check_first_stage(self.first_stage)
        if self.query2doc:
            check_query2doc(self.query2doc, self.first_stage, self.query2doc_template, self.query2doc_max_tokens)
        for name in self.stages():    # their extras: with their weights, in Runner.preflight
            resolve(name)
        for spec in [*self.readers, *([self.judge] if self.judge else [])]:
            if spec != "none":
                check_engine_installed(spec)
        if any(spec != "none" for spec in self.readers):
            load_template(self.reader_template)
        if self.judge:
            load_template(self.judge_template)
        for ds in self.datasets:
            if ds not in DATASETS and not Path(ds).expanduser().exists():
                raise unknown_dataset(ds)

    def _validate_utility(self) -> None:
        if self.utility_depth < 1:
            raise UserError(f"--utility-depth {self.utility_depth}: expected a positive number")
        for name in self.utility_only:
            resolve(name)
            if name in self.rerankers:
                raise UserError(f"--utility-only {name}: also in --rerankers, which reads it end to end; name it in "
                                f"one of them")

    def _validate_component_args(self) -> None:
        """Each ``--*-args NAME:...`` names a component of the run, and its keys and values fit that component's
        options (checked by building the options, not the component)."""
        for flag, args, names in (("--first-stage-args", self.first_stage_args, [self.first_stage]),
                                  ("--reranker-args", self.reranker_args, self.stages()),
                                  ("--reader-args", self.reader_args, [s for s in self.readers if s != "none"]),
                                  ("--judge-args", self.judge_args, [self.judge] if self.judge else [])):
            for name in args:
                if name not in names:
                    raise UserError(f"{flag} {name}: not a component of this run ({', '.join(names) or 'none'})")
        for method, values in self.first_stage_args.items():
            first_stage_options(method, values)
        builder = Builder(self)
        for name in self.reranker_args:
            builder.reranker_settings(name)
        for role, args in (("reader", self.reader_args), ("judge", self.judge_args)):
            for spec in args:
                builder.engine_options(spec, role)
