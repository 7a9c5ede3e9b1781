"""``report.html``: one self-contained page per run folder (and per ``rrpo study`` folder) to look at a run.

The page is ``report_template.html`` (vanilla JS and CSS, nothing fetched) with the run's data inlined as one JSON
block: the leaderboard (every row of ``leaderboard.csv``), the pairs (``pairs.csv``), the cross-reader matrices, the
costs, and per question every reranker's ranking with the reader's answer, metrics, verdict and status; the passage
texts once per run (``passages.jsonl``, which the run writes from its first-stage candidates) and the relevance grades
and first-stage order (``questions.jsonl``). Everything comes from files the folder keeps and nothing in the page
depends on the time it was written, so rebuilding it from the same folder gives the same bytes.

Untrusted text (questions, passages, answers, judge replies, component names) stays text: the JSON is escaped so that
nothing in it can end its ``<script>`` element, and the page's script writes every string with ``textContent``.
"""
from __future__ import annotations

import base64
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from bench.files import atomic_write
from bench.metrics import is_answer_metric
from bench.report import ALPHA, cross_reader_matrix, row_labels
from bench.types import CandidateList, QueryRecord

PASSAGES_FILE = "passages.jsonl"
QUESTIONS_FILE = "questions.jsonl"
REPORT_FILE = "report.html"
MARKER = "__REPORT_DATA__"
# Characters that could end the <script> element or an HTML comment in it, or end a line in old JS parsers.
JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


# --- what a run keeps for the page: passage texts and grades ---------------------------------------------------------

def write_first_stage(out_dir: Path, lists_by_dataset: Mapping[str, Sequence[CandidateList]]) -> None:
    """``passages.jsonl`` (each candidate passage of each dataset once: dataset, docid, title, text) and
    ``questions.jsonl`` (per question: its relevance grades and its first-stage candidates in order), rewritten whole
    after each dataset's first stage so an interrupted run keeps those of the datasets it reached."""
    passages, questions = [], []
    for dataset, lists in lists_by_dataset.items():
        seen: set[str] = set()
        for cl in lists:
            questions.append({"dataset": dataset, "qid": cl.query.qid, "qrels": cl.query.qrels,
                              "candidates": [c.docid for c in cl.candidates]})
            for c in cl.candidates:
                if c.docid not in seen:
                    seen.add(c.docid)
                    passages.append({"dataset": dataset, "docid": c.docid, "title": c.doc.title, "text": c.doc.text})
    for name, rows in ((PASSAGES_FILE, passages), (QUESTIONS_FILE, questions)):
        atomic_write(out_dir / name, lambda tmp, rows=rows: tmp.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"))


def _jsonl(path: Path) -> Iterable[dict]:
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield json.loads(line)


# --- the page --------------------------------------------------------------------------------------------------------

def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities (pandas' missing values) become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def embed_json(data: Any) -> str:
    """JSON for a ``<script type="application/json">`` element: ``<``, ``>``, ``&`` and the line separators escaped
    as ``\\uXXXX`` (still the same JSON), so no string in it can close the element (``</script>``) or open a
    comment."""
    text = json.dumps(_clean(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return "".join(JSON_ESCAPES.get(ch, ch) for ch in text)


def render_page(data: Mapping[str, Any]) -> str:
    template = resources.files("bench").joinpath("report_template.html").read_text(encoding="utf-8")
    return template.replace(MARKER, embed_json(data), 1)


def _dagger_notes(df: pd.DataFrame, metrics: Sequence[str], baseline: str) -> dict[str, dict[str, str]]:
    """row index -> metric -> the tooltip of its † (the test, its p-value and the Holm family), for the cells that
    differ from the baseline at p < ALPHA after Holm."""
    notes: dict[str, dict[str, str]] = {}
    for _, g in df.groupby(["dataset", "reader"], sort=False):
        tested = [str(r) for r in g["reranker"] if r != baseline]
        answer = [m for m in metrics if is_answer_metric(m) and g[f"{m}_p"].notna().any()]
        for i, row in g.iterrows():
            for m in metrics:
                p = row.get(f"{m}_p_holm", math.nan)
                if not p < ALPHA:
                    continue
                test = "exact McNemar test" if pd.notna(row.get(f"{m}_p_exact")) else "paired randomization test"
                family = (f"Holm family: answer metrics {{{', '.join(answer)}}} × rerankers {{{', '.join(tested)}}} "
                          f"({len(answer) * len(tested)} tests)" if is_answer_metric(m)
                          else f"Holm family: {m} across the {len(tested)} reranker(s)")
                notes.setdefault(str(i), {})[m] = (f"differs from {baseline}: {test}, p = {row[f'{m}_p']:.4g}, "
                                                   f"Holm-corrected p = {p:.4g} < {ALPHA}; {family}")
    return notes


def _matrices(df: pd.DataFrame) -> list[dict[str, Any]]:
    if df["reader"].nunique() < 2:
        return []
    out = []
    for m in [c for c in ("F1", "accuracy", "judge") if c in df.columns]:
        matrix = cross_reader_matrix(df, m)
        out.append({"metric": m, "rows": row_labels(matrix), "columns": [str(c) for c in matrix.columns],
                    "values": matrix.to_numpy(dtype=float).tolist()})
    return out


def run_page_data(run_dir: Path, records: Sequence[QueryRecord], config: Mapping[str, Any],
                  costs: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the page shows, from the run folder's files (``leaderboard.csv`` and ``pairs.csv`` as written just
    before) and its records."""
    df = pd.read_csv(run_dir / "leaderboard.csv", keep_default_na=False, na_values=[""],
                     dtype={"dataset": str, "reader": str, "reranker": str})
    pairs_path = run_dir / "pairs.csv"
    pairs = (pd.read_csv(pairs_path, keep_default_na=False, na_values=[""],
                         dtype={"dataset": str, "reader": str, "reranker": str, "other": str, "metric": str})
             if pairs_path.is_file() else pd.DataFrame())
    metrics = [c[: -len("_ci_lo")] for c in df.columns if c.endswith("_ci_lo")]
    baseline = config.get("baseline", "none")
    first_stage = {(q["dataset"], q["qid"]): q for q in _jsonl(run_dir / QUESTIONS_FILE)}
    questions: dict[tuple[str, str], int] = {}
    question_rows, record_rows = [], []
    used: dict[str, set[str]] = {}
    for r in records:
        key = (r.dataset, r.qid)
        if key not in questions:
            questions[key] = len(question_rows)
            stage = first_stage.get(key, {})
            question_rows.append({"dataset": r.dataset, "qid": r.qid, "text": r.question, "gold": r.gold_answers,
                                  "qrels": stage.get("qrels"), "candidates": stage.get("candidates")})
        used.setdefault(r.dataset, set()).update(r.ranking)
        judge = r.info.get("judge") if isinstance(r.info.get("judge"), dict) else None
        record_rows.append({"q": questions[key], "reranker": r.reranker, "reader": r.reader, "ranking": r.ranking,
                            "answer": r.answer, "metrics": [r.metrics.get(m) for m in metrics], "status": r.status,
                            "error": r.error, "judge": judge, "prompt": r.info.get("prompt")})
    passages: dict[str, dict[str, list[str]]] = {}
    for p in _jsonl(run_dir / PASSAGES_FILE):
        if p["docid"] in used.get(p["dataset"], ()):
            passages.setdefault(p["dataset"], {})[p["docid"]] = [p.get("title", ""), p.get("text", "")]
    return {"kind": "run", "title": run_dir.resolve().name,
            "config": {k: config.get(k) for k in ("baseline", "primary_metric", "top_k", "reader_template",
                                                   "judge", "judge_template", "first_stage", "pool", "split")},
            "metrics": metrics, "answer_metrics": [m for m in metrics if is_answer_metric(m)], "alpha": ALPHA,
            "leaderboard": {"columns": list(df.columns), "rows": df.to_numpy(dtype=object).tolist(),
                            "daggers": _dagger_notes(df, metrics, baseline)},
            "pairs": {"columns": list(pairs.columns), "rows": pairs.to_numpy(dtype=object).tolist()},
            "matrices": _matrices(df), "costs": costs, "questions": question_rows, "records": record_rows,
            "passages": passages}


def write_html_report(run_dir: Path, records: Sequence[QueryRecord], config: Mapping[str, Any],
                      costs: Mapping[str, Any] | None, out: Path | None = None) -> Path:
    """Write the run's page (default ``run_dir/report.html``) and return its path."""
    path = out or run_dir / REPORT_FILE
    page = render_page(run_page_data(run_dir, records, config, costs))
    atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return path


def write_study_html(folder: Path, title: str, table_md_note: str, plot_file: str,
                     runs: Mapping[str, Path]) -> Path:
    """A study folder's page: its table (``table.csv``), its plot inlined as a data URI, the note under the table
    and a link to each cell's run page (relative, so the folder can move)."""
    df = pd.read_csv(folder / "table.csv", keep_default_na=False, na_values=[""])
    plot = folder / plot_file
    image = ("data:image/png;base64," + base64.b64encode(plot.read_bytes()).decode("ascii")
             if plot.is_file() else None)
    links = []
    for cell, run in runs.items():
        run = Path(run)
        target = (run if run.is_absolute() else Path.cwd() / run).resolve() / REPORT_FILE
        try:
            href = target.relative_to(folder.resolve()).as_posix()
        except ValueError:
            href = target.as_uri()
        links.append({"cell": cell, "href": href})
    data = {"kind": "study", "title": title, "note": table_md_note, "plot": image,
            "table": {"columns": list(df.columns), "rows": df.to_numpy(dtype=object).tolist()}, "runs": links}
    path = folder / REPORT_FILE
    page = render_page(data)
    atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return path
