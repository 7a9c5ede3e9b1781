"""The harness as a library: ``bench.run``, ``bench.compare``, ``bench.load_reranker``, ``bench.load_reader`` and
``bench.load_dataset``, for a notebook or a script (walk-through: docs/api.md).

Each call goes through what ``python -m bench`` runs, not a copy of it: ``run`` builds a ``RunConfig`` and runs the
same ``Runner`` (same run folder, resume and LLM cache; ``bench run`` is a thin layer over it), ``compare`` builds the
report ``bench report`` writes, and the loaders build components with the run's ``Builder``, so options are typed and
checked as ``--reranker-args`` / ``--reader-args`` are. Bad input raises ``bench.errors.UserError`` with the CLI's
one-line message (the CLI prints it and exits with status 2).
"""
from __future__ import annotations

import inspect
import json
import types
import typing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union

import pandas as pd

from bench.builder import Builder
from bench.config import RunConfig
from bench.data import load_dataset as load
from bench.errors import UserError
from bench.options import convert
from bench.registry import did_you_mean
from bench.report import ReportOptions, build_report
from bench.runner import RecordStore, Runner, read_run_folder
from bench.types import QueryRecord

if TYPE_CHECKING:
    from bench.data import Dataset
    from bench.readers import Reader
    from bench.report import Report
    from rerankers.base import Reranker

__all__ = ["RunResult", "compare", "load_dataset", "load_reader", "load_reranker", "make_config", "read_config_file",
           "run"]

ConfigSource = Union[RunConfig, Mapping[str, Any], str, Path, None]
LIST_FIELDS = ("datasets", "rerankers", "readers")       # a single name given for them is a list of one


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The RunConfig fields of a JSON or YAML file, in sections or flat (a run's config.json works: its fingerprints
    are ignored)."""
    import yaml  # lazy: PyYAML only for a .yaml config file

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        values = yaml.safe_load(text) if file.suffix in (".yaml", ".yml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UserError(f"--config {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise UserError(f"--config {path}: expected a mapping of RunConfig sections or fields")
    values.pop("fingerprints", None)
    values.pop("world_size", None)       # also written into a run's config.json, not a setting
    values = RunConfig.fields_of(values, f"--config {path}")
    check_config_types(values, f"--config {path}")
    return values


def check_config_types(values: dict, where: str) -> None:
    """Each value of a config file has its RunConfig field's type (a string only where one is expected, or where
    the flag's own conversion reads it), and each component's options are a mapping: a value of the wrong type
    fails here in one line, not deep in the run."""
    hints = RunConfig.field_types()
    for key, value in values.items():
        kinds = typing.get_args(hints[key]) if isinstance(hints[key], types.UnionType) else (hints[key],)
        containers = [typing.get_origin(a) for a in kinds]
        if isinstance(value, str) and (list in containers or dict in containers) and str not in kinds:
            raise UserError(f"{where}: {key}={value!r}: expected a {'list' if list in containers else 'mapping'}")
        if not isinstance(value, str):
            convert(value, hints[key], f"{where}: {key}")
        if key in ("checkpoints", *RunConfig.COMPONENT_ARGS):
            for name, item in value.items():
                if not isinstance(item, str if key == "checkpoints" else dict):
                    raise UserError(f"{where}: {key}.{name}={item!r}: expected "
                                    f"{'a path or hub id' if key == 'checkpoints' else 'a mapping of options'}")


def make_config(config: ConfigSource = None, /, **settings: Any) -> RunConfig:
    """A checked ``RunConfig``: ``config`` (a RunConfig, a mapping of its fields in sections or flat, or a JSON/YAML
    file of them, as ``bench run --config``) with ``settings`` replacing its fields. ``reader=`` is ``--reader``: one
    spec, a list, or None for no reader (``readers=["none"]``); a single name for ``datasets``/``rerankers``/``readers``
    is a list of one. Values are checked against the fields' types, then as ``bench run`` checks them, before anything
    loads.

    >>> bench.make_config(rerankers=["none", "minilm"], reader=None, limit=5).components.readers
    ['none']
    """
    if "reader" in settings:
        if "readers" in settings:
            raise UserError("give reader= or readers=, not both")
        reader = settings.pop("reader")
        settings["readers"] = ["none"] if reader is None else reader
    for name in LIST_FIELDS:
        if isinstance(settings.get(name), str):
            settings[name] = [settings[name]]
    if isinstance(config, (str, Path)):
        base = RunConfig.from_fields(read_config_file(config), f"--config {config}")
    elif isinstance(config, Mapping):
        values = RunConfig.fields_of(config, "config")
        check_config_types(values, "config")
        base = RunConfig.from_fields(values, "config")
    elif isinstance(config, RunConfig) or config is None:
        base = config or RunConfig()
    else:
        raise UserError(f"config: expected a RunConfig, a mapping of its fields or a file, got {type(config).__name__}")
    names = list(RunConfig.field_types())
    unknown = sorted(set(settings) - set(names))
    if unknown:
        raise UserError(f"unknown setting {unknown[0]!r}; {did_you_mean(unknown[0], ['reader', *names])}valid: "
                        f"reader, {', '.join(names)}")
    resolved = RunConfig.from_fields(settings, "setting", base=base)
    resolved.validate()
    return resolved


@dataclass(frozen=True)
class RunResult:
    """A run folder (``results/<run-id>/``) of a finished ``bench.run``: its files, read when asked for."""

    folder: Path
    config: RunConfig
    status_counts: dict[str, int]        # records of the run by status: ok, failed, no_candidates
    markdown: str

    @property
    def leaderboard(self) -> "pd.DataFrame":
        """leaderboard.csv as a DataFrame: one row per (dataset, reader, reranker), its columns (``to_csv(index=
        False)`` gives the file back byte for byte). Only empty cells are missing values: a reranker named "none"
        stays a string."""
        return pd.read_csv(self.folder / "leaderboard.csv", keep_default_na=False, na_values=[""])

    @property
    def records(self) -> list[QueryRecord]:
        """The per-query records (records.jsonl): ranking, answer, metrics, status of each (dataset, reranker,
        reader, query)."""
        return list(RecordStore(self.folder / "records.jsonl").records.values())

    def report(self) -> str:
        """The Markdown leaderboard ``bench run`` prints (leaderboard.md)."""
        return self.markdown


def _signature_of_settings(fn):
    """Show ``RunConfig``'s fields, typed and with their defaults, as ``fn``'s keyword arguments (``help``, a
    notebook's signature hints): they are passed through ``**settings`` to ``make_config``."""
    defaults = RunConfig().flat()
    params = [inspect.Parameter("config", inspect.Parameter.POSITIONAL_ONLY, default=None, annotation="ConfigSource"),
              inspect.Parameter("reader", inspect.Parameter.KEYWORD_ONLY, default=defaults["readers"],
                                annotation="str | list[str] | None")]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults[name], annotation=kind)
               for name, kind in RunConfig.field_types().items()]
    fn.__signature__ = inspect.Signature(params, return_annotation=inspect.signature(fn).return_annotation)
    return fn


@_signature_of_settings
def run(config: ConfigSource = None, /, **settings: Any) -> RunResult:
    """Run datasets × rerankers × readers as ``bench run`` does and return the run folder's result. Settings are
    ``RunConfig``'s fields (``bench run``'s flags, with underscores), over ``config`` (see ``make_config``). The same
    settings give the same run folder as the CLI: a re-run resumes it (finished queries are kept) and LLM answers
    come from the shared cache.

    >>> r = bench.run(rerankers=["none", "minilm"], reader=None, limit=5)
    >>> r.leaderboard[["reranker", "nDCG@10"]]
    """
    runner = Runner(make_config(config, **settings))
    markdown = runner.run()
    return RunResult(folder=runner.out_dir, config=runner.config, status_counts=dict(runner.status_counts),
                     markdown=markdown)


Run = Union[str, Path, RunResult, Sequence[QueryRecord]]
Runs = Union[str, Path, RunResult, Sequence[Union[str, Path, RunResult]], Sequence[QueryRecord], Mapping[str, Run]]


def compare(runs: Runs, baseline: str | None = None, metrics: Sequence[str] | None = None,
            primary_metric: str | None = None, seed: int | None = None) -> "Report":
    """The leaderboard and pairwise tables of finished (or interrupted) runs, computed from their records without
    running anything: for one run folder, what ``bench report`` writes (it writes nothing). ``runs``: run folders,
    ``RunResult``s, or a list of ``QueryRecord``s. Records of several runs are pooled; a (dataset, reranker, reader,
    query) that two runs hold must have the same metrics in both (e.g. the ``none`` baseline of runs with the same
    first stage). ``baseline``, ``primary_metric`` and ``seed`` default to the first run's; ``metrics`` keeps only
    those metrics, so the Holm families of the † marks are over them.

    >>> bench.compare([run_a.folder, run_b.folder], baseline="none", metrics=["nDCG@10"]).to_markdown()

    ``runs`` as a mapping ``{name: run}`` compares runs of one reranker each under those names, e.g. two checkpoints
    of ``rrpo`` on the same questions (the baseline defaults to the first name):

    >>> bench.compare({"rrpo-k1": "results/dev-k1", "rrpo-k3": "results/dev-k3"}).to_markdown()
    """
    config, records, judge, costs = _pooled(runs)
    opts = ReportOptions.from_config(config)
    opts = replace(opts, **{k: v for k, v in (("baseline", baseline), ("primary_metric", primary_metric),
                                              ("seed", seed)) if v is not None})
    if not records:
        raise UserError("compare: no records to compare")
    rerankers = list(dict.fromkeys(r.reranker for r in records))
    if opts.baseline not in rerankers:
        raise UserError(f"compare: baseline {opts.baseline!r} is not among the rerankers ({', '.join(rerankers)})")
    if metrics is not None:
        found = list(dict.fromkeys(m for r in records for m in r.metrics))
        missing = [m for m in metrics if m not in found]
        if missing:
            raise UserError(f"compare: metric {missing[0]!r} is not in the records; they have: {', '.join(found)}")
        records = [replace(r, metrics={m: v for m, v in r.metrics.items() if m in metrics}) for r in records]
    return build_report(records, opts, judge=judge, costs=costs)


def _renamed(runs: Mapping[str, Run]) -> tuple[dict[str, Any], list[QueryRecord], str | None, None]:
    """Each run's records under its name (a run of one reranker each); the first name is the baseline."""
    if not runs:
        raise UserError("compare: no runs to compare")
    config, records, judges = {}, [], set()
    for name, run in runs.items():
        run_config, run_records, judge, _ = _pooled(run)
        held = sorted({r.reranker for r in run_records})
        if len(held) != 1:
            raise UserError(f"compare: the run named {name!r} must hold one reranker; it holds "
                            f"{', '.join(held) or 'no records'}")
        config = config or {**run_config, "baseline": name}
        records += [replace(r, reranker=name) for r in run_records]
        judges.add(judge)
    return config, records, (judges.pop() if len(judges) == 1 else None), None


def _pooled(runs: Runs) -> tuple[dict[str, Any], list[QueryRecord], str | None, dict[str, Any] | None]:
    """The first run's config, every run's records (one per key), the judge when all runs share it, and the costs
    of a single run folder (several invocations' costs are not one run's)."""
    if isinstance(runs, Mapping):
        return _renamed(runs)
    items = [runs] if isinstance(runs, (str, Path, RunResult)) else list(runs)
    if items and all(isinstance(i, QueryRecord) for i in items):
        return {}, items, None, None
    if not all(isinstance(i, (str, Path, RunResult)) for i in items):
        raise UserError("compare: expected run folders, RunResults or a list of QueryRecords")
    folders = [i.folder if isinstance(i, RunResult) else Path(i) for i in items]
    read = [read_run_folder(f) for f in folders]
    seen: dict[tuple[str, str, str, str], tuple[QueryRecord, Path]] = {}
    for folder, (_, records, _) in zip(folders, read):
        for rec in records:
            key = RecordStore.key(rec)
            if key in seen and seen[key][0].metrics != rec.metrics:
                raise UserError(f"compare: {'/'.join(key)} is in {seen[key][1]} and {folder} with other metrics; "
                                f"pool runs whose shared rerankers ran with the same settings")
            seen.setdefault(key, (rec, folder))
    judges = {config.get("judge") for config, _, _ in read}
    costs = read[0][2] if len(read) == 1 else None
    return (read[0][0] if read else {}), [rec for rec, _ in seen.values()], \
        (judges.pop() if len(judges) == 1 else None), costs


def _component_config(role: str, name: str, options: Mapping[str, Any]) -> RunConfig:
    """A checked RunConfig of one component: the ``options`` that are RunConfig fields (seed, cache_dir, base_url,
    batch_size, ...) are run-wide, the others are the component's ``--<role>-args`` (an unknown one fails there,
    naming the valid ones)."""
    run_wide = set(RunConfig.field_types())
    settings = {k: v for k, v in options.items() if k in run_wide}
    own = {k: v for k, v in options.items() if k not in run_wide}
    if role == "reranker":
        return make_config(rerankers=[name], baseline=name, readers=["none"], reranker_args={name: own} if own else {},
                           **settings)
    return make_config(rerankers=["none"], readers=[name], top_k=0, reader_args={name: own} if own else {},
                       **settings)


def load_reranker(name: str, **options: Any) -> "Reranker":
    """A registered reranker (``python -m bench list``) built as ``bench run`` builds it. ``options``: its
    ``--reranker-args`` (``python -m bench list --reranker NAME``: checkpoint, device, batch_size, max_length and the
    backend's own) and run-wide settings (seed, cache_dir, trust_remote_code, base_url, ...). ``.rank(query, docs)``
    ranks one query's passages, ``.rank_batch`` several, ``.rerank(candidate_lists)`` is the runner's call.

    >>> bench.load_reranker("minilm", batch_size=16).rank("q", ["d1", "d2"]).docids
    """
    return Builder(_component_config("reranker", name, options)).reranker(name)


def load_reader(spec: str, **options: Any) -> "Reader":
    """An LLM reader (``smollm2``, ``hf:<model>``, ``openai:<model>``, ...) built as ``bench run`` builds it, behind
    the shared LLM cache. ``options``: its ``--reader-args`` (``python -m bench list --reader SPEC``) and run-wide
    settings (reader_template, max_tokens, base_url, api_key_env, cache_dir, llm_cache, ...). ``.ask(question,
    docs)`` answers one question; ``.answer(queries, documents)`` is the runner's batched call.

    >>> reader = bench.load_reader("openai:my-model", base_url="http://localhost:8000/v1", max_tokens=16)
    >>> reader.ask("What is the capital of France?", ["Paris is the capital of France."]).text
    """
    if spec == "none":
        raise UserError("reader 'none' is no reader: give an engine spec (python -m bench list)")
    return Builder(_component_config("reader", spec, options)).reader(spec)


def load_dataset(name: str, split: str = "test", limit: int | None = None, data_dir: str | None = None,
                 cache_dir: str | None = None) -> "Dataset":
    """A dataset as ``bench run`` loads it: a registered name (``python -m bench data list``) or a path; its first
    ``limit`` queries. ``.queries`` (with answers and qrels), ``.corpus`` (docid -> Document).

    >>> ds = bench.load_dataset("fictional", limit=5); ds.queries[0].text
    """
    config = make_config(datasets=[name], split=split, limit=limit, data_dir=data_dir, rerankers=["none"],
                         readers=["none"], **({"cache_dir": cache_dir} if cache_dir else {}))
    d = config.data
    return load(name, split=d.split, cache_dir=config.runtime.cache_dir, data_dir=d.data_dir).limit(d.limit)
