"""``python -m bench run | list | report | data``."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from bench.errors import UserError
from bench.metrics import answer_metric_names
from bench.options import parse_component_args
from bench.runner import RunConfig, Runner


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
    d = RunConfig()
    parser.add_argument("--base-url", nargs="+", action=_ServerURLs, default=d.base_url, metavar="URL",
                        help="OpenAI-compatible server (vLLM, Ollama, ...), or several serving the same model (one "
                             "vLLM server per GPU): requests are spread over them, --concurrency per server")
    parser.add_argument("--api-key-env", default=d.api_key_env, help="NAME of the environment variable with the key")
    parser.add_argument("--judge-base-url", nargs="+", action=_ServerURLs, default=d.judge_base_url, metavar="URL",
                        help="the judge's server(s), if not --base-url's")
    parser.add_argument("--judge-api-key-env", default=d.judge_api_key_env, help="the judge's key variable, if not "
                        "--api-key-env's")


def build_parser() -> argparse.ArgumentParser:
    d = RunConfig()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="retrieve, rerank, read, score; write results/<run-id>/ and print the leaderboard")
    run.add_argument("--config", metavar="FILE", help="a JSON or YAML file of RunConfig fields (e.g. a run's "
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

    p.run_parser = run     # type: ignore[attr-defined]  (parse_run_args sets a config file's defaults on it)
    lst = sub.add_parser("list", help="registered rerankers (alias -> checkpoint -> kind -> extra), datasets, readers; "
                         "with --reranker/--reader/--judge NAME: that component's options and defaults")
    for role in ("reranker", "reader", "judge"):
        lst.add_argument(f"--{role}", metavar="NAME", help=f"show the options of this {role}")

    rep = sub.add_parser("report", help="rebuild the leaderboard of a finished or interrupted run from its records")
    rep.add_argument("run_dir")

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
    return p


def read_config_file(path: str) -> dict:
    """The RunConfig fields of a JSON or YAML file (a run's config.json works: its fingerprints are ignored)."""
    import yaml

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        values = yaml.safe_load(text) if file.suffix in (".yaml", ".yml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UserError(f"--config {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise UserError(f"--config {path}: expected a mapping of RunConfig fields")
    values.pop("fingerprints", None)
    names = [f.name for f in fields(RunConfig)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UserError(f"--config {path}: unknown key {unknown[0]!r}; valid: {', '.join(names)}")
    return values


def parse_run_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    """Flags over ``--config``'s values over RunConfig's defaults. Mappings of the file (checkpoints, component
    args) come back apart and are merged with the flags' in ``config_from_args``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "run" or not args.config:
        return args, {}
    values = read_config_file(args.config)
    mappings = {k: values.pop(k) for k in ("checkpoints", *RunConfig.COMPONENT_ARGS) if k in values}
    parser.run_parser.set_defaults(**values)
    return parser.parse_args(argv), mappings


def config_from_args(args: argparse.Namespace, from_file: dict | None = None) -> RunConfig:
    from_file = from_file or {}
    names = {f.name for f in fields(RunConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values["checkpoints"] = {**from_file.get("checkpoints", {}), **_checkpoint_pairs(args.checkpoint)}
    if args.rrpo_checkpoint:
        values["checkpoints"]["rrpo"] = args.rrpo_checkpoint
    for role in ("reranker", "reader", "judge"):
        key = f"{role}_args"
        values[key] = {name: dict(opts) for name, opts in from_file.get(key, {}).items()}
        for name, opts in parse_component_args(f"--{role}-args", getattr(args, key)).items():
            values[key].setdefault(name, {}).update(opts)
    for name in ("pool", "top_k", "chunk_size", "batch_size", "concurrency"):
        if values[name] is not None and values[name] < (0 if name == "top_k" else 1):
            expected = "0 or a positive number" if name == "top_k" else "a positive number"
            raise UserError(f"--{name.replace('_', '-')} {values[name]}: expected {expected}")
    return RunConfig(**values)


def cmd_list_options(args: argparse.Namespace) -> str:
    """The options ``--reranker-args`` / ``--reader-args`` / ``--judge-args`` accept for one component."""
    import pandas as pd

    from bench.llm import EngineOptions, parse_engine_spec
    from bench.options import option_rows
    from rerankers.base import PER_BACKEND_SETTINGS, RerankerSettings
    from rerankers.registry import RERANKERS, resolve

    if args.reranker:
        cls = RERANKERS.load(args.reranker)
        settings = [r for r in option_rows(RerankerSettings) if r["option"] in PER_BACKEND_SETTINGS]
        for row in settings:
            row["default"] = (f"{resolve(args.reranker).checkpoint!r} (registered)" if row["option"] == "checkpoint"
                              else row["default"])
        rows, flag, name = settings + option_rows(cls.Options), "--reranker-args", args.reranker
    else:
        name, flag = (args.reader, "--reader-args") if args.reader else (args.judge, "--judge-args")
        parse_engine_spec(name)
        rows = option_rows(EngineOptions)
    return f"{flag} {name}:KEY=VALUE,...\n\n{pd.DataFrame(rows).to_markdown(index=False)}"


def cmd_list() -> None:
    import pandas as pd

    from bench.data.base import DATASETS
    from bench.llm import ENGINES, engine_forms
    from rerankers.registry import describe

    import bench.data  # noqa: F401  (registers the dataset names)

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
    from bench.data import catalog

    if args.data_command == "list":
        print(catalog.list_text(args.data_dir, args.cache_dir))
    else:
        text_of = {"info": catalog.info_text, "pull": catalog.pull_text, "verify": catalog.verify_text}
        print(text_of[args.data_command](args.name, args.data_dir, args.cache_dir))


def cmd_report(run_dir: str) -> None:
    from bench.runner import report_run_folder

    print(report_run_folder(Path(run_dir)))


def main(argv: list[str] | None = None) -> int:
    try:
        args, from_file = parse_run_args(argv)
        if args.command == "run":
            runner = Runner(config_from_args(args, from_file))
            print(runner.run())
            print(f"\nresults: {runner.out_dir}")
            if not runner.status_counts.get("ok"):
                print(f"error: no query was answered ({', '.join(f'{n} {s}' for s, n in runner.status_counts.items())}"
                      f"); the errors are in {runner.out_dir / 'records.jsonl'}", file=sys.stderr)
                return 1
        elif args.command == "list":
            if args.reranker or args.reader or args.judge:
                print(cmd_list_options(args))
            else:
                cmd_list()
        elif args.command == "data":
            cmd_data(args)
        else:
            cmd_report(args.run_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
