"""``python -m bench run | list | report | data | judge-eval``."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from bench import api
from bench.api import read_config_file
from bench.config import Components, Data, Reporting, RunConfig, Runtime, Servers
from bench.data import DATASETS, catalog
from bench.errors import UserError
from bench.html_report import REPORT_FILE
from bench.judge_eval import run_judge_eval
from bench.llm import ENGINES, EngineOptions, engine_forms, parse_engine_spec
from bench.metrics import answer_metric_names
from bench.options import option_rows, parse_component_args
from bench.report import ReportOptions
from bench.runner import report_run_folder
from bench.store import RecordStore, run_folder_lock
from bench.validity import validity_report
from rerankers.base import PER_BACKEND_SETTINGS, RerankerSettings
from rerankers.registry import describe, resolve


def _checkpoint_pairs(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, ckpt = v.partition("=")
        if not sep or not name or not ckpt:
            raise UserError(f"--checkpoint {v!r}: expected RERANKER=PATH_OR_HUB_ID, e.g. monot5=/models/monot5")
        out[name] = ckpt
    return out


class _ServerURLs(argparse.Action):
    """One URL stays a string (as before several were allowed: same run ids), several become a list."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values[0] if len(values) == 1 else list(values))


def add_trust_remote_code_option(parser: argparse.ArgumentParser) -> None:
    """The only way remote model code runs: the user's flag (``bench run`` and ``rrpo train`` share it)."""
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let checkpoints that ship their model as Python code (gte-reranker, jina-reranker-v2, "
                             "or an RRPO checkpoint built on them) run that code on this machine: arbitrary code "
                             "with your permissions, so only for checkpoints whose source you trust (default: "
                             "refused)")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """Where ``openai:*`` readers and judges are served: ``bench run``'s options, which ``rrpo train`` shares."""
    d = Servers()
    parser.add_argument("--base-url", nargs="+", action=_ServerURLs, default=d.base_url, metavar="URL",
                        help="OpenAI-compatible server (vLLM, Ollama, ...), or several serving the same model (one "
                             "vLLM server per GPU): requests are spread over them, --concurrency per server")
    parser.add_argument("--api-key-env", default=d.api_key_env, help="NAME of the environment variable with the key")
    parser.add_argument("--judge-base-url", nargs="+", action=_ServerURLs, default=d.judge_base_url, metavar="URL",
                        help="the judge's server(s), if not --base-url's")
    parser.add_argument("--judge-api-key-env", default=d.judge_api_key_env, help="the judge's key variable, if not "
                        "--api-key-env's")


def servers_from_args(args: argparse.Namespace) -> Servers:
    """The servers section from the flags ``add_server_options`` adds, and ``--concurrency``, ``--timeout`` and
    ``--max-retries`` where the command has them (else their defaults)."""
    return Servers(**{f.name: getattr(args, f.name) for f in fields(Servers) if hasattr(args, f.name)})


def add_utility_options(parser: argparse.ArgumentParser, flag: bool = True) -> None:
    """``bench run``'s utility options (``flag``: with ``--utility`` itself), which ``bench utility`` shares."""
    d = Reporting()
    if flag:
        parser.add_argument("--utility", action="store_true",
                            help="utility labels (eRAG): each passage in the union of every reranker's top "
                                 "--utility-depth read alone by the reader; eRAG metrics in the leaderboard")
    parser.add_argument("--utility-depth", type=int, default=d.utility_depth,
                        help=f"passages of each ranking to label and score by eRAG (default: {d.utility_depth})")
    parser.add_argument("--utility-only", nargs="+", default=d.utility_only, metavar="RERANKER",
                        help="rerankers judged by eRAG alone, from the labels this run folder already has: only "
                             "the (question, passage) pairs no other reranker brought into the top depth are read")


def build_parser() -> argparse.ArgumentParser:
    d = SimpleNamespace(**RunConfig().flat())          # each flag's default: its field's
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="retrieve, rerank, read, score; write results/<run-id>/ and print the leaderboard")
    run.add_argument("--config", metavar="FILE", help="a JSON or YAML file of RunConfig's sections (components, data, "
                     "servers, runtime, reporting; docs/configuration.md) or of its fields flat (a run's "
                     "config.json); flags given as well override it")
    run.add_argument("--datasets", nargs="+", default=d.datasets, help="registered names or paths (default: fictional)")
    run.add_argument("--split", default=d.split)
    run.add_argument("--rerankers", nargs="+", default=d.rerankers)
    run.add_argument("--reader", "--readers", dest="readers", nargs="+", default=d.readers,
                     help="smollm2 | hf:<model id or path> | openai:<model> | none (retrieval metrics only)")
    run.add_argument("--judge", default=d.judge, help="engine spec of a reference-based LLM judge (as --reader)")
    run.add_argument("--first-stage", default=d.first_stage, help="bm25 | dense | given | <TREC run or Request JSONL>")
    run.add_argument("--query2doc", metavar="ENGINE", default=d.query2doc,
                     help="expand each query for the first stage (bm25, dense) with a pseudo-document this LLM writes "
                          "(Query2doc, Wang et al. 2023; an engine spec as --reader); rerankers, readers and the judge "
                          "keep the original question")
    run.add_argument("--query2doc-template", default=d.query2doc_template, help="prompt template of --query2doc")
    run.add_argument("--query2doc-max-tokens", type=int, default=d.query2doc_max_tokens,
                     help=f"length cap of a pseudo-document (default: {d.query2doc_max_tokens}, a passage)")
    run.add_argument("--pool", type=int, default=d.pool, help="first-stage candidates per query to rerank")
    run.add_argument("--top-k", type=int, default=d.top_k, help="documents the reader sees (0 = closed book)")
    run.add_argument("--limit", type=int, default=d.limit, help="first N queries only")
    run.add_argument("--baseline", default=d.baseline, help="reranker the significance tests compare against")
    run.add_argument("--primary-metric", default=d.primary_metric, choices=answer_metric_names(),
                     help="the answer metric the claim is made on, declared before the run (default: F1, RRPO's "
                          "training metric); named in leaderboard.md")
    run.add_argument("--seed", type=int, default=d.seed)
    run.add_argument("--checkpoint", action="append", default=[], metavar="RERANKER=PATH",
                     help="checkpoint override for one reranker (repeatable)")
    run.add_argument("--rrpo-checkpoint", help="checkpoint (folder or hub id) of the rrpo reranker")
    run.add_argument("--reader-template", default=d.reader_template)
    run.add_argument("--judge-template", default=d.judge_template)
    run.add_argument("--max-tokens", type=int, default=d.max_tokens)
    run.add_argument("--device", default=d.device)
    run.add_argument("--dtype", default=d.dtype)
    run.add_argument("--batch-size", type=int, default=d.batch_size,
                     help="batch of every reranker and reader (default: each one's own, e.g. 32 and 8)")
    for role, example in (("reranker", "rankzephyr:window=20,stride=10"), ("reader", "smollm2:batch_size=4"),
                          ("judge", "openai:gpt-4o-mini:timeout=30")):
        run.add_argument(f"--{role}-args", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                         help=f"options of one {role} (repeatable), e.g. {example}; "
                              f"`python -m bench list --{role} NAME` shows them")
    run.add_argument("--first-stage-args", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                     help="options of the first stage, e.g. bm25:k1=0.9,b=0.4 (pyserini's MS MARCO setting) or "
                          "dense:model=PATH_OR_HUB_ID (bench.retrieval.BM25Options, DenseOptions)")
    add_server_options(run)
    run.add_argument("--concurrency", type=int, default=d.concurrency, help="requests in flight per server")
    run.add_argument("--timeout", type=float, default=d.timeout)
    run.add_argument("--max-retries", type=int, default=d.max_retries)
    run.add_argument("--chunk-size", type=int, default=d.chunk_size)
    add_trust_remote_code_option(run)
    run.add_argument("--output", default=d.output)
    run.add_argument("--run-id", default=d.run_id)
    run.add_argument("--cache-dir", default=d.cache_dir)
    run.add_argument("--data-dir", default=d.data_dir, help="local copies of named datasets, one folder each "
                     "(default: $RERANK_BENCH_DATA; see `python -m bench data`)")
    run.add_argument("--llm-cache", choices=["use", "bypass", "refresh"], default=d.llm_cache)
    add_utility_options(run)

    p.run_parser = run     # type: ignore[attr-defined]  (parse_run_args sets a config file's defaults on it)
    lst = sub.add_parser("list", help="registered rerankers (alias -> checkpoint -> kind -> extra), datasets, readers; "
                         "with --reranker/--reader/--judge NAME: that component's options and defaults")
    for role in ("reranker", "reader", "judge"):
        lst.add_argument(f"--{role}", metavar="NAME", help=f"show the options of this {role}")

    rep = sub.add_parser("report", help="rebuild the leaderboard of a finished or interrupted run from its records")
    rep.add_argument("run_dir")
    rep.add_argument("--html", action="store_true", help="print the path of the HTML report (report.html, rewritten "
                     "with every other report) instead of the Markdown leaderboard")
    rep.add_argument("--out", metavar="FILE", help="write the HTML report to FILE instead of RUN_DIR/report.html")

    util = sub.add_parser("utility", help="utility labels (eRAG) for a finished run: each passage in the union of "
                          "every reranker's top depth read alone by the reader; eRAG metrics in its leaderboard")
    util.add_argument("run_dir")
    add_utility_options(util, flag=False)

    val = sub.add_parser("validity", help="how far each retrieval metric (relevance and eRAG) predicts each answer "
                         "metric: query-level τ_b and ρ, system-level τ with a bootstrap CI, pairwise agreement")
    val.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    val.add_argument("--output", help="folder of validity.md/.csv and the plots (default: the first RUN_DIR)")
    val.add_argument("--rerankers", nargs="+", metavar="NAME", help="only these rerankers (default: every one read "
                     "end to end), e.g. to leave out the oracles, which rank by the labels themselves")

    data = sub.add_parser("data", help="benchmarks by name: list | info NAME | pull NAME | verify NAME")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    for name, text in (("list", "every dataset name, its split, counts, licence and local copy"),
                       ("info", "task, splits, counts, size, licence, source, metric conventions, files"),
                       ("pull", "download the missing (or corrupted) files and check every checksum"),
                       ("verify", "check every local file against its published or recorded checksum")):
        cmd = data_sub.add_parser(name, help=text)
        if name != "list":
            cmd.add_argument("name")
        cmd.add_argument("--data-dir", help="folder of local copies, one sub-folder per dataset "
                         "(default: $RERANK_BENCH_DATA, then the cache)")
        cmd.add_argument("--cache-dir", default=d.cache_dir)
    add_judge_eval_parser(sub)
    return p


def add_judge_eval_parser(sub) -> None:
    d = SimpleNamespace(**RunConfig().flat())
    ev = sub.add_parser("judge-eval", help="agreement of every answer metric and an LLM judge with human verdicts "
                        "(agreement, Cohen's κ, precision/recall of 'correct', bootstrap CIs)")
    ev.add_argument("--judge", help="engine spec of the judge (as `run --judge`); without it only the answer "
                    "metrics are scored")
    ev.add_argument("--data", default="openqa-eval", help="openqa-eval (Kamalloo et al. 2023, downloaded on first "
                    "use), a folder with its files, or a JSONL file of {question, gold_answers, answer, "
                    "human_correct} objects (default: openqa-eval)")
    ev.add_argument("--judge-limit", type=int, metavar="N", help="judge only the first N rows in file order (the "
                    "answer metrics are reported on all rows and on these)")
    ev.add_argument("--threshold", type=float, default=0.5, help="a graded metric (F1) reads as correct at score >= "
                    "this (default: 0.5)")
    ev.add_argument("--judge-template", default=d.judge_template)
    ev.add_argument("--judge-args", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                    help="options of the judge, as `run --judge-args`")
    add_server_options(ev)
    ev.add_argument("--concurrency", type=int, default=d.concurrency, help="requests in flight per server")
    ev.add_argument("--timeout", type=float, default=d.timeout)
    ev.add_argument("--max-retries", type=int, default=d.max_retries)
    ev.add_argument("--device", default=d.device)
    ev.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples of the rows (default: 2000)")
    ev.add_argument("--seed", type=int, default=d.seed)
    ev.add_argument("--output", help="folder of agreement.csv/.md and rows.csv (default: "
                    "results/judge-eval/<data>-<judge>)")
    ev.add_argument("--cache-dir", default=d.cache_dir)
    ev.add_argument("--data-dir", default=d.data_dir, help="local copies of named datasets (as `run --data-dir`)")
    ev.add_argument("--llm-cache", choices=["use", "bypass", "refresh"], default=d.llm_cache)


def parse_run_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    """Flags over ``--config``'s values over RunConfig's defaults. Mappings of the file (checkpoints, component
    args) come back apart and are merged with the flags' in ``config_from_args``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "run" or not args.config:
        return args, {}
    values = read_config_file(args.config)             # the fields, flat
    mappings = {k: values.pop(k) for k in ("checkpoints", *RunConfig.COMPONENT_ARGS) if k in values}
    parser.run_parser.set_defaults(**values)
    return parser.parse_args(argv), mappings


def config_from_args(args: argparse.Namespace, from_file: dict | None = None) -> RunConfig:
    from_file = from_file or {}
    names = RunConfig.field_types()
    values = {k: v for k, v in vars(args).items() if k in names}
    values["checkpoints"] = {**from_file.get("checkpoints", {}), **_checkpoint_pairs(args.checkpoint)}
    if args.rrpo_checkpoint:
        values["checkpoints"]["rrpo"] = args.rrpo_checkpoint
    for role in ("reranker", "reader", "judge", "first-stage"):
        key = f"{role.replace('-', '_')}_args"
        values[key] = {name: dict(opts) for name, opts in from_file.get(key, {}).items()}
        for name, opts in parse_component_args(f"--{role}-args", getattr(args, key)).items():
            values[key].setdefault(name, {}).update(opts)
    return RunConfig.from_fields(values, "flags")


def cmd_list_options(args: argparse.Namespace) -> str:
    """The options ``--reranker-args`` / ``--reader-args`` / ``--judge-args`` accept for one component."""
    if args.reranker:
        spec = resolve(args.reranker)
        cls = spec.backend()
        settings = [r for r in option_rows(RerankerSettings) if r["option"] in PER_BACKEND_SETTINGS]
        for row in settings:
            row["default"] = (f"{spec.checkpoint!r} (registered)" if row["option"] == "checkpoint"
                              else row["default"])
        rows, flag, name = settings + option_rows(cls.Options), "--reranker-args", args.reranker
    else:
        name, flag = (args.reader, "--reader-args") if args.reader else (args.judge, "--judge-args")
        parse_engine_spec(name)
        rows = option_rows(EngineOptions)
    return f"{flag} {name}:KEY=VALUE,...\n\n{pd.DataFrame(rows).to_markdown(index=False)}"


def cmd_list() -> None:
    print("Rerankers\n")
    print(pd.DataFrame(describe()).to_markdown(index=False))
    print("\nCascades: NAME@N>NAME@N... chains registered rerankers, each reranking the previous stage's top N "
          "(e.g. --rerankers 'minilm@20>upr@5'; docs/rerankers.md)")
    print("\nDatasets (or pass a path: BEIR folder, QA JSONL folder, HotpotQA distractor file)\n")
    print(pd.DataFrame([{"name": e.name, "description": DATASETS.meta(e.name).get("description", ""),
                         "source": e.source} for e in DATASETS.entries()]).to_markdown(index=False))
    print("\nReaders / judges (LLM engines; openai:* talk to --base-url URL with the key in --api-key-env VAR; "
          "none = no reader)\n")
    print(pd.DataFrame([{"spec": form, "description": ENGINES.meta(e.name).get("description", ""), "source": e.source}
                        for form, e in zip(engine_forms(), ENGINES.entries())]).to_markdown(index=False))


def cmd_data(args: argparse.Namespace) -> None:
    if args.data_command == "list":
        print(catalog.list_text(args.data_dir, args.cache_dir))
    else:
        text_of = {"info": catalog.info_text, "pull": catalog.pull_text, "verify": catalog.verify_text}
        print(text_of[args.data_command](args.name, args.data_dir, args.cache_dir))


def utility_config(args: argparse.Namespace) -> RunConfig:
    """The config a run folder was made with (its ``config.json``), writing into that folder, with the utility
    stage on."""
    run_dir = Path(args.run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{run_dir}: no config.json (expected a results/<run-id>/ folder that `bench run` wrote)")
    names = RunConfig.field_types()
    values = {k: v for k, v in json.loads(path.read_text()).items() if k in names}
    return RunConfig.from_fields({**values, "output": str(run_dir.parent), "run_id": run_dir.name, "utility": True,
                                  "utility_depth": args.utility_depth, "utility_only": args.utility_only}, str(path))


def cmd_validity(args: argparse.Namespace) -> None:
    """Records of every run folder given; the report options (k, seed) of the first one's config.json."""
    records = []
    for run_dir in map(Path, args.run_dirs):
        if not (run_dir / "records.jsonl").is_file():
            raise UserError(f"{run_dir}: no records.jsonl (expected a results/<run-id>/ folder)")
        records += [r for r in RecordStore(run_dir / "records.jsonl").records.values()
                    if not args.rerankers or r.reranker in args.rerankers]
    if not records:
        raise UserError(f"--rerankers {' '.join(args.rerankers)}: no records of these rerankers in the run folders")
    config_path = Path(args.run_dirs[0]) / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    out = Path(args.output or args.run_dirs[0])
    print(validity_report(records, out, ReportOptions.from_config(config)))
    print(f"\nvalidity: {out / 'validity.md'}")


def cmd_report(args: argparse.Namespace) -> None:
    run_dir, out = Path(args.run_dir), Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise UserError(f"--out {out}: its folder {out.parent} does not exist")
    if not (run_dir / "records.jsonl").is_file():
        report_run_folder(run_dir)          # the one-line error of a folder that is not a run's
    # the run's own lock: reading repairs a torn records.jsonl in place, which must not race a run appending to it
    with run_folder_lock(run_dir):
        md = report_run_folder(run_dir, html_out=out)
    print(out or run_dir / REPORT_FILE if args.html else md)


def cmd_judge_eval(args: argparse.Namespace) -> None:
    if args.resamples < 1:
        raise UserError(f"--resamples {args.resamples}: expected a positive number")
    config = RunConfig(
        components=Components(judge=args.judge, judge_template=args.judge_template,
                              judge_args=parse_component_args("--judge-args", args.judge_args)),
        data=Data(data_dir=args.data_dir),
        servers=servers_from_args(args),
        runtime=Runtime(device=args.device, seed=args.seed, cache_dir=args.cache_dir, llm_cache=args.llm_cache))
    md, out_dir = run_judge_eval(args.data, config, args.judge_limit, args.threshold, args.output, args.resamples)
    print(md)
    print(f"\nresults: {out_dir}")


def main(argv: list[str] | None = None) -> int:
    try:
        args, from_file = parse_run_args(argv)
        if args.command in ("run", "utility"):
            result = api.run(config_from_args(args, from_file) if args.command == "run" else utility_config(args))
            print(result.report())
            print(f"\nresults: {result.folder}")
            if not result.status_counts.get("ok"):
                print(f"error: no query was answered ({', '.join(f'{n} {s}' for s, n in result.status_counts.items())}"
                      f"); the errors are in {result.folder / 'records.jsonl'}", file=sys.stderr)
                return 1
        elif args.command == "list":
            if args.reranker or args.reader or args.judge:
                print(cmd_list_options(args))
            else:
                cmd_list()
        elif args.command == "data":
            cmd_data(args)
        elif args.command == "judge-eval":
            cmd_judge_eval(args)
        elif args.command == "validity":
            cmd_validity(args)
        else:
            cmd_report(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
