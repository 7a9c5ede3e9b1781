"""Runs datasets × rerankers × readers and writes ``results/<run-id>/``.

The run id is derived from the resolved config, so re-running the same command continues the same run: finished
(dataset, reranker, reader, query) records are kept, failed ones are retried, and every LLM call that already
completed is served from the shared SQLite cache. Records are appended and flushed as each chunk of queries
finishes, so a killed run loses at most the chunk in flight (and not even its LLM calls).
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from bench.environment import cache_dir
from bench.errors import UserError
from bench.llm.base import stable_hash
from bench.types import QueryRecord, Ranking


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
    batch_size: int = 32
    base_url: str | None = None            # OpenAI-compatible server for openai:* readers/judges/rerankers
    api_key_env: str = "OPENAI_API_KEY"    # the NAME of the variable holding the key, never the key
    judge_base_url: str | None = None      # the judge's server when it is not --base-url's (e.g. OpenAI itself)
    judge_api_key_env: str | None = None   # likewise for its key variable
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 5
    chunk_size: int = 32                   # queries per reader call; records are flushed after each chunk
    # Not part of the run's identity: where things go and how the cache is used.
    output: str = "results"
    run_id: str | None = None
    cache_dir: str = field(default_factory=default_cache_dir)
    llm_cache: str = "use"                 # use | bypass | refresh

    NON_IDENTITY = ("output", "run_id", "cache_dir", "llm_cache", "concurrency", "timeout", "max_retries",
                    "chunk_size", "batch_size", "device", "primary_metric")

    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in self.NON_IDENTITY}

    def resolved_run_id(self, content: dict[str, Any]) -> str:
        """``--run-id``, or a name derived from the identity and ``content`` (fingerprints of the data and weights,
        so that changed data or a retrained checkpoint start a new run instead of resuming with stale records)."""
        if self.run_id:
            return self.run_id
        names = "+".join(Path(d).name for d in self.datasets)
        return f"{names}-{self.split}-{stable_hash({**self.identity(), 'content': content}, 10)}"


def read_jsonl_tail_tolerant(path: Path, parse) -> list:
    """Parse a JSONL file this run appends to. A kill can leave a torn last line: it is dropped (and cut from the
    file, so the next append starts on a clean line); a bad line anywhere else is an error naming file and line."""
    if not path.exists():
        return []
    lines = path.read_text().split("\n")
    items = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            items.append(parse(json.loads(line)))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            if n == len(lines):          # torn tail: no newline after it
                path.write_text("".join(l + "\n" for l in lines[:n - 1] if l.strip()))
                break
            raise UserError(f"{path}:{n}: not a valid record ({exc})") from None
    return items


class RecordStore:
    """Append-only per-query JSONL with one live record per key (the last one written)."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[tuple[str, str, str, str], QueryRecord] = {
            self.key(r): r for r in read_jsonl_tail_tolerant(path, QueryRecord.from_json)}

    @staticmethod
    def key(rec: QueryRecord) -> tuple[str, str, str, str]:
        return rec.dataset, rec.reranker, rec.reader, rec.qid

    def done(self, dataset: str, reranker: str, reader: str, qid: str) -> bool:
        rec = self.records.get((dataset, reranker, reader, qid))
        return rec is not None and rec.status == "ok"

    def append(self, recs: list[QueryRecord]) -> None:
        append_jsonl(self.path, [r.to_json() for r in recs])
        for rec in recs:
            self.records[self.key(rec)] = rec

    def compact(self) -> None:
        """Rewrite the file with one record per key (retried failures replaced), atomically."""
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            for rec in self.records.values():
                f.write(json.dumps(rec.to_json(), ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)


def append_jsonl(path: Path, rows: list[dict]) -> None:
    """Append rows and flush them to disk before returning (a finished chunk survives a kill)."""
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class Runner:
    def __init__(self, config: RunConfig):
        self.config = config
        self.out_dir: Path | None = None        # results/<run-id>, known once the data are loaded
        self.stage_seconds: dict[str, float] = {}
        self._engines: dict[str, Any] = {}
        self._llm_cache = None

    # --- shared LLM machinery -------------------------------------------------------------------------------
    def engine(self, spec: str, base_url: str | None = None, api_key_env: str | None = None):
        """One cached engine per spec, shared by readers, the judge and listwise rerankers of this run; OpenAI-
        compatible engines talk to ``--base-url`` unless given their own server."""
        if spec not in self._engines:
            from bench.llm import make_cached_engine
            from bench.llm.cache import open_cache

            c = self.config
            if self._llm_cache is None:
                self._llm_cache = open_cache(c.cache_dir)
            self._engines[spec] = make_cached_engine(
                spec, self._llm_cache, c.llm_cache, device=c.device, dtype=c.dtype, base_url=base_url or c.base_url,
                api_key_env=api_key_env or c.api_key_env, concurrency=c.concurrency, timeout=c.timeout,
                max_retries=c.max_retries)
        return self._engines[spec]

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
        from bench.prompts import load_template
        from bench.readers import Reader
        from bench.report import ReportOptions, write_reports
        from bench.retrieval import first_stage

        from rerankers.registry import weights_fingerprint

        c = self.config
        self.validate()
        with self.timed("load dataset"):
            datasets = [load_dataset(ds_arg, split=c.split, cache_dir=c.cache_dir).limit(c.limit)
                        for ds_arg in c.datasets]
        content = {"data": [d.fingerprint() for d in datasets],
                   "weights": {name: weights_fingerprint(name, c.checkpoints.get(name)) for name in c.rerankers}}
        self.out_dir = Path(c.output) / c.resolved_run_id(content)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        config = {**asdict(c), "fingerprints": content}
        (self.out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        store = RecordStore(self.out_dir / "records.jsonl")
        readers = {spec: (None if spec == "none" else
                          Reader(self.engine(spec), load_template(c.reader_template), max_tokens=c.max_tokens))
                   for spec in c.readers}
        judge = self._judge() if c.judge else None

        for dataset in datasets:
            ds_name = dataset.name
            with self.timed("first stage"):
                lists = first_stage(dataset, c.first_stage, c.pool, cache_dir=c.cache_dir)
            by_qid = {cl.query.qid: cl for cl in lists}
            for rr_name in c.rerankers:
                pending = [cl for cl in lists
                           if not all(store.done(ds_name, rr_name, rd, cl.query.qid) for rd in c.readers)]
                if not pending:
                    continue
                rankings = self._rankings(ds_name, rr_name, pending)
                for reader_spec, reader in readers.items():
                    todo = [cl for cl in pending if not store.done(ds_name, rr_name, reader_spec, cl.query.qid)]
                    bar = tqdm(total=len(todo), desc=f"{ds_name} · {rr_name} · {reader_spec}", unit="q")
                    for chunk in chunks(todo, c.chunk_size):
                        recs = self._records(ds_name, rr_name, reader_spec, reader, judge, chunk, rankings,
                                             by_qid, dataset.corpus)
                        store.append(recs)
                        bar.update(len(chunk))
                    bar.close()
        store.compact()
        records = list(store.records.values())
        opts = ReportOptions(baseline=c.baseline, top_k=c.top_k, seed=c.seed, primary_metric=c.primary_metric)
        md = write_reports(records, self.out_dir, opts, extra_sections=self._extra_sections(records))
        return md

    def validate(self) -> None:
        """Fail on a bad name before any model loads or any query runs."""
        from bench.data import DATASETS
        from bench.data.base import unknown_dataset
        from rerankers.registry import resolve

        for name in self.config.rerankers:
            resolve(name)
        for ds in self.config.datasets:
            if ds not in DATASETS and not Path(ds).expanduser().exists():
                raise unknown_dataset(ds)
        if self.config.baseline not in self.config.rerankers:
            raise UserError(f"--baseline {self.config.baseline!r} is not among --rerankers "
                            f"({' '.join(self.config.rerankers)})")

    def _rankings(self, ds_name: str, rr_name: str, pending) -> dict[str, Ranking]:
        """Rankings of the pending queries, reusing those saved by an earlier (interrupted) run."""
        from rerankers.registry import RerankerSettings, get_reranker

        c = self.config
        path = self.out_dir / "rankings" / f"{Path(ds_name).name}__{rr_name}.jsonl"
        path.parent.mkdir(exist_ok=True)
        saved = {r.qid: r for r in read_jsonl_tail_tolerant(path, Ranking.from_json)}
        missing = [cl for cl in pending if cl.query.qid not in saved]
        if missing:
            settings = RerankerSettings(checkpoint=c.checkpoints.get(rr_name), device=c.device, dtype=c.dtype,
                                        batch_size=c.batch_size, seed=c.seed, cache_dir=c.cache_dir,
                                        options={"engine": self.engine, "base_url": c.base_url,
                                                 "api_key_env": c.api_key_env})
            with self.timed(f"load reranker {rr_name}"):
                reranker = get_reranker(rr_name, settings)
            with self.timed(f"rerank {rr_name}"):
                new = reranker.rerank(missing)
            identity = reranker.identity()
            for ranking in new:                 # each record then names the checkpoint / prompt / seed behind it
                ranking.info["reranker"] = identity
            append_jsonl(path, [r.to_json() for r in new])
            saved.update({r.qid: r for r in new})
        return saved

    def _records(self, ds_name, rr_name, reader_spec, reader, judge, chunk, rankings, by_qid, corpus):
        from bench.metrics import answer_metrics, retrieval_metrics

        c = self.config
        chunk_rankings = {cl.query.qid: rankings[cl.query.qid] for cl in chunk}
        qrels = {cl.query.qid: cl.query.qrels for cl in chunk if cl.query.qrels}
        with self.timed("retrieval metrics"):
            retrieval = retrieval_metrics(chunk_rankings, qrels, top_k=c.top_k) if qrels else {}
        answers = {}
        if reader is not None:
            docs_by_id = {c_.docid: c_.doc for cl in chunk for c_ in cl.candidates}
            prefixes = [[docs_by_id.get(d) or corpus[d] for d in chunk_rankings[cl.query.qid].docids[:c.top_k]]
                        for cl in chunk]
            with self.timed(f"reader {reader_spec}"):
                answers = {a.qid: a for a in reader.answer([cl.query for cl in chunk], prefixes)}
        verdicts = {}
        if judge is not None and answers:
            ok = [cl for cl in chunk if not answers[cl.query.qid].error]
            with self.timed("judge"):
                got = judge.judge([(cl.query.text, cl.query.answers, answers[cl.query.qid].text) for cl in ok])
            verdicts = {cl.query.qid: v for cl, v in zip(ok, got)}
        recs = []
        for cl in chunk:
            q = cl.query
            ranking = chunk_rankings[q.qid]
            metrics = dict(retrieval.get(q.qid, {}))
            info: dict[str, Any] = dict(ranking.info)
            status, error, text = "ok", None, None
            if reader is not None:
                a = answers[q.qid]
                text = a.text
                info.update(prompt=a.prompt_hash, usage=a.usage, cached=a.cached)
                if a.error:
                    status, error = "failed", a.error
                else:
                    metrics.update(answer_metrics(a.text, q.answers))
                    v = verdicts.get(q.qid)
                    if v is not None:
                        info["judge"] = {"valid": v.valid, "reason": v.reason}
                        if v.valid:
                            metrics["judge"] = float(v.correct)
            recs.append(QueryRecord(dataset=ds_name, reranker=rr_name, reader=reader_spec, qid=q.qid,
                                    question=q.text, gold_answers=q.answers, ranking=ranking.docids,
                                    answer=text, metrics=metrics, status=status, error=error, info=info))
        return recs

    def _judge(self):
        from bench.judges import Judge
        from bench.prompts import load_template

        c = self.config
        return Judge(self.engine(c.judge, c.judge_base_url, c.judge_api_key_env), load_template(c.judge_template))

    def _extra_sections(self, records: list[QueryRecord]) -> list[str]:
        sections = []
        judged = [r for r in records if r.status == "ok" and "judge" in r.metrics and "accuracy" in r.metrics]
        invalid = sum(1 for r in records if r.info.get("judge", {}).get("valid") is False)
        if judged or invalid:
            from bench.judges import cohens_kappa

            kappa = cohens_kappa([r.metrics["judge"] == 1.0 for r in judged],
                                 [r.metrics["accuracy"] == 1.0 for r in judged]) if judged else float("nan")
            sections.append(f"Judge `{self.config.judge}`: Cohen's κ with lexical accuracy = {kappa:.3f} over "
                            f"{len(judged)} judged answers; {invalid} unparseable verdicts (recorded as invalid, "
                            f"not scored).")
        sections.append(self._cost_report())
        return sections

    def _cost_report(self) -> str:
        costs = {"stage_seconds": {k: round(v, 2) for k, v in self.stage_seconds.items()},
                 "llm": {spec: dict(eng.stats) for spec, eng in self._engines.items()}}
        (self.out_dir / "costs.json").write_text(json.dumps(costs, indent=2) + "\n")
        lines = ["### Cost of this invocation", "", "| LLM | calls made | cache hits | tokens in | tokens out |",
                 "|---|---|---|---|---|"]
        for spec, s in costs["llm"].items():
            lines.append(f"| {spec} | {s.get('calls', 0)} | {s.get('hits', 0)} | {s.get('prompt_tokens', 0)} | "
                         f"{s.get('completion_tokens', 0)} |")
        lines += ["", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in costs["stage_seconds"].items()]
        return "\n".join(lines)
