"""Leaderboards from per-query records: every number here is a mean (or a test) over ``records.jsonl`` rows.

For each (dataset, reader) group and each reranker: n queries answered, n failed, the mean of every metric with a
95% bootstrap CI, and paired tests against the baseline reranker on the queries both answered: t-test and
randomization for every metric, and for 0/1 metrics (EM, accuracy, judge) the exact McNemar test, which is the
test a † rests on for them (randomization for graded metrics). Holm corrections: each test across the rerankers of
the group, and the answer metrics of a table as one family (rerankers × answer metrics), since a table invites a
claim on any of them; the primary metric (``--primary-metric``, declared before the run) is named in the table.
Failed queries are counted, never folded into a mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from bench.stats import bootstrap_ci, holm, is_binary, mcnemar_exact, paired_tests
from bench.types import QueryRecord

# Column order of the Markdown leaderboard; other metrics still go into the CSV.
HEADLINE = ("nDCG@10", "Recall@{k}", "MRR@10", "EM", "F1", "accuracy", "judge")
ANSWER_METRICS = ("EM", "F1", "accuracy", "judge")
ALPHA = 0.05


@dataclass(frozen=True)
class ReportOptions:
    baseline: str = "none"
    top_k: int = 3
    seed: int = 0
    n_resamples: int = 10_000
    primary_metric: str = "F1"      # declared before the run: RRPO's training metric


def metric_names(records: Iterable[QueryRecord]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        for m in r.metrics:
            seen.setdefault(m, None)
    return list(seen)


def leaderboard(records: Sequence[QueryRecord], opts: ReportOptions) -> pd.DataFrame:
    """One row per (dataset, reader, reranker), in first-seen order; columns ``<m>``, ``<m>_ci_lo``, ``<m>_ci_hi``,
    ``<m>_p_t``, ``<m>_p_rand``, ``<m>_p_exact`` (McNemar, 0/1 metrics only) raw and ``_holm`` across rerankers;
    ``<m>_p`` (exact for 0/1 metrics, else randomization) and ``<m>_p_holm``: over the answer-metric family of the
    group for answer metrics, across rerankers for the others."""
    metrics = metric_names(records)
    groups: dict[tuple[str, str], dict[str, list[QueryRecord]]] = {}
    for r in records:
        groups.setdefault((r.dataset, r.reader), {}).setdefault(r.reranker, []).append(r)
    rows = []
    for (dataset, reader), by_reranker in groups.items():
        base = {r.qid: r for r in by_reranker.get(opts.baseline, []) if r.status == "ok"}
        binary = {m: is_binary([r.metrics[m] for recs in by_reranker.values() for r in recs if m in r.metrics])
                  for m in metrics}
        group_rows = []
        for reranker, recs in by_reranker.items():
            ok = [r for r in recs if r.status == "ok"]
            row: dict = {"dataset": dataset, "reader": reader, "reranker": reranker, "n": len(ok),
                         "failed": len(recs) - len(ok)}
            for m in metrics:
                vals = [r.metrics[m] for r in ok if m in r.metrics]
                row[m] = sum(vals) / len(vals) if vals else math.nan
                row[f"{m}_ci_lo"], row[f"{m}_ci_hi"] = bootstrap_ci(vals, seed=opts.seed)
                pairs = [(r.metrics[m], base[r.qid].metrics[m]) for r in ok
                         if r.qid in base and m in r.metrics and m in base[r.qid].metrics]
                if reranker != opts.baseline and pairs:
                    system, baseline = [a for a, _ in pairs], [b for _, b in pairs]
                    test = paired_tests(system, baseline, opts.n_resamples, opts.seed)
                    row[f"{m}_p_t"], row[f"{m}_p_rand"] = test.p_ttest, test.p_randomization
                    row[f"{m}_p_exact"] = mcnemar_exact(system, baseline) if binary[m] else math.nan
                else:
                    row[f"{m}_p_t"] = row[f"{m}_p_rand"] = row[f"{m}_p_exact"] = math.nan
                row[f"{m}_p"] = row[f"{m}_p_exact"] if binary[m] else row[f"{m}_p_rand"]
            group_rows.append(row)
        for m in metrics:
            for test in ("p_t", "p_rand", "p_exact", *(("p",) if m not in ANSWER_METRICS else ())):
                adjusted = holm([row[f"{m}_{test}"] for row in group_rows])
                for row, p in zip(group_rows, adjusted):
                    row[f"{m}_{test}_holm"] = p
        family = [(row, m) for m in metrics if m in ANSWER_METRICS for row in group_rows]
        for (row, m), p in zip(family, holm([row[f"{m}_p"] for row, m in family])):
            row[f"{m}_p_holm"] = p
        rows.extend(group_rows)
    return pd.DataFrame(rows)


def _headline_columns(df: pd.DataFrame, top_k: int) -> list[str]:
    wanted = [c.format(k=top_k) for c in HEADLINE]
    return [c for c in wanted if c in df.columns and df[c].notna().any()]


def _cell(row: pd.Series, m: str) -> str:
    v = row[m]
    if pd.isna(v):
        return "–"
    mark = "†" if row.get(f"{m}_p_holm", math.nan) < ALPHA else ""
    return f"{v:.3f}{mark} [{row[f'{m}_ci_lo']:.3f}, {row[f'{m}_ci_hi']:.3f}]"


def _families(g: pd.DataFrame, cols: Sequence[str], baseline: str) -> str:
    """The Holm families behind the † marks of one table, named."""
    tested = [r for r in g["reranker"] if r != baseline]
    answer = [m for m in cols if m in ANSWER_METRICS and g[f"{m}_p"].notna().any()]
    other = [m for m in cols if m not in ANSWER_METRICS and g[f"{m}_p"].notna().any()]
    if not tested or not (answer or other):
        return ""
    parts = []
    if answer:
        parts.append(f"answer metrics {{{', '.join(answer)}}} × rerankers {{{', '.join(tested)}}} as one family "
                     f"({len(answer) * len(tested)} tests)")
    if other:
        parts.append(f"{', '.join(other)}: each metric across the {len(tested)} reranker(s)")
    return "Holm families: " + "; ".join(parts) + ".\n"


def to_markdown(df: pd.DataFrame, opts: ReportOptions) -> str:
    cols = _headline_columns(df, opts.top_k)
    parts = []
    for (dataset, reader), g in df.groupby(["dataset", "reader"], sort=False):
        table = pd.DataFrame({"reranker": g["reranker"], "n": g["n"], "failed": g["failed"],
                              **{f"{m} (primary)" if m == opts.primary_metric else m:
                                 [_cell(r, m) for _, r in g.iterrows()] for m in cols}})
        parts.append(f"### {dataset} · reader {reader}\n\n{table.to_markdown(index=False)}\n\n"
                     f"{_families(g, cols, opts.baseline)}")
    parts.append(f"Cells: mean [95% bootstrap CI] over the answered queries (`n`); `failed` queries are counted, "
                 f"not averaged. † = differs from `{opts.baseline}` on the same queries at p < {ALPHA} after Holm "
                 f"correction over the family named under the table: exact McNemar test (binomial on the discordant "
                 f"pairs) for 0/1 metrics, paired randomization test for graded ones. Primary metric, declared "
                 f"before the run: {opts.primary_metric}. The CSV also has the paired t-test and every p-value raw "
                 f"and Holm-corrected across rerankers.")
    return "\n".join(parts)


def cross_reader_matrix(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """reranker × reader table of one metric (per dataset, concatenated with a dataset level)."""
    return df.pivot_table(index=["dataset", "reranker"], columns="reader", values=metric, sort=False)


def row_labels(matrix: pd.DataFrame) -> list[str]:
    return [" / ".join(map(str, i)) for i in matrix.index]


def plot_matrix(matrix: pd.DataFrame, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * matrix.shape[1], 1.0 + 0.45 * matrix.shape[0]))
    im = ax.imshow(matrix.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=30, ha="right")
    ax.set_yticks(range(matrix.shape[0]), row_labels(matrix))
    for (i, j), v in pd.DataFrame(matrix.to_numpy()).stack().items():
        ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="w", fontsize=8)
    ax.set_title(f"{metric}: reranker × reader")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(records: Sequence[QueryRecord], out_dir: Path, opts: ReportOptions,
                  extra_sections: Sequence[str] = ()) -> str:
    """Write leaderboard.csv, leaderboard.md and, with several readers, cross-reader matrices; return the Markdown."""
    df = leaderboard(records, opts)
    df.to_csv(out_dir / "leaderboard.csv", index=False)
    md = to_markdown(df, opts)
    if df["reader"].nunique() > 1:
        for m in [c for c in ("F1", "accuracy", "judge") if c in df.columns]:
            matrix = cross_reader_matrix(df, m)
            matrix.to_csv(out_dir / f"matrix_{m}.csv")
            plot_matrix(matrix, m, out_dir / f"matrix_{m}.png")
            shown = matrix.set_axis(row_labels(matrix), axis=0)
            md += f"\n\n### {m}: reranker × reader\n\n{shown.to_markdown(floatfmt='.3f')}\n"
    md = "\n\n".join([md, *extra_sections])
    (out_dir / "leaderboard.md").write_text(md + "\n")
    return md
