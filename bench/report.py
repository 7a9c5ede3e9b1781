"""Leaderboards from per-query records: every number here is a mean (or a test) over ``records.jsonl`` rows.

For each (dataset, reader) group and each reranker: n queries answered, n failed, the mean of every metric with a
95% bootstrap CI, and paired tests (t-test and randomization) against the baseline reranker on the queries both
answered, Holm-corrected across the rerankers of the group. Failed queries are counted, never folded into a mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from bench.stats import bootstrap_ci, holm, paired_tests
from bench.types import QueryRecord

# Column order of the Markdown leaderboard; other metrics still go into the CSV.
HEADLINE = ("nDCG@10", "Recall@{k}", "MRR@10", "EM", "F1", "accuracy", "judge")
ALPHA = 0.05


@dataclass(frozen=True)
class ReportOptions:
    baseline: str = "none"
    top_k: int = 3
    seed: int = 0
    n_resamples: int = 10_000


def metric_names(records: Iterable[QueryRecord]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        for m in r.metrics:
            seen.setdefault(m, None)
    return list(seen)


def leaderboard(records: Sequence[QueryRecord], opts: ReportOptions) -> pd.DataFrame:
    """One row per (dataset, reader, reranker), in first-seen order; columns ``<m>``, ``<m>_ci_lo``, ``<m>_ci_hi``,
    ``<m>_p_t``, ``<m>_p_rand`` (raw) and ``<m>_p_t_holm``, ``<m>_p_rand_holm``."""
    metrics = metric_names(records)
    groups: dict[tuple[str, str], dict[str, list[QueryRecord]]] = {}
    for r in records:
        groups.setdefault((r.dataset, r.reader), {}).setdefault(r.reranker, []).append(r)
    rows = []
    for (dataset, reader), by_reranker in groups.items():
        base = {r.qid: r for r in by_reranker.get(opts.baseline, []) if r.status == "ok"}
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
                    test = paired_tests([a for a, _ in pairs], [b for _, b in pairs], opts.n_resamples, opts.seed)
                    row[f"{m}_p_t"], row[f"{m}_p_rand"] = test.p_ttest, test.p_randomization
                else:
                    row[f"{m}_p_t"] = row[f"{m}_p_rand"] = math.nan
            group_rows.append(row)
        for m in metrics:
            for test in ("p_t", "p_rand"):
                adjusted = holm([row[f"{m}_{test}"] for row in group_rows])
                for row, p in zip(group_rows, adjusted):
                    row[f"{m}_{test}_holm"] = p
        rows.extend(group_rows)
    return pd.DataFrame(rows)


def _headline_columns(df: pd.DataFrame, top_k: int) -> list[str]:
    wanted = [c.format(k=top_k) for c in HEADLINE]
    return [c for c in wanted if c in df.columns and df[c].notna().any()]


def _cell(row: pd.Series, m: str) -> str:
    v = row[m]
    if pd.isna(v):
        return "–"
    mark = "†" if row.get(f"{m}_p_rand_holm", math.nan) < ALPHA else ""
    return f"{v:.3f}{mark} [{row[f'{m}_ci_lo']:.3f}, {row[f'{m}_ci_hi']:.3f}]"


def to_markdown(df: pd.DataFrame, opts: ReportOptions) -> str:
    cols = _headline_columns(df, opts.top_k)
    parts = []
    for (dataset, reader), g in df.groupby(["dataset", "reader"], sort=False):
        table = pd.DataFrame({"reranker": g["reranker"], "n": g["n"], "failed": g["failed"],
                              **{m: [_cell(r, m) for _, r in g.iterrows()] for m in cols}})
        parts.append(f"### {dataset} · reader {reader}\n\n{table.to_markdown(index=False)}\n")
    parts.append(f"Cells: mean [95% bootstrap CI] over the answered queries (`n`); `failed` queries are counted, "
                 f"not averaged. † = differs from `{opts.baseline}` on the same queries at p < {ALPHA} "
                 f"(paired randomization test, Holm-corrected across rerankers; the CSV also has paired t-test "
                 f"p-values, raw and corrected).")
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
