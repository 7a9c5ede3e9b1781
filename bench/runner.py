"""Runs datasets × rerankers × readers and writes ``results/<run-id>/``.

The run id is derived from the resolved config, so re-running the same command continues the same run: finished
(dataset, reranker, reader, query) records are kept, failed ones are retried, and every LLM call that already
completed is served from the shared SQLite cache. Records are appended and flushed as each chunk of queries
finishes, so a killed run loses at most the chunk in flight (and not even its LLM calls).
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from bench.answer_position import answer_bearing
from bench.builder import Builder
from bench.config import Components, RunConfig
from bench.data import load_dataset
from bench.data.base import Dataset
from bench.data.download import file_digest
from bench.distributed import EVALUATION_TIMEOUT, Dist, merge_costs, parts_of
from bench.errors import UserError, check_extra
from bench.expansion import expanded_first_stage
from bench.html_report import write_first_stage, write_html_report
from bench.judges import measurements
from bench.llm import check_engine_reachable
from bench.metrics import UTILITY_LABELS, answer_metrics, erag_metrics, retrieval_metrics
from bench.prompts import load_template
from bench.report import ReportOptions, write_reports
from bench.retrieval import write_trec_run
from bench.store import (LOCK_FILE, RecordStore, append_jsonl, merge_rankings, read_jsonl, rewrite_jsonl,
                         run_folder_lock, saved_rankings)
from bench.types import Answer, CandidateList, QueryRecord, Ranking
from bench.utility import (UtilityLabel, label_values, labels_path, qrels_path, qrels_text, read_alone,
                           summarize_costs, utility_pairs)
from rerankers.registry import weights_fingerprint

log = logging.getLogger(__name__)

# A reranker of --utility-only: ranked and judged by eRAG, not read end to end (a later run that names it in
# --rerankers reads it, replacing the record).
UTILITY_ONLY = "utility_only"
RETRY_STATS = ("attempts", "retries", "failed_attempts", "servers")


@dataclass(frozen=True)
class Cell:
    """One (dataset, reranker, reader) of a run: the dataset's queries ranked by the reranker, answered by the
    reader. A run is the plan of its cells."""

    dataset: str
    reranker: str
    reader: str


def plan(datasets: list[str], rerankers: list[str], readers: list[str]) -> list[Cell]:
    """Every cell of a run, in the order they run and their records are written."""
    return [Cell(d, rr, rd) for d in datasets for rr in rerankers for rd in readers]


@dataclass(frozen=True)
class Built:
    """What the cells are computed with, built once per run: each reader (None for ``none``), the judge, the
    first stage's query expander."""

    readers: dict[str, Any]
    judge: Any
    expander: Any


def input_file_digests(config: RunConfig) -> dict[str, str]:
    """sha256 of every file the configuration names by path (a first-stage run file, a template, a file in a
    component's options), so that editing one starts a new run instead of resuming with records made from the old
    content. Datasets and checkpoints have fingerprints of their own."""
    def paths(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            if Path(value).expanduser().is_file():
                yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from paths(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from paths(item)

    named = {k: v for k, v in config.identity().items() if k not in ("datasets", "checkpoints")}
    return {path: file_digest(Path(path).expanduser()) for path in sorted(set(paths(named)))}


@dataclass(frozen=True)
class FirstStage:
    """One dataset's first-stage candidates (and Query2doc pseudo-documents), shared by its cells."""

    dataset: Dataset
    lists: list[CandidateList]
    pseudo_docs: dict[str, Any]


def query_record(cell: Cell, cl: CandidateList, ranking: Ranking | None, retrieval: dict[str, float],
                 answer: Answer | None, verdict: Any, pseudo_doc: Any) -> QueryRecord:
    """One query's record, a function of its inputs alone: its candidates, its ranking (None without candidates),
    its retrieval metrics, the reader's answer and the judge's verdict (None without them) and the pseudo-document
    the first stage searched with (traceable to its template and cached call)."""
    q = cl.query
    expansion = {"query2doc": pseudo_doc.info()} if pseudo_doc is not None else {}
    base = {"dataset": cell.dataset, "reranker": cell.reranker, "reader": cell.reader, "qid": q.qid,
            "question": q.text, "gold_answers": q.answers}
    if not cl.candidates:
        return QueryRecord(**base, ranking=[], answer=None, metrics=dict(retrieval), status="no_candidates",
                           error="the first stage found no candidates for this query", info=expansion)
    metrics = dict(retrieval)
    info: dict[str, Any] = {**ranking.info, **expansion}
    bearing = answer_bearing(q.qrels)
    if bearing is not None:     # for the report's answer-position split
        info["answer_bearing"] = bearing
    status, error = "ok", None
    if answer is not None:
        info.update(prompt=answer.prompt_hash, usage=answer.usage, cached=answer.cached)
        # the LLM cache's keys of the calls behind this answer: look the exact request's response up there
        calls = {"reader": answer.cache_key, "judge": verdict.cache_key if verdict is not None else None}
        if any(calls.values()):
            info["llm_calls"] = {role: key for role, key in calls.items() if key}
        if answer.error:
            status, error = "failed", answer.error
        elif verdict is not None and verdict.error is not None:
            # The judge's server failed: no verdict was given, so the query is retried on the next run.
            status, error = "failed", f"judge: {verdict.error}"
        else:
            metrics.update(answer_metrics(answer.text, q.answers))
            if verdict is not None:
                info["judge"] = {"valid": verdict.valid, "reason": verdict.reason, "raw": verdict.raw}
                if verdict.valid:
                    metrics["judge"] = float(verdict.correct)
    return QueryRecord(**base, ranking=ranking.docids, answer=answer.text if answer is not None else None,
                       metrics=metrics, status=status, error=error, info=info)


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
        self.utility_costs: dict[str, dict[str, Any]] = {}     # dataset -> reader -> what its labels cost

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + time.perf_counter() - t0

    # --- the run ------------------------------------------------------------------------------------------
    def run(self) -> str:
        self.config = self.config.with_baseline_listed()
        self.builder = Builder(self.config, self.config.validate())     # the rerankers' names resolved once
        self.preflight()
        self.dist = Dist.from_env(backend="gloo", timeout=EVALUATION_TIMEOUT)   # only small objects are exchanged
        o = self.config.reporting
        if self.dist.world > 1 and (o.utility or o.utility_only):
            raise UserError("--utility and --utility-only run in one process: run them without torchrun (then "
                            "`python -m bench utility RUN_DIR` on the folder a torchrun run wrote)")
        runtime = self.config.runtime
        self.config = c = replace(self.config, runtime=replace(runtime, device=self.dist.device(runtime.device)))
        self.builder = Builder(c, self.builder.specs)     # built from the config with this rank's device
        datasets = self._datasets()
        content = {"data": [d.fingerprint() for d in datasets],
                   "weights": {name: weights_fingerprint(self.builder.spec(name), c.components.checkpoints.get(name))
                               for name in c.stages()}}
        files = input_file_digests(c)
        if files:            # only when the run reads such files, so that the ids of runs without them hold
            content["files"] = files
        self.out_dir = Path(o.output) / c.resolved_run_id(content)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with run_folder_lock(self.out_dir, self.dist.lock_name(LOCK_FILE)):
            return self._run(datasets, content)

    def _datasets(self) -> list[Dataset]:
        """The datasets, their first --limit queries; each must have gold answers when a judge is to judge them."""
        d, judge = self.config.data, self.config.components.judge
        with self.timed("load dataset"):
            datasets = [load_dataset(ds_arg, split=d.split, cache_dir=self.config.runtime.cache_dir,
                                     data_dir=d.data_dir).limit(d.limit) for ds_arg in d.datasets]
        for dataset in datasets:
            if judge and not dataset.has_answers:
                raise UserError(f"--judge {judge}: dataset {dataset.name!r} has no gold answers to judge against; "
                                f"drop --judge for it")
        return datasets

    def _run(self, datasets: list[Dataset], content: dict[str, Any]) -> str:
        """Every cell of the plan, dataset by dataset: the first stage once per dataset, the rankings once per
        (dataset, reranker), then each reader's records."""
        c = self.config
        if self.dist.main:
            config = {**c.flat(), "fingerprints": content, "world_size": self.dist.world}
            (self.out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        records_path = self.out_dir / "records.jsonl"
        store = RecordStore(self.dist.part(records_path), records_path)
        parts = self._components()
        cells = plan([d.name for d in datasets], c.components.rerankers, c.components.readers)
        first_stages = {}                         # dataset -> its candidate lists (the HTML report's texts)
        for dataset in datasets:
            stage = self._first_stage(dataset, parts.expander)
            first_stages[dataset.name] = stage.lists
            if self.dist.main:
                write_first_stage(self.out_dir, first_stages)
            ranked: dict[str, tuple[list[CandidateList], dict[str, Ranking]]] = {}
            for cell in (cell for cell in cells if cell.dataset == dataset.name):
                if cell.reranker not in ranked:
                    ranked[cell.reranker] = self._rank(stage, cell.reranker, store)
                pending, rankings = ranked[cell.reranker]
                self._run_cell(cell, stage, pending, rankings, parts, store)
            if c.reporting.utility or c.reporting.utility_only:
                self._utility(stage, store, parts.readers)
        return self._finish(store, records_path)

    def _components(self) -> Built:
        """The readers, the judge and the query expander, built once for every cell."""
        c = self.config.components
        return Built(readers={spec: None if spec == "none" else self.builder.reader(spec) for spec in c.readers},
                     judge=self.builder.judge() if c.judge else None, expander=self.builder.query2doc())

    def _first_stage(self, dataset: Dataset, expander) -> FirstStage:
        c = self.config.data
        with self.timed("first stage"):       # with the query expansion, when there is one
            lists, pseudo_docs = self.dist.main_first(lambda: expanded_first_stage(
                dataset, c.first_stage, c.pool, cache_dir=self.config.runtime.cache_dir, expander=expander,
                **c.first_stage_args.get(c.first_stage, {})))
        empty = [cl.query.qid for cl in lists if not cl.candidates]
        if empty:
            log.warning("%s: %d of %d queries have no first-stage candidates (e.g. %r): recorded as "
                        "no_candidates, not answered, counted apart from the answered queries", dataset.name,
                        len(empty), len(lists), empty[0])
        return FirstStage(dataset, lists, pseudo_docs)

    def _rank(self, stage: FirstStage, rr_name: str,
              store: RecordStore) -> tuple[list[CandidateList], dict[str, Ranking]]:
        """This rank's queries some reader still lacks, and the reranker's rankings of them (saved ones reused)."""
        ds_name, lists = stage.dataset.name, stage.lists
        pending = [cl for cl in self.dist.shard(lists)
                   if not all(store.done(ds_name, rr_name, rd, cl.query.qid)
                              for rd in self.config.components.readers)]
        rankings = self._rankings(ds_name, rr_name, pending)
        # written whole each time (also when nothing was pending), so a resumed run's file has every query;
        # under torchrun by rank 0 once every rank has ranked its queries
        self.trec_runs.append((ds_name, rr_name, [cl.query.qid for cl in lists]))
        if self.dist.world == 1:
            self._write_trec_run(ds_name, rr_name, [rankings[cl.query.qid] for cl in lists
                                                    if cl.query.qid in rankings])
        return pending, rankings

    def _run_cell(self, cell: Cell, stage: FirstStage, pending: list[CandidateList], rankings: dict[str, Ranking],
                  parts: Built, store: RecordStore) -> None:
        """The cell's records of the pending queries it lacks, appended chunk by chunk."""
        if not pending:
            return
        todo = [cl for cl in pending if not store.done(cell.dataset, cell.reranker, cell.reader, cl.query.qid)]
        bar = tqdm(total=len(todo), desc=f"{cell.dataset} · {cell.reranker} · {cell.reader}", unit="q")
        for chunk in chunks(todo, self.config.runtime.chunk_size):
            recs = self._records(cell, chunk, rankings, stage, parts)
            if self.dist.world > 1:
                for rec in recs:
                    rec.info["rank"] = self.dist.rank
            store.append(recs)
            bar.update(len(chunk))
        bar.close()

    def _finish(self, store: RecordStore, records_path: Path) -> str:
        """Merge what torchrun's ranks or a killed run left, compact the records, write costs and reports."""
        if self.dist.world > 1:
            return self._merge_ranks(records_path)
        for ds_name, rr_name, qids in self.trec_runs:    # parts a killed torchrun run left
            if len(parts_of(self._rankings_path(ds_name, rr_name))) > 1:
                merge_rankings(self._rankings_path(ds_name, rr_name), qids)
        store.compact()
        self.status_counts = store.status_counts()
        self._write_costs()
        return report_run_folder(self.out_dir)

    def _merge_ranks(self, records_path: Path) -> str:
        """Under torchrun: wait for every rank, then rank 0 merges the parts into the files of a one-process run
        and writes the reports (returned; "" on the other ranks)."""
        costs = self.dist.gather(self._costs())         # also the barrier: every rank has written its parts
        report = ""
        if self.dist.main:
            for ds_name, rr_name, qids in self.trec_runs:
                self._write_trec_run(ds_name, rr_name, merge_rankings(self._rankings_path(ds_name, rr_name), qids))
            store = RecordStore(records_path)
            # in a one-process run's order (the bootstrap resamples records by position)
            order = {key: i for i, key in enumerate((ds, rr, rd, q) for ds, rr, qids in self.trec_runs
                                                    for rd in self.config.components.readers for q in qids)}
            store.records = dict(sorted(store.records.items(), key=lambda item: order.get(item[0], len(order))))
            store.compact()
            self.status_counts = store.status_counts()
            (self.out_dir / "costs.json").write_text(json.dumps(merge_costs(costs), indent=2) + "\n")
            report = report_run_folder(self.out_dir)
        self.status_counts = self.dist.gather(self.status_counts)[0]
        self.dist.close()
        return report

    def preflight(self) -> None:
        """Every component can run before the first question is answered (and before the run folder is made):
        weights are local, in the hub cache or downloadable now, servers answer, extras are installed (names,
        numbers and templates: ``RunConfig.validate``). Nothing loads; a missing piece fails in one line saying how to
        get it."""
        c, query2doc = self.config.components, self.config.data.query2doc
        for role, specs in (("reader", c.readers), ("judge", [c.judge] if c.judge else []),
                            ("query2doc", [query2doc] if query2doc else [])):
            for spec in specs:
                if spec != "none":
                    check_engine_reachable(spec, self.builder.engine_options(spec, role), f"{role} {spec}")
        for name in self.config.stages():       # the weights first: of what is missing, the hardest to get
            spec, settings = self.builder.spec(name), self.builder.reranker_settings(name)
            spec.backend().preflight(name, settings.checkpoint or spec.checkpoint, settings)
            if spec.extra:
                check_extra(spec.extra, f"reranker {name!r}")

    def _rankings(self, ds_name: str, rr_name: str, pending) -> dict[str, Ranking]:
        """Rankings of the pending queries, reusing those saved by an earlier (interrupted) run."""
        path = self._rankings_path(ds_name, rr_name)
        path.parent.mkdir(exist_ok=True)
        saved = saved_rankings(path)
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

    def _rankings_path(self, ds_name: str, rr_name: str) -> Path:
        return self.out_dir / "rankings" / f"{Path(ds_name).name}__{rr_name}.jsonl"

    def _write_trec_run(self, ds_name: str, rr_name: str, rankings: list[Ranking]) -> None:
        """``runs/<dataset>__<reranker>.trec`` for trec_eval and ranx (tag: the reranker's name)."""
        write_trec_run(self.out_dir / "runs" / f"{Path(ds_name).name}__{rr_name}.trec", rankings, tag=rr_name)

    def _records(self, cell: Cell, chunk: list[CandidateList], rankings: dict[str, Ranking], stage: FirstStage,
                 parts: Built) -> list[QueryRecord]:
        """The chunk's records: its metrics, answers and verdicts computed together, each record then made from its
        own (``query_record``)."""
        answerable = [cl for cl in chunk if cl.candidates]
        chunk_rankings = {cl.query.qid: rankings[cl.query.qid] for cl in answerable}
        # every judged query of the chunk, those without candidates too: they score 0 (trec_eval -c)
        qrels = {cl.query.qid: cl.query.qrels for cl in chunk if cl.query.qrels}
        with self.timed("retrieval metrics"):
            retrieval = (retrieval_metrics(chunk_rankings, qrels, top_k=self.config.components.top_k,
                                           relevance_level=stage.dataset.relevance_level) if qrels else {})
        answers = self._answers(cell, parts.readers[cell.reader], answerable, chunk_rankings, stage.dataset.corpus)
        verdicts = self._verdicts(parts.judge, answerable, answers)
        return [query_record(cell, cl, chunk_rankings.get(cl.query.qid), retrieval.get(cl.query.qid, {}),
                             answers.get(cl.query.qid), verdicts.get(cl.query.qid),
                             stage.pseudo_docs.get(cl.query.qid) if stage.pseudo_docs else None) for cl in chunk]

    def _answers(self, cell: Cell, reader, answerable: list[CandidateList], rankings: dict[str, Ranking],
                 corpus) -> dict[str, Answer]:
        """The reader's answer to each answerable query from its ranking's top-k documents; none without a reader."""
        if reader is None or not answerable:
            return {}
        docs_by_id = {c.docid: c.doc for cl in answerable for c in cl.candidates}
        top_k = self.config.components.top_k
        prefixes = [[docs_by_id.get(d) or corpus[d] for d in rankings[cl.query.qid].docids[:top_k]]
                    for cl in answerable]
        with self.timed(f"reader {cell.reader}"):
            return {a.qid: a for a in reader.answer([cl.query for cl in answerable], prefixes)}

    def _verdicts(self, judge, answerable: list[CandidateList], answers: dict[str, Answer]) -> dict[str, Any]:
        """The judge's verdict on each answer that has gold answers to judge it against."""
        if judge is None or not answers:
            return {}
        ok = [cl for cl in answerable if not answers[cl.query.qid].error and cl.query.answers]
        with self.timed("judge"):
            got = judge.judge([(cl.query.text, cl.query.answers, answers[cl.query.qid].text) for cl in ok])
        return {cl.query.qid: v for cl, v in zip(ok, got)}

    def _utility(self, stage: FirstStage, store: RecordStore, readers: dict[str, Any]) -> None:
        """Rank the --utility-only rerankers (records without an answer), then, per reader, label every (question,
        passage) pair in the union of every reranker's top --utility-depth and set the eRAG metrics of every ranked
        record of the dataset."""
        self._rank_utility_only(stage, store, readers)
        for rd, reader in readers.items():
            if reader is not None:
                self._utility_metrics(stage, store, rd, reader)

    def _rank_utility_only(self, stage: FirstStage, store: RecordStore, readers: dict[str, Any]) -> None:
        """The --utility-only rerankers' rankings and records (status ``utility_only``: ranked, never read)."""
        ds_name, lists = stage.dataset.name, stage.lists
        unread = Built(readers=dict.fromkeys(readers), judge=None, expander=None)
        for rr_name in self.config.reporting.utility_only:
            todo = [cl for cl in lists if any((ds_name, rr_name, rd, cl.query.qid) not in store.records
                                              for rd in readers)]
            rankings = self._rankings(ds_name, rr_name, todo)
            self._write_trec_run(ds_name, rr_name, [rankings[cl.query.qid] for cl in lists
                                                    if cl.query.qid in rankings])
            for rd in readers:
                chunk = [cl for cl in todo if (ds_name, rr_name, rd, cl.query.qid) not in store.records]
                recs = self._records(Cell(ds_name, rr_name, rd), chunk, rankings, stage, unread)
                store.append([replace(r, status=UTILITY_ONLY) if r.status == "ok" else r for r in recs])

    def _utility_metrics(self, stage: FirstStage, store: RecordStore, rd: str, reader) -> None:
        """One reader's utility labels of the dataset's top-depth pairs (the qrels files written), the eRAG metrics
        they give every ranked record, and the cost summary."""
        c, top_k, ds_name = self.config.reporting, self.config.components.top_k, stage.dataset.name
        by_qid = {cl.query.qid: cl for cl in stage.lists}
        ranked = [r for r in store.records.values() if r.dataset == ds_name and r.reader == rd and r.ranking
                  and r.qid in by_qid and by_qid[r.qid].query.answers]
        top: dict[str, dict[str, list[str]]] = {}
        for r in ranked:
            top.setdefault(r.reranker, {})[r.qid] = r.ranking[:c.utility_depth]
        pairs = utility_pairs(((r.qid, r.ranking) for r in ranked), c.utility_depth)
        calls = reader.engine.stats["calls"]
        labels, before = self._utility_labels(stage, rd, reader, pairs)
        cutoffs = sorted({k for k in (top_k, c.utility_depth) if 0 < k <= c.utility_depth})
        for label in UTILITY_LABELS:
            qrels_path(self.out_dir, ds_name, rd, label).write_text(qrels_text(labels.values(), label))
            values = label_values(labels.values(), label)
            for name, ranking in top.items():
                for qid, metrics in erag_metrics(ranking, values, label, cutoffs).items():
                    store.records[(ds_name, name, rd, qid)].metrics.update(metrics)
        self.utility_costs.setdefault(ds_name, {})[rd] = {
            **summarize_costs(pairs, before, top, c.utility_only, top_k),
            "llm_calls": reader.engine.stats["calls"] - calls,
            "failed": sum(lab.status != "ok" for lab in labels.values())}

    def _utility_labels(self, stage: FirstStage, rd: str, reader, pairs: dict[str, list[str]]):
        """The labels of ``pairs`` (qid -> docids): those an earlier invocation read, the others read alone now,
        appended as they come (kill-safe) and the file rewritten with one label per pair. Returns the labels by
        (qid, docid) and the pairs already labelled before."""
        ds_name, by_qid = stage.dataset.name, {cl.query.qid: cl for cl in stage.lists}
        path = labels_path(self.out_dir, ds_name, rd)
        path.parent.mkdir(exist_ok=True)
        labels = {(lab.qid, lab.docid): lab for lab in read_jsonl(path, UtilityLabel.from_json)}
        before = {key for key, lab in labels.items() if lab.status == "ok"}
        todo = [(q, d) for q, ds in pairs.items() for d in ds if (q, d) not in before]
        docs = {cand.docid: cand.doc for cl in stage.lists for cand in cl.candidates}
        bar = tqdm(total=len(todo), desc=f"{ds_name} · utility labels · {rd}", unit="pair")
        for chunk in chunks(todo, self.config.runtime.chunk_size):
            with self.timed(f"utility labels {rd}"):
                new = read_alone(reader, [(by_qid[q].query, docs.get(d) or stage.dataset.corpus[d])
                                          for q, d in chunk])
            append_jsonl(path, [lab.to_json() for lab in new])
            labels.update({(lab.qid, lab.docid): lab for lab in new})
            bar.update(len(chunk))
        bar.close()
        rewrite_jsonl(path, [lab.to_json() for lab in labels.values()])
        return labels, before

    def _write_costs(self) -> None:
        """``costs.json``: this invocation's LLM calls (made vs served from the cache, tokens) and stage times."""
        (self.out_dir / "costs.json").write_text(json.dumps(self._costs(), indent=2) + "\n")

    def _costs(self) -> dict[str, Any]:
        llm = {}
        for spec, eng in self.builder.engines.items():
            # An engine that retries (openai) counts its attempts itself: calls made can be fewer than requests sent.
            retried = getattr(eng.engine, "stats", {})
            llm[spec] = {**eng.stats, **{k: retried[k] for k in RETRY_STATS if k in retried}}
        return {"stage_seconds": {k: round(v, 2) for k, v in self.stage_seconds.items()}, "llm": llm,
                **({"utility": self.utility_costs} if self.utility_costs else {})}


def read_run_folder(out_dir: Path) -> tuple[dict[str, Any], list[QueryRecord], dict[str, Any] | None]:
    """What a run folder keeps: its config.json (empty when missing), its records and its costs.json (None when
    missing)."""
    if not (out_dir / "records.jsonl").is_file():
        raise UserError(f"{out_dir}: no records.jsonl (expected a results/<run-id>/ folder)")
    config_path, costs_path = out_dir / "config.json", out_dir / "costs.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    costs = json.loads(costs_path.read_text()) if costs_path.is_file() else None
    return config, list(RecordStore(out_dir / "records.jsonl").records.values()), costs


def report_run_folder(out_dir: Path, html_out: Path | None = None) -> str:
    """Write every report of a run folder from what it keeps (config.json, records.jsonl, costs.json, and for the
    HTML page passages.jsonl and questions.jsonl) and return the Markdown: what ``bench run`` writes at its end and
    ``bench report`` rewrites, byte for byte. ``html_out``: where the page goes instead of ``report.html``. The
    judge's measured agreement with human verdicts (``bench judge-eval``) is named when one was stored."""
    config, records, costs = read_run_folder(out_dir)
    judge = config.get("judge")
    measured = None
    if judge:
        measured = measurements(config.get("cache_dir"), judge,
                                load_template(config.get("judge_template", Components.judge_template)))
    md = write_reports(records, out_dir, ReportOptions.from_config(config), judge=judge, costs=costs,
                       judge_measured=measured)
    write_html_report(out_dir, records, config, costs, html_out)
    return md
