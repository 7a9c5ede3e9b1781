"""What every study shares: train (or reuse) one RRPO checkpoint per cell, evaluate each against its backbone
through ``bench run``, and tabulate the paired differences.

A study folder (``--out``; default ``results/studies/<study>-<hash of its options>``) holds

- ``study.json``: the study's options (a re-run with other options is refused; ``--budget-minutes`` may change);
- ``checkpoints/<cell>/``: each cell's ``rrpo train`` folder (resumable: a re-run continues an unfinished training);
  a cell whose settings match a finished checkpoint already on disk (shipped in ``rrpo/checkpoints`` or named by
  ``--reuse``) evaluates that one instead, with the same training data fingerprint, and says so;
- ``runs/<run-id>/``: one ``bench run`` per cell (the backbone and the cell's checkpoint, every evaluation reader,
  the same questions): its ``records.jsonl`` holds the per-query answers behind the cell's numbers and its
  leaderboard the usual tests; a resumed study keeps finished records and the LLM cache serves repeated answers;
- ``table.csv`` / ``table.md`` and the study's plot, rebuilt from those records on every run; ``cells.json`` maps each
  cell to its checkpoint and run folder.

Statistics: each cell compares the checkpoint with its backbone on the same evaluation questions (paired): the mean
of each, the gain with a 95% bootstrap CI of the per-question differences, and the p-value of the exact McNemar test
for 0/1 metrics (accuracy, EM) or the paired randomization test for graded ones (F1), Holm-corrected over every test
the table reports. The primary metric is declared by ``--primary-metric`` before the study runs.

Training settings default to those of the shipped ``minilm-fictional`` checkpoint (chosen on fictional-large's dev
split, see the README's RRPO section); a study varies only its own axis. Evaluation is on ``--eval-split`` (test by
default): choose settings with ``--eval-split dev``, then report on test once.

``--budget-minutes`` bounds the study's training time: the budget is shared equally among the cells that still
train, each training stops after the first step past its share (``rrpo train --max-minutes``), and every cell cut
short is marked in the table with the steps it really made (``steps`` vs ``planned``), so a scaled-down study never
passes for the full one. Evaluation time is not part of the budget.
"""
from __future__ import annotations

import gc
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from bench.config import Components, Data, Reporting, RunConfig, Runtime, Servers
from bench.environment import cache_dir
from bench.errors import UserError
from bench.files import atomic_write
from bench.hashing import stable_hash
from bench.html_report import write_study_html
from bench.report import paired_values, scored_values
from bench.runner import Runner
from bench.stats import bootstrap_ci, holm, is_binary, mcnemar_exact, paired_tests
from bench.store import RecordStore, read_jsonl, run_folder_lock
from bench.types import QueryRecord
from rrpo import assemble
from rrpo.reranker import SHIPPED_CHECKPOINTS
from rrpo.trainer import RRPOConfig, training_data_digest

DEFAULT_SETTINGS_CHECKPOINT = "minilm-fictional"
# Options that change neither what a training learns nor on which data (resume and reuse ignore them).
RUNTIME_OPTIONS = ("max_minutes", "save_every", "reader_batch_size", "cache_dir")
EVAL_METRICS = ("F1", "accuracy")        # the answer metrics a study table reports; the first is the default primary
ALPHA = 0.05
TRAINED = "rrpo"                         # the registry name the cells' checkpoints are evaluated under


def default_training_settings() -> dict[str, Any]:
    """The shipped default checkpoint's training options (chosen on dev), runtime options left out."""
    config = json.loads((SHIPPED_CHECKPOINTS / DEFAULT_SETTINGS_CHECKPOINT / "config.json").read_text())
    known = {f.name for f in fields(RRPOConfig)}        # options since removed stay out
    return {k: v for k, v in config["hyperparameters"].items() if k in known and k not in RUNTIME_OPTIONS}


@dataclass
class StudyOptions:
    """The options every study shares (``rrpo.studies.add_study_parsers`` makes their flags)."""

    eval_readers: list[str] = field(default_factory=lambda: ["smollm2", "gemma3-270m"])
    eval_split: str = "test"
    eval_limit: int | None = None          # evaluate on the first N questions of --eval-split
    top_k: int = 3                         # documents the evaluation reader sees (bench run's --top-k)
    primary_metric: str = "F1"
    training: dict[str, Any] = field(default_factory=dict)   # RRPOConfig fields over the default settings
    budget_minutes: float | None = None
    reuse: list[str] = field(default_factory=list)           # finished checkpoint folders a cell may reuse
    out: str | None = None
    output_root: str = "results/studies"
    cache_dir: str | None = None
    data_dir: str | None = None
    trust_remote_code: bool = False

    NON_IDENTITY = ("budget_minutes", "reuse", "out", "output_root", "cache_dir", "data_dir", "trust_remote_code")

    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in self.NON_IDENTITY}

    def base_config(self) -> RRPOConfig:
        """The default training settings with this study's overrides."""
        known = {f.name for f in fields(RRPOConfig)}
        unknown = sorted(set(self.training) - known)
        if unknown:
            raise UserError(f"--train-option {unknown[0]}: not an option of rrpo train (see python -m rrpo train -h)")
        return RRPOConfig(**{**default_training_settings(), **self.training, "cache_dir": self.cache_dir})


@dataclass(frozen=True)
class Cell:
    """One trained checkpoint of a study: its coordinates on the study's axes and its training options."""

    name: str                     # folder name under checkpoints/
    coords: dict[str, Any]        # e.g. {"trained_with": "smollm2"}
    config: RRPOConfig


@dataclass
class Trained:
    """Where a cell's checkpoint is and how much of its planned training it had."""

    checkpoint: str
    steps: int
    planned: int
    minutes: float
    reused_from: str | None = None

    @property
    def cut_short(self) -> bool:
        return self.steps < self.planned


def trained_seconds(folder: Path) -> float:
    """The training seconds a ``rrpo train`` folder logged so far (its last log row; 0 before the first step)."""
    rows = read_jsonl(folder / "train_log.jsonl")
    return float(rows[-1]["seconds"]) if rows else 0.0


def comparable(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's training options as they decide what it learned: runtime options out, options the checkpoint
    predates at their defaults."""
    defaults = asdict(RRPOConfig())
    return {k: hyperparameters.get(k, defaults[k]) for k in defaults if k not in RUNTIME_OPTIONS}


class Study:
    """Trains the cells, evaluates them, writes the table; subclasses say which cells, and plot."""

    name = ""
    plot_file = ""

    def __init__(self, options: StudyOptions, servers: Servers | None = None):
        self.options = options
        self.servers = servers or Servers()
        self.base = options.base_config()
        self.base.validate()
        if options.primary_metric not in EVAL_METRICS:
            raise UserError(f"--primary-metric {options.primary_metric!r}: a study reports "
                            f"{', '.join(EVAL_METRICS)}")
        if options.budget_minutes is not None and options.budget_minutes <= 0:
            raise UserError(f"--budget-minutes {options.budget_minutes}: expected a positive number of minutes")
        if options.eval_limit is not None and options.eval_limit < 1:
            raise UserError(f"--eval-limit {options.eval_limit}: expected a positive number")
        self.cells = self.plan()
        names = [c.name for c in self.cells]
        if len(set(names)) != len(names):
            raise UserError(f"{self.name} study: the same cell twice ({', '.join(names)}); give each value once")
        for cell in self.cells:
            cell.config.validate()
            # bench's one validation of what each cell trains and is evaluated with (readers and their packages,
            # servers, templates, data), before the study claims its folder or trains anything
            assemble.component_config(cell.config, self.servers, str(cache_dir(cell.config.cache_dir)),
                                      options.trust_remote_code).validate()
            self.evaluation_config(cell, TRAINED).validate()

    # --- what a study defines -------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def plan(self) -> list[Cell]:
        raise NotImplementedError

    def plot(self, rows: list[dict[str, Any]], path: Path) -> None:
        raise NotImplementedError

    def reading_guide(self) -> str:
        raise NotImplementedError

    # --- the folder -----------------------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        if self.options.out:
            return Path(self.options.out)
        return Path(self.options.output_root) / f"{self.name}-{stable_hash(self.full_identity(), 10)}"

    def full_identity(self) -> dict[str, Any]:
        return {"study": self.name, **self.identity(), **self.options.identity()}

    def claim_folder(self) -> None:
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "study.json"
        identity = self.full_identity()
        if path.exists():
            saved = json.loads(path.read_text())
            if saved != identity:
                changed = sorted(k for k in {*saved, *identity} if saved.get(k) != identity.get(k))
                raise UserError(f"{folder}: holds a study with other options ({', '.join(changed)}); use another "
                                f"--out or the same options (only --budget-minutes and --reuse may change)")
        else:
            atomic_write(path, lambda tmp: tmp.write_text(json.dumps(identity, indent=2) + "\n"))

    # --- the run --------------------------------------------------------------------------------------------
    def run(self) -> str:
        self.claim_folder()
        with run_folder_lock(self.folder):
            trained = self.train_all()
            runs = {cell.name: self.evaluate(cell, trained[cell.name]) for cell in self.cells}
            rows = self.rows(trained, runs)
            return self.write(rows, trained, runs)

    def train_all(self) -> dict[str, Trained]:
        trained: dict[str, Trained] = {}
        pending = []
        for cell in self.cells:
            reused = self.reusable(cell)
            if reused is not None:
                trained[cell.name] = reused
            else:
                pending.append(cell)
        for i, cell in enumerate(pending):
            share = None
            if self.options.budget_minutes is not None:
                spent = sum(t.minutes for c, t in trained.items() if t.reused_from is None)
                share = max(0.0, self.options.budget_minutes - spent) / (len(pending) - i)
            trained[cell.name] = self.train(cell, share)
        return {cell.name: trained[cell.name] for cell in self.cells}

    @staticmethod
    def planned_steps(config: RRPOConfig, n_queries: int) -> int:
        """The steps a full training makes (the trainer's epochs × steps per epoch)."""
        return config.epochs * math.ceil(n_queries / config.queries_per_step)

    def reusable(self, cell: Cell) -> Trained | None:
        """A finished checkpoint trained with exactly this cell's options on the same data (shipped, or --reuse)."""
        wanted = comparable(asdict(cell.config))
        candidates = [*(Path(p) for p in self.options.reuse), *sorted(SHIPPED_CHECKPOINTS.iterdir())]
        for folder in candidates:
            config_path = folder / "config.json"
            if not config_path.is_file():
                if str(folder) in self.options.reuse:
                    raise UserError(f"--reuse {folder}: no config.json (expected an rrpo train folder)")
                continue
            config = json.loads(config_path.read_text())
            if comparable(config.get("hyperparameters", {})) != wanted:
                continue
            lists = self.training_lists(cell.config)
            planned = self.planned_steps(cell.config, len(lists))
            if config.get("step") == planned and config.get("training_data") == training_data_digest(lists):
                # a shipped checkpoint by its name (what --rrpo-checkpoint and the tables show), others by path
                name = folder.name if folder.parent == SHIPPED_CHECKPOINTS else str(folder)
                return Trained(name, planned, planned, trained_seconds(folder) / 60, reused_from=name)
        return None

    def training_lists(self, config: RRPOConfig):
        builder = assemble.training_builder(config, self.servers, self.options.trust_remote_code)
        return assemble.training_lists(config, builder, self.options.data_dir)

    def train(self, cell: Cell, share_minutes: float | None) -> Trained:
        out = self.folder / "checkpoints" / cell.name
        config = cell.config
        if share_minutes is not None:
            config = replace(config, max_minutes=max(share_minutes - trained_seconds(out) / 60, 0.0))
        trainer = assemble.build_trainer(config, out, self.servers, self.options.trust_remote_code,
                                         self.options.data_dir)
        planned = self.planned_steps(trainer.cfg, len(trainer.train_lists))
        has_checkpoint = (out / "config.json").is_file()
        if trainer.step < planned and not (share_minutes is not None and config.max_minutes <= 0 and has_checkpoint):
            print(f"[{self.name}] training {cell.name}: step {trainer.step} of {planned}"
                  + (f", budget {config.max_minutes:.1f} min" if share_minutes is not None else ""), flush=True)
            trainer.train()
        steps, seconds = trainer.step, trainer.seconds
        del trainer
        gc.collect()
        return Trained(str(out), steps, planned, seconds / 60)

    def evaluation_config(self, cell: Cell, checkpoint: str) -> RunConfig:
        cfg, o = cell.config, self.options
        backbone = {cfg.backbone: cfg.backbone_checkpoint} if cfg.backbone_checkpoint else {}
        return RunConfig(
            components=Components(rerankers=[cfg.backbone, TRAINED], readers=list(o.eval_readers), top_k=o.top_k,
                                  baseline=cfg.backbone, reader_template=cfg.reader_template,
                                  max_tokens=cfg.max_tokens, checkpoints={TRAINED: checkpoint, **backbone}),
            data=Data(datasets=[cfg.dataset], split=o.eval_split, limit=o.eval_limit, first_stage=cfg.first_stage,
                      pool=cfg.pool, query2doc=cfg.query2doc, data_dir=o.data_dir),
            servers=self.servers,
            runtime=Runtime(seed=cfg.seed, trust_remote_code=o.trust_remote_code,
                            cache_dir=str(cache_dir(o.cache_dir))),
            reporting=Reporting(output=str(self.folder / "runs"), primary_metric=o.primary_metric))

    def evaluate(self, cell: Cell, trained: Trained) -> Path:
        runner = Runner(self.evaluation_config(cell, trained.checkpoint))
        print(f"[{self.name}] evaluating {cell.name} with {', '.join(self.options.eval_readers)}", flush=True)
        runner.run()
        failed = runner.status_counts.get("failed", 0)
        if failed:
            raise UserError(f"{runner.out_dir}: {failed} evaluation queries failed; re-run the study to retry them")
        out_dir = runner.out_dir
        del runner
        gc.collect()
        return out_dir

    # --- the table ------------------------------------------------------------------------------------------
    def rows(self, trained: dict[str, Trained], runs: dict[str, Path]) -> list[dict[str, Any]]:
        rows = []
        for cell in self.cells:
            records = list(RecordStore(runs[cell.name] / "records.jsonl").records.values())
            t = trained[cell.name]
            for reader in self.options.eval_readers:
                row: dict[str, Any] = {**cell.coords, "eval_reader": reader, "cell": cell.name,
                                       "checkpoint": t.checkpoint, "reused_from": t.reused_from or "",
                                       "steps": t.steps, "planned_steps": t.planned,
                                       "train_minutes": round(t.minutes, 2), "run": str(runs[cell.name])}
                for metric in EVAL_METRICS:
                    row.update(compare(records, reader, cell.config.backbone, metric))
                rows.append(row)
        tests = [(row, m) for row in rows for m in EVAL_METRICS if not math.isnan(row[f"{m}_p"])]
        for (row, m), p in zip(tests, holm([row[f"{m}_p"] for row, m in tests])):
            row[f"{m}_p_holm"] = p
        for row in rows:
            for m in EVAL_METRICS:
                row.setdefault(f"{m}_p_holm", math.nan)
        return rows

    def write(self, rows: list[dict[str, Any]], trained: dict[str, Trained], runs: dict[str, Path]) -> str:
        folder = self.folder
        df = pd.DataFrame(rows)
        df.to_csv(folder / "table.csv", index=False)
        cells = {c.name: {"coords": c.coords, "checkpoint": trained[c.name].checkpoint,
                          "reused_from": trained[c.name].reused_from, "run": str(runs[c.name]),
                          "training": asdict(c.config)} for c in self.cells}
        (folder / "cells.json").write_text(json.dumps(cells, indent=2) + "\n")
        self.plot(rows, folder / self.plot_file)
        md = self.markdown(df, trained)
        (folder / "table.md").write_text(md + "\n")
        write_study_html(folder, f"Study: {self.name}", self.reading_guide(), self.plot_file, runs)
        return md

    def markdown(self, df, trained: dict[str, Trained]) -> str:
        o, backbone = self.options, self.base.backbone
        axes = list(self.cells[0].coords)
        shown = pd.DataFrame({**{a.replace("_", " "): df[a] for a in axes}, "evaluated with": df["eval_reader"],
                              "n": df["n"],
                              **{f"{m}{' (primary)' if m == o.primary_metric else ''}: {backbone} → rrpo":
                                 [gain_cell(r, m) for _, r in df.iterrows()] for m in EVAL_METRICS},
                              "training steps": [f"{s}/{p}" + (" (cut)" if s < p else "")
                                                 for s, p in zip(df["steps"], df["planned_steps"])]})
        lines = [f"## Study: {self.name}", "", self.reading_guide(), "", shown.to_markdown(index=False), ""]
        n_tests = int(sum(df[f"{m}_p"].notna().sum() for m in EVAL_METRICS))
        lines.append(f"Cells: `{backbone}` mean → checkpoint mean, then the gain with its 95% bootstrap CI over the "
                     f"{int(df['n'].max())} evaluation questions of `{self.base.dataset}` {o.eval_split} (paired); "
                     f"* = the gain differs from 0 at p < {ALPHA} after Holm correction over all {n_tests} tests of "
                     f"this table (exact McNemar for accuracy, paired randomization for F1). Primary metric, declared "
                     f"before the study: {o.primary_metric}. Every cell's per-question records: `runs/` (see "
                     f"`cells.json`); all p-values raw and Holm-corrected: `table.csv`.")
        reused = sorted({t.reused_from for t in trained.values() if t.reused_from})
        if reused:
            lines.append(f"\nReused finished checkpoints trained with exactly a cell's options on the same data: "
                         f"{', '.join(f'`{r}`' for r in reused)}.")
        cut = [name for name, t in trained.items() if t.cut_short]
        if cut:
            budget = (f"--budget-minutes {o.budget_minutes:g}" if o.budget_minutes is not None
                      else "the training time limit (--train-option max_minutes=...)")
            lines.append(f"\n**Scaled down**: {len(cut)} of {len(trained)} trainings stopped early by {budget} "
                         f"({', '.join(f'{n}: {trained[n].steps}/{trained[n].planned} steps' for n in cut)}); those "
                         f"cells measure a shorter training than the study's settings ask for, not the full one.")
        return "\n".join(lines)


def compare(records: Sequence[QueryRecord], reader: str, backbone: str, metric: str) -> dict[str, Any]:
    """The checkpoint against its backbone on the questions both answered with ``reader``: means, the gain with a
    95% bootstrap CI of the paired differences, and the p-value (exact McNemar for 0/1 values, else paired
    randomization)."""
    by_reranker: dict[str, list[QueryRecord]] = {}
    for r in records:
        if r.reader == reader:
            by_reranker.setdefault(r.reranker, []).append(r)
    system, base = paired_values(scored_values(by_reranker.get(TRAINED, []), metric),
                                 scored_values(by_reranker.get(backbone, []), metric))
    out = {"n": len(system), f"{metric}_backbone": math.nan, f"{metric}_rrpo": math.nan, f"{metric}_gain": math.nan,
           f"{metric}_gain_ci_lo": math.nan, f"{metric}_gain_ci_hi": math.nan, f"{metric}_rrpo_ci_lo": math.nan,
           f"{metric}_rrpo_ci_hi": math.nan, f"{metric}_backbone_ci_lo": math.nan,
           f"{metric}_backbone_ci_hi": math.nan, f"{metric}_p": math.nan, f"{metric}_test": ""}
    if not system:
        return out
    diffs = [a - b for a, b in zip(system, base)]
    binary = is_binary(system) and is_binary(base)
    out.update({f"{metric}_backbone": sum(base) / len(base), f"{metric}_rrpo": sum(system) / len(system),
                f"{metric}_gain": sum(diffs) / len(diffs),
                f"{metric}_p": mcnemar_exact(system, base) if binary else paired_tests(system, base).p_randomization,
                f"{metric}_test": "mcnemar" if binary else "randomization"})
    out[f"{metric}_gain_ci_lo"], out[f"{metric}_gain_ci_hi"] = bootstrap_ci(diffs)
    out[f"{metric}_rrpo_ci_lo"], out[f"{metric}_rrpo_ci_hi"] = bootstrap_ci(system)
    out[f"{metric}_backbone_ci_lo"], out[f"{metric}_backbone_ci_hi"] = bootstrap_ci(base)
    return out


def gain_cell(row, metric: str) -> str:
    if math.isnan(row[f"{metric}_gain"]):
        return "–"
    mark = "*" if row[f"{metric}_p_holm"] < ALPHA else ""
    return (f"{row[f'{metric}_backbone']:.3f} → {row[f'{metric}_rrpo']:.3f} ({row[f'{metric}_gain']:+.3f}{mark} "
            f"[{row[f'{metric}_gain_ci_lo']:+.3f}, {row[f'{metric}_gain_ci_hi']:+.3f}])")


def plot_axes():
    import matplotlib  # lazy: matplotlib only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: list[dict[str, Any]], x_key: str, x_label: str, series_key: str | None, metric: str,
                backbone: str, title: str, path: Path) -> None:
    """Two panels over a numeric axis, one line per (``series_key`` value, evaluation reader), slightly dodged so
    the error bars stay apart: left, the checkpoints' mean ``metric`` with its 95% bootstrap CI and each reader's
    backbone as a dashed line with its CI as a band; right, the paired gain over the backbone with the 95% bootstrap
    CI of the per-question differences (* = Holm-significant), against a zero line."""
    plt = plot_axes()
    readers = list(dict.fromkeys(r["eval_reader"] for r in rows))
    colours = dict(zip(readers, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    series = list(dict.fromkeys(r[series_key] for r in rows)) if series_key else [None]
    markers = dict(zip(series, "osD^v<>"))
    xs_all = sorted({float(r[x_key]) for r in rows})
    spacing = min((b - a for a, b in zip(xs_all, xs_all[1:])), default=1.0)
    lines = [(reader, s) for reader in readers for s in series]
    fig, (ax_abs, ax_gain) = plt.subplots(1, 2, figsize=(11, 4.6))
    for reader in readers:
        base = next(r for r in rows if r["eval_reader"] == reader)
        ax_abs.axhline(base[f"{metric}_backbone"], color=colours[reader], linestyle="--", linewidth=1,
                       label=f"{backbone} (backbone), read by {reader}")
        ax_abs.axhspan(base[f"{metric}_backbone_ci_lo"], base[f"{metric}_backbone_ci_hi"], color=colours[reader],
                       alpha=0.08)
    for i, (reader, s) in enumerate(lines):
        dodge = (i - (len(lines) - 1) / 2) * 0.04 * spacing
        pts = sorted((float(r[x_key]), r) for r in rows
                     if r["eval_reader"] == reader and (series_key is None or r[series_key] == s))
        xs = [x + dodge for x, _ in pts]
        label = f"RRPO, read by {reader}" + (f", {series_key.replace('_', ' ')} {s}" if series_key else "")
        style = {"color": colours[reader], "marker": markers[s], "capsize": 3,
                 "linestyle": "-" if series.index(s) == 0 else ":"}
        for ax, key in ((ax_abs, "rrpo"), (ax_gain, "gain")):
            ys = [r[f"{metric}_{key}"] for _, r in pts]
            err = [[y - r[f"{metric}_{key}_ci_lo"] for y, (_, r) in zip(ys, pts)],
                   [r[f"{metric}_{key}_ci_hi"] - y for y, (_, r) in zip(ys, pts)]]
            ax.errorbar(xs, ys, yerr=err, label=label if ax is ax_abs else None, **style)
        for x, (_, r) in zip(xs, pts):
            if r[f"{metric}_p_holm"] < ALPHA:
                ax_gain.annotate("*", (x, r[f"{metric}_gain_ci_hi"]), ha="center", va="bottom", fontsize=12)
    ax_gain.axhline(0.0, color="black", linewidth=0.8)
    ax_gain.margins(y=0.12)                 # room for the significance marks above the error bars
    n = max(r["n"] for r in rows)
    ax_abs.set_ylabel(f"{metric} (mean over {n} questions, 95% CI)")
    ax_gain.set_ylabel(f"{metric} gain over {backbone} (paired, 95% CI)")
    ax_abs.set_title(f"{metric} of the reader's answers", fontsize=9)
    ax_gain.set_title(f"gain over the backbone (* p < {ALPHA}, Holm over the table)", fontsize=9)
    for ax in (ax_abs, ax_gain):
        ax.set_xticks(xs_all, [f"{x:g}" for x in xs_all])
        ax.set_xlabel(x_label)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.legend(loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * math.ceil((len(lines) + len(readers)) / 2), 1, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
