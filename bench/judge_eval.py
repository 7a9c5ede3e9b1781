"""``python -m bench judge-eval``: how far each answer metric and an LLM judge agree with human verdicts.

A labelled set (``bench.data.judgments``: the OpenQA-eval release or a generic JSONL file) gives (question, gold
answers, answer, human verdict) rows. Every registered answer metric that is computed from the answer alone (EM, F1,
accuracy, plugins') scores every row; a graded one (F1) is read as "correct" at ``score >= threshold`` (0.5 by
default, named in every table). The judge (an engine spec, through the shared LLM cache like every LLM call)
scores every row, or the first ``judge_limit`` rows in file order when that is declared; each lexical metric is then
also reported on those rows, so that the judge is compared on the same answers. The judge's invalid verdicts are
left out of its ``judge`` reading (as the runner leaves them out of the leaderboard's mean) and counted as
"incorrect" in the ``judge (invalid = incorrect)`` reading.

Each reading gets, against the human label: agreement, Cohen's κ, precision and recall of "correct"
(``bench.stats.binary_agreement``), each with a 95% percentile bootstrap CI over rows (seeded), and its confusion
table. Written to the output folder: ``agreement.csv``, ``agreement.md`` (the table and the confusion tables) and
``rows.csv`` (every row's scores and verdicts); with a judge, its summary is also kept for the leaderboard
(``bench.judges.save_measurement``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bench.builder import Builder
from bench.config import RunConfig
from bench.data.judgments import LabelledSet, load_labelled
from bench.errors import UserError
from bench.judges import save_measurement
from bench.metrics import METRICS, metric
from bench.stats import binary_agreement_ci

JUDGE_CHUNK = 32            # judge calls per batch (each reply is cached the moment it arrives)
STATISTICS = ("agreement", "kappa", "precision", "recall")


@dataclass(frozen=True)
class Reading:
    """One 0/1 reading of a metric on some rows: which rows (positions in the set) and what it says on each."""

    name: str
    scope: str
    rows: np.ndarray            # positions of the rows it covers
    correct: np.ndarray         # its verdict on each of them
    invalid: int = 0            # judge replies that were not a verdict (only the judge's readings)


@dataclass
class JudgeEvalResult:
    data: LabelledSet
    readings: list[Reading]
    table: Any                  # pandas DataFrame, one line per reading
    scores: dict[str, list[float]] = field(default_factory=dict)   # metric -> score of every row
    judge_rows: list[dict[str, Any]] = field(default_factory=list)  # the judge's verdict on each judged row


def lexical_readings(data: LabelledSet, threshold: float) -> tuple[list[Reading], dict[str, list[float]]]:
    """Every registered answer metric computed from the answer alone, as a 0/1 reading on all rows."""
    readings, scores = [], {}
    every = np.arange(len(data.rows))
    for entry in METRICS.entries():
        m = metric(entry.name)
        if m.kind != "answer" or m.compute is None:
            continue
        values = [float(m.compute(r.answer, r.gold_answers)) for r in data.rows]
        scores[m.name] = values
        name = m.name if m.binary else f"{m.name} ≥ {threshold:g}"
        readings.append(Reading(name, "all rows", every, np.asarray(values) >= (1.0 if m.binary else threshold)))
    return readings, scores


def judge_readings(data: LabelledSet, judge, limit: int | None) -> tuple[list[Reading], list[dict[str, Any]]]:
    """The judge's verdicts on the first ``limit`` rows (all when None): its valid verdicts, and all of them with an
    invalid one read as incorrect. Rows whose call failed (the engine's error) get no verdict and are counted."""
    judged = data.rows[:limit] if limit else data.rows
    verdicts = []
    for start in tqdm(range(0, len(judged), JUDGE_CHUNK), desc="judge", unit="batch"):
        chunk = judged[start:start + JUDGE_CHUNK]
        verdicts += judge.judge([(r.question, r.gold_answers, r.answer) for r in chunk])
    answered = [i for i, v in enumerate(verdicts) if v.error is None]
    valid = [i for i in answered if verdicts[i].valid]
    scope = f"first {len(judged)} rows" if limit and limit < len(data.rows) else "all rows"
    invalid = len(answered) - len(valid)
    readings = [Reading("judge", scope, np.asarray(valid, dtype=int),
                        np.asarray([verdicts[i].correct for i in valid], dtype=bool), invalid),
                Reading("judge (invalid = incorrect)", scope, np.asarray(answered, dtype=int),
                        np.asarray([bool(verdicts[i].correct) for i in answered], dtype=bool), invalid)]
    rows = [{"judge_verdict": "" if v.correct is None else ("correct" if v.correct else "incorrect"),
             "judge_valid": v.valid, "judge_error": v.error or "", "judge_reason": v.reason, "judge_raw": v.raw}
            for v in verdicts]
    return readings, rows


def agreement_table(data: LabelledSet, readings: Sequence[Reading], n_resamples: int = 2000, seed: int = 0):
    """One line per reading: rows, n, the shares it and the humans call correct, agreement / κ / precision /
    recall with their bootstrap CIs, the confusion counts (tp: both say correct), invalid verdicts."""
    human = np.asarray([r.human_correct for r in data.rows], dtype=bool)
    lines = []
    for reading in readings:
        line: dict[str, Any] = {"reading": reading.name, "rows": reading.scope, "n": len(reading.rows)}
        if len(reading.rows):
            said, truth = reading.correct, human[reading.rows]
            line.update(says_correct=said.mean(), human_correct=truth.mean())
            for stat, (value, lo, hi) in binary_agreement_ci(said, truth, n_resamples=n_resamples,
                                                             seed=seed).items():
                line.update({stat: value, f"{stat}_lo": lo, f"{stat}_hi": hi})
            line.update(tp=int(np.sum(said & truth)), fp=int(np.sum(said & ~truth)),
                        fn=int(np.sum(~said & truth)), tn=int(np.sum(~said & ~truth)))
        line["invalid"] = reading.invalid
        lines.append(line)
    return pd.DataFrame(lines)


def evaluate(data: LabelledSet, judge=None, judge_limit: int | None = None, threshold: float = 0.5,
             n_resamples: int = 2000, seed: int = 0) -> JudgeEvalResult:
    if judge_limit is not None and judge_limit < 1:
        raise UserError(f"--judge-limit {judge_limit}: expected a positive number of rows")
    if not 0 < threshold <= 1:
        raise UserError(f"--threshold {threshold}: expected a number in (0, 1]")
    readings, scores = lexical_readings(data, threshold)
    judge_rows = []
    if judge is not None:
        judged, judge_rows = judge_readings(data, judge, judge_limit)
        if judged[0].scope != "all rows":        # the lexical metrics on the judge's rows too
            first = np.arange(len(judge_rows))
            readings += [Reading(r.name, judged[0].scope, first, r.correct[first]) for r in readings]
        readings += judged
    return JudgeEvalResult(data, readings, agreement_table(data, readings, n_resamples, seed), scores, judge_rows)


# --- output ----------------------------------------------------------------------------------------------------

def _cell(line: Any, stat: str) -> str:
    value = line.get(stat)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    lo, hi = line[f"{stat}_lo"], line[f"{stat}_hi"]
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown(result: JudgeEvalResult, judge: str | None, prompt: str | None, threshold: float,
             n_resamples: int, seed: int) -> str:
    data, table = result.data, result.table
    human = np.mean([r.human_correct for r in data.rows])
    dropped = f" ({data.dropped_duplicates} repeated row(s) dropped)" if data.dropped_duplicates else ""
    parts = [f"# judge-eval: {data.name}", "",
             f"Data: {data.source}; {len(data.rows):,} labelled answers{dropped}; humans call {human:.3f} of them "
             f"correct.",
             f"Graded metrics read as correct at score ≥ {threshold:g}. Cells: value [95% percentile bootstrap CI, "
             f"{n_resamples} resamples of the rows, seed {seed}]; precision and recall are of \"correct\" against the "
             f"human label; κ is Cohen's kappa."]
    if judge:
        judged = table[table["reading"] == "judge"].iloc[0]
        failed = sum(bool(r["judge_error"]) for r in result.judge_rows)
        scope = "all rows" if judged["rows"] == "all rows" else f"the {judged['rows']} (file order)"
        parts.append(f"Judge: `{judge}` with prompt `{prompt}`, on {scope}; "
                     f"{int(judged['invalid'])} invalid verdict(s)"
                     + (f"; {failed} call(s) failed (no verdict: run again to retry them)." if failed else "."))
    shown = [{"reading": line["reading"], "rows": line["rows"], "n": line["n"],
              "says correct": f"{line['says_correct']:.3f}" if line["n"] else "–",
              "human correct": f"{line['human_correct']:.3f}" if line["n"] else "–",
              **{"κ" if s == "kappa" else s: _cell(line, s) for s in STATISTICS}}
             for line in table.to_dict("records")]

    parts += ["", pd.DataFrame(shown).to_markdown(index=False), "", "## Confusion tables", ""]
    for line in table.to_dict("records"):
        if not line["n"]:
            continue
        parts += [f"**{line['reading']}** ({line['rows']}, n = {line['n']})", "",
                  "| | human: correct | human: incorrect |", "|---|---|---|",
                  f"| says correct | {line['tp']} | {line['fp']} |",
                  f"| says incorrect | {line['fn']} | {line['tn']} |", ""]
    return "\n".join(parts)


def rows_frame(result: JudgeEvalResult):
    frame = pd.DataFrame([{"id": r.qid, "question": r.question, "gold_answers": " | ".join(r.gold_answers),
                           "answer": r.answer, "human_correct": r.human_correct} for r in result.data.rows])
    for name, values in result.scores.items():
        frame[name] = values
    if result.judge_rows:
        judged = pd.DataFrame(result.judge_rows)
        frame = frame.join(judged)      # rows beyond the judged ones stay empty
    return frame


def default_output(data_name: str, judge: str | None) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", judge) if judge else "no-judge"
    return Path("results") / "judge-eval" / f"{data_name}-{slug}"


def summary(result: JudgeEvalResult, prompt: str, out_dir: Path) -> dict[str, Any]:
    """What the leaderboard shows of the judge's measurement: its ``judge`` reading."""
    line = result.table[result.table["reading"] == "judge"].iloc[0].to_dict()
    return {"data": result.data.name, "source": result.data.source, "rows": line["rows"], "n": int(line["n"]),
            "of": len(result.data.rows), "invalid": int(line["invalid"]), "prompt": prompt, "output": str(out_dir),
            **{s: [line.get(s), line.get(f"{s}_lo"), line.get(f"{s}_hi")] for s in STATISTICS}}


def run_judge_eval(data_name: str, config: RunConfig, judge_limit: int | None = None, threshold: float = 0.5,
                   output: str | None = None, n_resamples: int = 2000) -> tuple[str, Path]:
    """Load the labelled set, score it (with ``config``'s judge when it names one, built with its server, cache and
    options), write the output folder; return (Markdown, folder)."""
    judge_spec, runtime = config.components.judge, config.runtime
    data = load_labelled(data_name, config.data.data_dir, runtime.cache_dir)
    judge, prompt = None, None
    if judge_spec:
        judge = Builder(config).judge()
        prompt = judge.template.tag
    result = evaluate(data, judge, judge_limit, threshold, n_resamples, runtime.seed)
    out_dir = Path(output) if output else default_output(data.name, judge_spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(out_dir / "agreement.csv", index=False)
    rows_frame(result).to_csv(out_dir / "rows.csv", index=False)
    md = markdown(result, judge_spec, prompt, threshold, n_resamples, runtime.seed)
    (out_dir / "agreement.md").write_text(md + "\n", encoding="utf-8")
    if judge is not None:
        save_measurement(runtime.cache_dir, judge_spec, judge.template, data.name, summary(result, prompt, out_dir))
    return md, out_dir
