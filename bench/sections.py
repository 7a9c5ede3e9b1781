"""The sections of a run's configuration (``bench.config.RunConfig``): small frozen dataclasses of plain values.

They sit in a low layer, apart from ``RunConfig`` and its validation, so that ``bench.builder`` (below
``bench.config``, which builds components to check their options) reads them typed. Every field has a name of its
own across the sections: the flag's (``--pool`` is ``pool``) and the key of a run's ``config.json``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.environment import cache_dir


def default_cache_dir() -> str:
    return str(cache_dir())


@dataclass(frozen=True)
class Components:
    """What ranks and reads: the rerankers, the readers, the judge, and their options and prompts."""

    rerankers: list[str] = field(default_factory=lambda: ["none", "random", "minilm", "rrpo", "oracle"])
    readers: list[str] = field(default_factory=lambda: ["smollm2"])
    judge: str | None = None
    baseline: str = "none"                 # the reranker the significance tests compare every other with
    top_k: int = 3                         # documents the reader sees (0: closed book)
    reader_template: str = "reader-qa"
    judge_template: str = "judge-reference"
    max_tokens: int = 32
    checkpoints: dict[str, str] = field(default_factory=dict)    # reranker name -> checkpoint override
    # Each component's own typed options, by its name or spec: {"rankzephyr": {"window": 20}} (--reranker-args ...)
    reranker_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    reader_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    judge_args: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Data:
    """The queries and their first-stage candidates."""

    datasets: list[str] = field(default_factory=lambda: ["fictional"])
    split: str = "test"
    limit: int | None = None
    data_dir: str | None = None            # local copies of named datasets (default $RERANK_BENCH_DATA)
    first_stage: str = "bm25"
    first_stage_args: dict[str, dict[str, Any]] = field(default_factory=dict)   # {"bm25": {"k1": 0.9, "b": 0.4}}
    pool: int = 20
    # Query2doc expansion of the first stage's query (bench.expansion): the LLM that writes the pseudo-documents
    query2doc: str | None = None
    query2doc_template: str = "query2doc"
    # a passage's length (~95 words); the generation cap of reimplementations of the paper
    query2doc_max_tokens: int = 128


@dataclass(frozen=True)
class Servers:
    """Where ``openai:*`` readers, judges and rerankers are served, and how requests are sent there."""

    base_url: str | list[str] | None = None    # OpenAI-compatible server(s)
    api_key_env: str = "OPENAI_API_KEY"    # the NAME of the variable holding the key, never the key
    judge_base_url: str | list[str] | None = None   # the judge's server(s) when not --base-url's (e.g. OpenAI)
    judge_api_key_env: str | None = None   # likewise for its key variable
    concurrency: int = 8                   # requests in flight per server
    timeout: float = 60.0
    max_retries: int = 5

    def reader(self) -> dict[str, Any]:
        """The server and key variable of readers (and of every role but the judge)."""
        return {"base_url": self.base_url, "api_key_env": self.api_key_env}

    def judge(self) -> dict[str, Any]:
        """The judge's own pair, each falling back to the readers'."""
        return {"base_url": self.judge_base_url or self.base_url,
                "api_key_env": self.judge_api_key_env or self.api_key_env}


@dataclass(frozen=True)
class Runtime:
    """How the models run on this machine, and the caches."""

    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None          # every reranker's and reader's batch; None: each one's own default
    chunk_size: int = 32                   # queries per reader call; records are flushed after each chunk
    trust_remote_code: bool = False        # let checkpoints that ship model code run it (only by the user's flag)
    cache_dir: str = field(default_factory=default_cache_dir)
    llm_cache: str = "use"                 # use | bypass | refresh


@dataclass(frozen=True)
class Reporting:
    """Where the run goes and what its reports add."""

    output: str = "results"                # the folder of run folders
    run_id: str | None = None
    primary_metric: str = "F1"             # the answer metric a claim is made on, declared before the run
    # Utility labels (bench.utility) add eRAG metrics to the records; rerankers in utility_only are judged by eRAG
    # alone (never read end to end).
    utility: bool = False
    utility_depth: int = 10
    utility_only: list[str] = field(default_factory=list)


# RunConfig's attribute of each section, in order
SECTIONS: dict[str, type] = {"components": Components, "data": Data, "servers": Servers, "runtime": Runtime,
                             "reporting": Reporting}
