"""Runs datasets × rerankers × readers and writes ``results/<run-id>/``.

The run id is derived from the resolved config, so re-running the same command continues the same run: finished
(dataset, reranker, reader, query) records are kept, failed ones are retried, and every LLM call that already
completed is served from the shared SQLite cache. Records are appended and flushed as each chunk of queries
finishes, so a killed run loses at most the chunk in flight (and not even its LLM calls).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from bench.builder import Builder
from bench.distributed import EVALUATION_TIMEOUT, Dist, merge_costs, parts_of, remove_parts
from bench.environment import cache_dir
from bench.files import atomic_write
from bench.errors import UserError
from bench.hashing import stable_hash
from bench.types import QueryRecord, Ranking

log = logging.getLogger(__name__)

# A record in one of these states is final: a re-run keeps it. "no_candidates": the first stage gave the query
# nothing to rank, so no reader was asked and the query is counted apart from the answered ones.
FINAL_STATUSES = ("ok", "no_candidates")
LOCK_FILE = ".lock"
RETRY_STATS = ("attempts", "retries", "failed_attempts", "servers")
ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Prefixes of API keys (OpenAI, Hugging Face, Groq, Google, Anthropic, xAI): a value starting so is a key pasted
# where the NAME of its variable belongs.
KEY_PREFIXES = ("sk-", "sk_", "hf_", "gsk_", "AIza", "xai-")


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
    # Not part of the run's identity: where things go and how the cache is used.
    output: str = "results"
    run_id: str | None = None
    cache_dir: str = field(default_factory=default_cache_dir)
    data_dir: str | None = None            # local copies of named datasets (default $RERANK_BENCH_DATA)
    llm_cache: str = "use"                 # use | bypass | refresh

    NON_IDENTITY = ("output", "run_id", "cache_dir", "data_dir", "llm_cache", "concurrency", "timeout", "max_retries",
                    "chunk_size", "batch_size", "device", "primary_metric", "trust_remote_code")

    COMPONENT_ARGS = ("reranker_args", "reader_args", "judge_args")
    QUERY2DOC = ("query2doc", "query2doc_template", "query2doc_max_tokens")

    def identity(self) -> dict[str, Any]:
        # Component options and the Query2doc settings join the identity only when given, so that the ids of runs
        # without them hold.
        return {k: v for k, v in asdict(self).items()
                if k not in self.NON_IDENTITY and not (k in self.COMPONENT_ARGS and not v)
                and not (k in self.QUERY2DOC and not self.query2doc)}

    def resolved_run_id(self, content: dict[str, Any]) -> str:
        """``--run-id``, or a name derived from the identity and ``content`` (fingerprints of the data and weights,
        so that changed data or a retrained checkpoint start a new run instead of resuming with stale records)."""
        if self.run_id:
            return self.run_id
        names = "+".join(Path(d).name for d in self.datasets)
        return f"{names}-{self.split}-{stable_hash({**self.identity(), 'content': content}, 10)}"


def read_jsonl_tail_tolerant(path: Path, parse) -> list:
    """Parse a JSONL file this run appends to. A kill can leave a torn last line: when it is not a whole record it
    is dropped (and cut from the file, so the next append starts on a clean line; a whole record without its newline
    gets one from ``append_jsonl``); a bad line anywhere else is an error naming file and line."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    items = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            items.append(parse(json.loads(line)))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            if n == len(lines):          # torn tail: no newline after it
                path.write_text("".join(l + "\n" for l in lines[:n - 1] if l.strip()), encoding="utf-8")
                break
            raise UserError(f"{path}:{n}: not a valid record ({exc})") from None
    return items


class RecordStore:
    """Append-only per-query JSONL with one live record per key (the last one written). Records are read from
    ``path`` and the parts other ranks of a torchrun run left beside it (``bench.distributed``); a final record is
    never replaced by a failed one from another part, whose order in time is unknown."""

    def __init__(self, path: Path, merged: Path | None = None):
        self.path = path
        self.records: dict[tuple[str, str, str, str], QueryRecord] = {}
        for part in parts_of(merged or path):
            for rec in read_jsonl_tail_tolerant(part, QueryRecord.from_json):
                old = self.records.get(self.key(rec))
                if old is None or rec.status in FINAL_STATUSES or old.status not in FINAL_STATUSES:
                    self.records[self.key(rec)] = rec

    @staticmethod
    def key(rec: QueryRecord) -> tuple[str, str, str, str]:
        return rec.dataset, rec.reranker, rec.reader, rec.qid

    def done(self, dataset: str, reranker: str, reader: str, qid: str) -> bool:
        rec = self.records.get((dataset, reranker, reader, qid))
        return rec is not None and rec.status in FINAL_STATUSES

    def append(self, recs: list[QueryRecord]) -> None:
        append_jsonl(self.path, [r.to_json() for r in recs])
        for rec in recs:
            self.records[self.key(rec)] = rec

    def compact(self) -> None:
        """Rewrite the file with one record per key (retried failures replaced), atomically, and drop the parts it
        now holds."""
        atomic_write(self.path, lambda tmp: tmp.write_text(
            "".join(json.dumps(rec.to_json(), ensure_ascii=False) + "\n" for rec in self.records.values()),
            encoding="utf-8"))
        remove_parts(self.path)


def append_jsonl(path: Path, rows: list[dict]) -> None:
    """Append rows and flush them to disk before returning (a finished chunk survives a kill). A file whose last
    line lacks its newline (a kill between a record and its newline) gets the newline first, so the new rows never
    glue onto that record."""
    with path.open("a+b") as f:
        if f.tell():                        # append mode starts at the end: a non-empty file
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        for row in rows:
            f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def run_folder_lock(folder: Path, name: str = LOCK_FILE) -> Iterator[None]:
    """Hold an exclusive lock on a run folder while writing into it: two runs appending to the same records and
    rankings would corrupt them. A second run fails at once (exit 2) naming the process that holds the lock; the
    kernel drops the lock when that process ends, even by SIGKILL."""
    with (folder / name).open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise UserError(f"{folder}: another run (pid {holder}) is writing into this run folder; wait for it to "
                            f"finish, or pass another --output or --run-id") from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class Runner:
    def __init__(self, config: RunConfig):
        self.config = config
        self.out_dir: Path | None = None        # results/<run-id>, known once the data are loaded
        self.stage_seconds: dict[str, float] = {}
        self.builder = Builder(config)
        self.status_counts: dict[str, int] = {}     # status -> records of the run, once it has finished
        self.dist = Dist()                          # this process's rank under torchrun
        self.trec_runs: list[tuple[str, str, list[str]]] = []   # (dataset, reranker, qids in order) to write

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + time.perf_counter() - t0

    # --- the run ------------------------------------------------------------------------------------------
    def run(self) -> str:
        from bench.data import load_dataset

        from rerankers.registry import components, weights_fingerprint

        self.validate()
        self.dist = Dist.from_env(backend="gloo", timeout=EVALUATION_TIMEOUT)   # only small objects are exchanged
        self.config = c = replace(self.config, device=self.dist.device(self.config.device))
        self.builder = Builder(c)                  # built from the config with this rank's device
        with self.timed("load dataset"):
            datasets = [load_dataset(ds_arg, split=c.split, cache_dir=c.cache_dir, data_dir=c.data_dir).limit(c.limit)
                        for ds_arg in c.datasets]
        if c.judge:
            for dataset in datasets:
                if not dataset.has_answers:
                    raise UserError(f"--judge {c.judge}: dataset {dataset.name!r} has no gold answers to judge "
                                    f"against; drop --judge for it")
        content = {"data": [d.fingerprint() for d in datasets],
                   "weights": {name: weights_fingerprint(name, c.checkpoints.get(name))
                               for name in dict.fromkeys(n for rr in c.rerankers for n in components(rr))}}
        self.out_dir = Path(c.output) / c.resolved_run_id(content)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with run_folder_lock(self.out_dir, self.dist.lock_name(LOCK_FILE)):
            return self._run(datasets, content)

    def _run(self, datasets, content: dict[str, Any]) -> str:
        from bench.expansion import expanded_first_stage

        c = self.config
        config = {**asdict(c), "fingerprints": content, "world_size": self.dist.world}
        if self.dist.main:
            (self.out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        records_path = self.out_dir / "records.jsonl"
        store = RecordStore(self.dist.part(records_path), records_path)
        readers = {spec: None if spec == "none" else self.builder.reader(spec) for spec in c.readers}
        judge = self.builder.judge() if c.judge else None
        expander = self.builder.query2doc()

        for dataset in datasets:
            ds_name = dataset.name
            with self.timed("first stage"):       # with the query expansion, when there is one
                lists, pseudo_docs = self.dist.main_first(lambda: expanded_first_stage(
                    dataset, c.first_stage, c.pool, cache_dir=c.cache_dir, expander=expander))
            empty = [cl.query.qid for cl in lists if not cl.candidates]
            if empty:
                log.warning("%s: %d of %d queries have no first-stage candidates (e.g. %r): recorded as "
                            "no_candidates, not answered, counted apart from the answered queries", ds_name,
                            len(empty), len(lists), empty[0])
            by_qid = {cl.query.qid: cl for cl in lists}
            for rr_name in c.rerankers:
                pending = [cl for cl in self.dist.shard(lists)
                           if not all(store.done(ds_name, rr_name, rd, cl.query.qid) for rd in c.readers)]
                rankings = self._rankings(ds_name, rr_name, pending)
                # written whole each time (also when nothing was pending), so a resumed run's file has every query;
                # under torchrun by rank 0 once every rank has ranked its queries
                self.trec_runs.append((ds_name, rr_name, [cl.query.qid for cl in lists]))
                if self.dist.world == 1:
                    self._write_trec_run(ds_name, rr_name, [rankings[cl.query.qid] for cl in lists
                                                            if cl.query.qid in rankings])
                if not pending:
                    continue
                for reader_spec, reader in readers.items():
                    todo = [cl for cl in pending if not store.done(ds_name, rr_name, reader_spec, cl.query.qid)]
                    bar = tqdm(total=len(todo), desc=f"{ds_name} · {rr_name} · {reader_spec}", unit="q")
                    for chunk in chunks(todo, c.chunk_size):
                        recs = self._records(ds_name, rr_name, reader_spec, reader, judge, chunk, rankings,
                                             by_qid, dataset.corpus, dataset.relevance_level, pseudo_docs)
                        if self.dist.world > 1:
                            for rec in recs:
                                rec.info["rank"] = self.dist.rank
                        store.append(recs)
                        bar.update(len(chunk))
                    bar.close()
        if self.dist.world > 1:
            return self._merge_ranks(records_path)
        for ds_name, rr_name, qids in self.trec_runs:    # parts a killed torchrun run left
            if len(parts_of(self._rankings_path(ds_name, rr_name))) > 1:
                self._merge_rankings(ds_name, rr_name, qids)
        store.compact()
        for rec in store.records.values():
            self.status_counts[rec.status] = self.status_counts.get(rec.status, 0) + 1
        self._write_costs()
        return report_run_folder(self.out_dir)

    def _merge_ranks(self, records_path: Path) -> str:
        """Under torchrun: wait for every rank, then rank 0 merges the parts into the files of a one-process run
        and writes the reports (returned; "" on the other ranks)."""
        costs = self.dist.gather(self._costs())         # also the barrier: every rank has written its parts
        report = ""
        if self.dist.main:
            for ds_name, rr_name, qids in self.trec_runs:
                self._write_trec_run(ds_name, rr_name, self._merge_rankings(ds_name, rr_name, qids))
            store = RecordStore(records_path)
            # in a one-process run's order (the bootstrap resamples records by position)
            order = {key: i for i, key in enumerate((ds, rr, rd, q) for ds, rr, qids in self.trec_runs
                                                    for rd in self.config.readers for q in qids)}
            store.records = dict(sorted(store.records.items(), key=lambda item: order.get(item[0], len(order))))
            store.compact()
            for rec in store.records.values():
                self.status_counts[rec.status] = self.status_counts.get(rec.status, 0) + 1
            (self.out_dir / "costs.json").write_text(json.dumps(merge_costs(costs), indent=2) + "\n")
            report = report_run_folder(self.out_dir)
        self.status_counts = self.dist.gather(self.status_counts)[0]
        self.dist.close()
        return report

    def validate(self) -> None:
        """Fail on a bad name, number or missing package before any model loads, any query runs or the run folder
        is made."""
        from bench.data import DATASETS
        from bench.data.base import unknown_dataset
        from bench.errors import check_extra
        from bench.llm import check_engine_installed
        from rerankers.registry import components, resolve

        c = self.config
        for flag, value in (("--limit", c.limit), ("--max-tokens", c.max_tokens)):
            if value is not None and value < 1:
                raise UserError(f"{flag} {value}: expected a positive number")
        if c.query2doc:
            from bench.expansion import check_query2doc

            check_query2doc(c.query2doc, c.first_stage, c.query2doc_template, c.query2doc_max_tokens)
        if c.top_k > c.pool and any(spec != "none" for spec in c.readers):
            raise UserError(f"--top-k {c.top_k} is larger than --pool {c.pool}: the reader would see only {c.pool} "
                            f"documents; raise --pool or lower --top-k")
        for flag, name in (("--api-key-env", c.api_key_env), ("--judge-api-key-env", c.judge_api_key_env)):
            if name is not None and (not ENV_VAR_NAME.fullmatch(name) or name.startswith(KEY_PREFIXES)):
                # The value may be the key itself: it is not repeated here, nor written anywhere.
                raise UserError(f"{flag}: the value looks like an API key, not the NAME of the environment variable "
                                f"holding one (e.g. OPENAI_API_KEY); it is not shown here")
        for name in (n for rr in c.rerankers for n in components(rr)):
            spec = resolve(name)
            if spec.extra:
                check_extra(spec.extra, f"reranker {name!r}")
        for spec in [*c.readers, *([c.judge] if c.judge else [])]:
            if spec != "none":
                check_engine_installed(spec)
        for ds in c.datasets:
            if ds not in DATASETS and not Path(ds).expanduser().exists():
                raise unknown_dataset(ds)
        if c.baseline not in c.rerankers:
            raise UserError(f"--baseline {c.baseline!r} is not among --rerankers ({' '.join(c.rerankers)})")
        self.validate_component_args()

    def validate_component_args(self) -> None:
        """Each ``--*-args NAME:...`` names a component of the run, and its keys and values fit that component's
        options (checked by building the options, not the component)."""
        from rerankers.registry import components

        c = self.config
        stages = list(dict.fromkeys(n for rr in c.rerankers for n in components(rr)))
        for flag, args, names in (("--reranker-args", c.reranker_args, stages),
                                  ("--reader-args", c.reader_args, [s for s in c.readers if s != "none"]),
                                  ("--judge-args", c.judge_args, [c.judge] if c.judge else [])):
            for name in args:
                if name not in names:
                    raise UserError(f"{flag} {name}: not a component of this run ({', '.join(names) or 'none'})")
        for name in c.reranker_args:
            self.builder.reranker_settings(name)
        for role, args in (("reader", c.reader_args), ("judge", c.judge_args)):
            for spec in args:
                self.builder.engine_options(spec, role)

    def _rankings(self, ds_name: str, rr_name: str, pending) -> dict[str, Ranking]:
        """Rankings of the pending queries, reusing those saved by an earlier (interrupted) run."""
        path = self._rankings_path(ds_name, rr_name)
        path.parent.mkdir(exist_ok=True)
        saved = self._saved_rankings(path)
        missing = [cl for cl in pending if cl.query.qid not in saved and cl.candidates]
        if missing:
            with self.timed(f"load reranker {rr_name}"):
                reranker = self.builder.reranker(rr_name)
            with self.timed(f"rerank {rr_name}"):
                new = reranker.rerank(missing)
            for part, seconds in reranker.stage_costs().items():     # a cascade's stages, a line each
                self.stage_seconds[f"rerank {rr_name} · {part}"] = \
                    self.stage_seconds.get(f"rerank {rr_name} · {part}", 0.0) + seconds
            identity = reranker.identity()
            for ranking in new:                 # each record then names the checkpoint / prompt / seed behind it
                ranking.info["reranker"] = identity
            append_jsonl(self.dist.part(path), [r.to_json() for r in new])
            saved.update({r.qid: r for r in new})
        return saved

    def _merge_rankings(self, ds_name: str, rr_name: str, qids: list[str]) -> list[Ranking]:
        """Rewrite a rankings file with its parts' rankings too, in dataset order; return them so."""
        from bench.retrieval import _write_lines

        path = self._rankings_path(ds_name, rr_name)
        saved = self._saved_rankings(path)
        rankings = [saved[q] for q in qids if q in saved]
        _write_lines(path, (json.dumps(r.to_json(), ensure_ascii=False) for r in rankings))
        remove_parts(path)
        return rankings

    def _rankings_path(self, ds_name: str, rr_name: str) -> Path:
        return self.out_dir / "rankings" / f"{Path(ds_name).name}__{rr_name}.jsonl"

    @staticmethod
    def _saved_rankings(path: Path) -> dict[str, Ranking]:
        """Rankings saved in ``path`` and in the parts of it that ranks of a torchrun run wrote."""
        return {r.qid: r for part in parts_of(path) for r in read_jsonl_tail_tolerant(part, Ranking.from_json)}

    def _write_trec_run(self, ds_name: str, rr_name: str, rankings: list[Ranking]) -> None:
        """``runs/<dataset>__<reranker>.trec`` for trec_eval and ranx (tag: the reranker's name)."""
        from bench.retrieval import write_trec_run

        write_trec_run(self.out_dir / "runs" / f"{Path(ds_name).name}__{rr_name}.trec", rankings, tag=rr_name)

    def _records(self, ds_name, rr_name, reader_spec, reader, judge, chunk, rankings, by_qid, corpus,
                 relevance_level=1, pseudo_docs=None):
        from bench.metrics import answer_metrics, retrieval_metrics

        c = self.config
        answerable = [cl for cl in chunk if cl.candidates]
        chunk_rankings = {cl.query.qid: rankings[cl.query.qid] for cl in answerable}
        qrels = {cl.query.qid: cl.query.qrels for cl in answerable if cl.query.qrels}
        with self.timed("retrieval metrics"):
            retrieval = (retrieval_metrics(chunk_rankings, qrels, top_k=c.top_k, relevance_level=relevance_level)
                         if qrels else {})
        answers = {}
        if reader is not None and answerable:
            docs_by_id = {c_.docid: c_.doc for cl in answerable for c_ in cl.candidates}
            prefixes = [[docs_by_id.get(d) or corpus[d] for d in chunk_rankings[cl.query.qid].docids[:c.top_k]]
                        for cl in answerable]
            with self.timed(f"reader {reader_spec}"):
                answers = {a.qid: a for a in reader.answer([cl.query for cl in answerable], prefixes)}
        verdicts = {}
        if judge is not None and answers:
            ok = [cl for cl in answerable if not answers[cl.query.qid].error and cl.query.answers]
            with self.timed("judge"):
                got = judge.judge([(cl.query.text, cl.query.answers, answers[cl.query.qid].text) for cl in ok])
            verdicts = {cl.query.qid: v for cl, v in zip(ok, got)}
        recs = []
        for cl in chunk:
            q = cl.query
            # the pseudo-document the first stage searched with, traceable to its template and cached call
            expansion = {"query2doc": pseudo_docs[q.qid].info()} if pseudo_docs and q.qid in pseudo_docs else {}
            if not cl.candidates:
                recs.append(QueryRecord(dataset=ds_name, reranker=rr_name, reader=reader_spec, qid=q.qid,
                                        question=q.text, gold_answers=q.answers, ranking=[], answer=None,
                                        metrics={}, status="no_candidates",
                                        error="the first stage found no candidates for this query", info=expansion))
                continue
            ranking = chunk_rankings[q.qid]
            metrics = dict(retrieval.get(q.qid, {}))
            info: dict[str, Any] = {**ranking.info, **expansion}
            status, error, text = "ok", None, None
            if reader is not None:
                a = answers[q.qid]
                text = a.text
                info.update(prompt=a.prompt_hash, usage=a.usage, cached=a.cached)
                v = verdicts.get(q.qid)
                # the LLM cache's keys of the calls behind this answer: look the exact request's response up there
                calls = {"reader": a.cache_key, "judge": v.cache_key if v is not None else None}
                if any(calls.values()):
                    info["llm_calls"] = {role: key for role, key in calls.items() if key}
                if a.error:
                    status, error = "failed", a.error
                elif v is not None and v.error is not None:
                    # The judge's server failed: no verdict was given, so the query is retried on the next run.
                    status, error = "failed", f"judge: {v.error}"
                else:
                    metrics.update(answer_metrics(a.text, q.answers))
                    if v is not None:
                        info["judge"] = {"valid": v.valid, "reason": v.reason}
                        if v.valid:
                            metrics["judge"] = float(v.correct)
            recs.append(QueryRecord(dataset=ds_name, reranker=rr_name, reader=reader_spec, qid=q.qid,
                                    question=q.text, gold_answers=q.answers, ranking=ranking.docids,
                                    answer=text, metrics=metrics, status=status, error=error, info=info))
        return recs

    def _write_costs(self) -> None:
        """``costs.json``: this invocation's LLM calls (made vs served from the cache, tokens) and stage times."""
        (self.out_dir / "costs.json").write_text(json.dumps(self._costs(), indent=2) + "\n")

    def _costs(self) -> dict[str, Any]:
        llm = {}
        for spec, eng in self.builder.engines.items():
            # An engine that retries (openai) counts its attempts itself: calls made can be fewer than requests sent.
            retried = getattr(eng.engine, "stats", {})
            llm[spec] = {**eng.stats, **{k: retried[k] for k in RETRY_STATS if k in retried}}
        return {"stage_seconds": {k: round(v, 2) for k, v in self.stage_seconds.items()}, "llm": llm}


def report_run_folder(out_dir: Path) -> str:
    """Write every report of a run folder from what it keeps (config.json, records.jsonl, costs.json) and return the
    Markdown: what ``bench run`` writes at its end and ``bench report`` rewrites, byte for byte."""
    from bench.report import ReportOptions, write_reports

    if not (out_dir / "records.jsonl").is_file():
        raise UserError(f"{out_dir}: no records.jsonl (expected a results/<run-id>/ folder)")
    config_path, costs_path = out_dir / "config.json", out_dir / "costs.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    costs = json.loads(costs_path.read_text()) if costs_path.is_file() else None
    records = list(RecordStore(out_dir / "records.jsonl").records.values())
    return write_reports(records, out_dir, ReportOptions.from_config(config), judge=config.get("judge"),
                         costs=costs)
