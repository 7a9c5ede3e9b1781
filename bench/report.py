"""Leaderboards from per-query records: every number here is a mean (or a test) over ``records.jsonl`` rows.

For each (dataset, reader) group and each reranker: n queries answered, how many of those the judge gave a valid
verdict (``judged``), n failed, n without first-stage candidates, the mean of every metric with a 95% bootstrap CI,
and paired tests against the baseline reranker on the queries both have: t-test and randomization for every metric,
and for 0/1 metrics (EM, accuracy, judge) the exact McNemar test, which is the test a † rests on for them
(randomization for graded metrics). Holm corrections: each test across the rerankers of the group, and the answer
metrics of a table as one family (rerankers × answer metrics), since a table invites a claim on any of them; the
primary metric (``--primary-metric``, declared before the run) is named in the table. Failed queries are counted,
never folded into an answer metric's mean; retrieval metrics are over every query of the qrels, as ``trec_eval -c``
(a failed reader or judge call leaves its ranking valid; a query without first-stage candidates scores 0, the
convention of pyserini's and rank_llm's published tables), so all rerankers of a group are compared on the same
queries even when different queries failed for them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pandas as pd

from bench.answer_position import answer_position_markdown, answer_position_table
from bench.metrics import is_answer_metric, is_binary_metric
from bench.stats import bootstrap_ci, cohens_kappa, holm, is_binary, mcnemar_exact, paired_tests
from bench.types import QueryRecord

# Column order of the Markdown leaderboard; other metrics still go into the CSV.
HEADLINE = ("nDCG@10", "Recall@{k}", "MRR@10", "EM", "F1", "accuracy", "judge")
ALPHA = 0.05
# statuses whose records carry retrieval metrics: a ranking's, or 0 for a query the first stage found nothing for;
# "utility_only": ranked and judged by eRAG, not read end to end
RETRIEVAL_SCORED = ("ok", "failed", "no_candidates", "utility_only")


@dataclass(frozen=True)
class ReportOptions:
    baseline: str = "none"
    top_k: int = 3
    seed: int = 0
    n_resamples: int = 10_000
    primary_metric: str = "F1"      # declared before the run: RRPO's training metric

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ReportOptions":
        """The options a run folder's ``config.json`` fixed (so ``bench report`` rebuilds what the run wrote)."""
        return cls(**{f.name: config[f.name] for f in fields(cls) if f.name in config})


def metric_names(records: Iterable[QueryRecord]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        for m in r.metrics:
            seen.setdefault(m, None)
    return list(seen)


def scored_values(recs: Iterable[QueryRecord], metric: str) -> dict[str, float]:
    """qid -> value of ``metric`` over the records that count for it: answered ones for an answer metric, every
    judged query (failed and no_candidates included) for a retrieval metric."""
    statuses = ("ok",) if is_answer_metric(metric) else RETRIEVAL_SCORED
    return {r.qid: r.metrics[metric] for r in recs if r.status in statuses and metric in r.metrics}


def paired_values(system: Mapping[str, float], other: Mapping[str, float]) -> tuple[list[float], list[float]]:
    """The two systems' values on the queries both have, in ``system``'s order."""
    shared = [q for q in system if q in other]
    return [system[q] for q in shared], [other[q] for q in shared]


def _groups(records: Iterable[QueryRecord]) -> dict[tuple[str, str], dict[str, list[QueryRecord]]]:
    """(dataset, reader) -> reranker -> records, in first-seen order."""
    groups: dict[tuple[str, str], dict[str, list[QueryRecord]]] = {}
    for r in records:
        groups.setdefault((r.dataset, r.reader), {}).setdefault(r.reranker, []).append(r)
    return groups


def _binary_metrics(by_reranker: Mapping[str, list[QueryRecord]], metrics: Sequence[str]) -> dict[str, bool]:
    """Which metrics are 0/1 across the group (tested with exact McNemar, the others with randomization)."""
    return {m: is_binary_metric(m) or is_binary([r.metrics[m] for recs in by_reranker.values() for r in recs
                                                  if m in r.metrics]) for m in metrics}


def leaderboard(records: Sequence[QueryRecord], opts: ReportOptions) -> pd.DataFrame:
    """One row per (dataset, reader, reranker), in first-seen order; columns ``<m>``, ``<m>_ci_lo``, ``<m>_ci_hi``,
    ``<m>_p_t``, ``<m>_p_rand``, ``<m>_p_exact`` (McNemar, 0/1 metrics only) raw and ``_holm`` across rerankers;
    ``<m>_p`` (exact for 0/1 metrics, else randomization) and ``<m>_p_holm``: over the answer-metric family of the
    group for answer metrics, across rerankers for the others."""
    metrics = metric_names(records)
    rows = []
    for (dataset, reader), by_reranker in _groups(records).items():
        binary = _binary_metrics(by_reranker, metrics)
        group_rows = []
        for reranker, recs in by_reranker.items():
            ok = [r for r in recs if r.status == "ok"]
            row: dict = {"dataset": dataset, "reader": reader, "reranker": reranker, "n": len(ok),
                         "judged": sum("judge" in r.metrics for r in ok),
                         "failed": sum(r.status == "failed" for r in recs),
                         "no_candidates": sum(r.status == "no_candidates" for r in recs)}
            for m in metrics:
                scored = scored_values(recs, m)
                base = scored_values(by_reranker.get(opts.baseline, []), m)
                vals = list(scored.values())
                row[m] = sum(vals) / len(vals) if vals else math.nan
                row[f"{m}_ci_lo"], row[f"{m}_ci_hi"] = bootstrap_ci(vals, seed=opts.seed)
                system, baseline = paired_values(scored, base)
                if reranker != opts.baseline and system:
                    test = paired_tests(system, baseline, opts.n_resamples, opts.seed)
                    row[f"{m}_p_t"], row[f"{m}_p_rand"] = test.p_ttest, test.p_randomization
                    row[f"{m}_p_exact"] = mcnemar_exact(system, baseline) if binary[m] else math.nan
                else:
                    row[f"{m}_p_t"] = row[f"{m}_p_rand"] = row[f"{m}_p_exact"] = math.nan
                row[f"{m}_p"] = row[f"{m}_p_exact"] if binary[m] else row[f"{m}_p_rand"]
            group_rows.append(row)
        for m in metrics:
            for test in ("p_t", "p_rand", "p_exact", *(("p",) if not is_answer_metric(m) else ())):
                adjusted = holm([row[f"{m}_{test}"] for row in group_rows])
                for row, p in zip(group_rows, adjusted):
                    row[f"{m}_{test}_holm"] = p
        family = [(row, m) for m in metrics if is_answer_metric(m) for row in group_rows]
        for (row, m), p in zip(family, holm([row[f"{m}_p"] for row, m in family])):
            row[f"{m}_p_holm"] = p
        rows.extend(group_rows)
    return pd.DataFrame(rows)


def _headline_columns(df: pd.DataFrame, top_k: int) -> list[str]:
    wanted = [c.format(k=top_k) for c in HEADLINE]
    return [c for c in wanted if c in df.columns and df[c].notna().any()]


def _cell(row: pd.Series, m: str, dagger: str = "†", missing: str = "–") -> str:
    v = row[m]
    if pd.isna(v):
        return missing
    mark = dagger if row.get(f"{m}_p_holm", math.nan) < ALPHA else ""
    return f"{v:.3f}{mark} [{row[f'{m}_ci_lo']:.3f}, {row[f'{m}_ci_hi']:.3f}]"


def _families(g: pd.DataFrame, cols: Sequence[str], baseline: str) -> str:
    """The Holm families behind the † marks of one table, named."""
    tested = [r for r in g["reranker"] if r != baseline]
    answer = [m for m in cols if is_answer_metric(m) and g[f"{m}_p"].notna().any()]
    other = [m for m in cols if not is_answer_metric(m) and g[f"{m}_p"].notna().any()]
    if not tested or not (answer or other):
        return ""
    parts = []
    if answer:
        parts.append(f"answer metrics {{{', '.join(answer)}}} × rerankers {{{', '.join(tested)}}} as one family "
                     f"({len(answer) * len(tested)} tests)")
    if other:
        parts.append(f"{', '.join(other)}: each metric across the {len(tested)} reranker(s)")
    return "Holm families: " + "; ".join(parts) + ".\n"


def _tables(df: pd.DataFrame, opts: ReportOptions, dagger: str = "†",
            missing: str = "–") -> Iterator[tuple[str, str, pd.DataFrame, pd.DataFrame]]:
    """Per (dataset, reader): its rows of ``df`` and the table shown for them (reranker, counts, formatted cells)."""
    cols = _headline_columns(df, opts.top_k)
    counts = ["n", *(["judged"] if "judge" in cols else []), "failed",
              *(["no_candidates"] if df["no_candidates"].any() else [])]
    for (dataset, reader), g in df.groupby(["dataset", "reader"], sort=False):
        yield dataset, reader, g, pd.DataFrame(
            {"reranker": g["reranker"], **{c: g[c] for c in counts},
             **{f"{m} (primary)" if m == opts.primary_metric else m:
                [_cell(r, m, dagger, missing) for _, r in g.iterrows()] for m in cols}})


def to_markdown(df: pd.DataFrame, opts: ReportOptions) -> str:
    cols = _headline_columns(df, opts.top_k)
    parts = []
    for dataset, reader, g, table in _tables(df, opts):
        parts.append(f"### {dataset} · reader {reader}\n\n{table.to_markdown(index=False)}\n\n"
                     f"{_families(g, cols, opts.baseline)}")
    parts.append(f"Cells: mean [95% bootstrap CI]. Answer metrics are over the answered queries (`n`; `judge` over "
                 f"the `judged` ones, those with a valid verdict); retrieval metrics over every query of the qrels "
                 f"as `trec_eval -c`: the `failed` ones included (their ranking is valid), and queries with "
                 f"`no_candidates` from the first stage count 0, so every reranker is compared on the same "
                 f"queries. `failed` queries are retried by a re-run. † = differs from `{opts.baseline}` on the same queries at "
                 f"p < {ALPHA} after Holm correction over the family named under the table: exact McNemar test "
                 f"(binomial on the discordant pairs) for 0/1 metrics, paired randomization test for graded ones. "
                 f"Primary metric, declared before the run: {opts.primary_metric}. The CSV also has the paired t-test "
                 f"and every p-value raw and Holm-corrected across rerankers.")
    return "\n".join(parts)


# --- all pairs of rerankers (as ranx's Report) -----------------------------------------------------------------------

def pairwise(records: Sequence[QueryRecord], opts: ReportOptions) -> pd.DataFrame:
    """One row per (dataset, reader, metric, pair of rerankers in first-seen order): over the queries both have, the
    queries on which ``reranker`` scores higher than ``other`` (``wins``), the same (``ties``) or lower
    (``losses``), the mean difference, and the p-value of the test a † rests on (exact McNemar for 0/1 metrics,
    paired randomization for graded ones), raw and Holm-corrected over the pairs of that metric."""
    metrics = metric_names(records)
    rows = []
    for (dataset, reader), by_reranker in _groups(records).items():
        binary = _binary_metrics(by_reranker, metrics)
        for m in metrics:
            values = {name: scored_values(recs, m) for name, recs in by_reranker.items()}
            metric_rows = []
            for a, b in combinations(by_reranker, 2):
                x, y = paired_values(values[a], values[b])
                if not x:
                    continue
                test = "mcnemar" if binary[m] else "randomization"
                p = (mcnemar_exact(x, y) if binary[m]
                     else paired_tests(x, y, opts.n_resamples, opts.seed).p_randomization)
                metric_rows.append({"dataset": dataset, "reader": reader, "metric": m, "reranker": a, "other": b,
                                    "n": len(x), "wins": sum(u > v for u, v in zip(x, y)),
                                    "ties": sum(u == v for u, v in zip(x, y)),
                                    "losses": sum(u < v for u, v in zip(x, y)),
                                    "mean_diff": (sum(x) - sum(y)) / len(x), "test": test, "p": p})
            for row, p_holm in zip(metric_rows, holm([row["p"] for row in metric_rows])):
                row["p_holm"] = p_holm
            rows.extend(metric_rows)
    return pd.DataFrame(rows, columns=["dataset", "reader", "metric", "reranker", "other", "n", "wins", "ties",
                                       "losses", "mean_diff", "test", "p", "p_holm"])


def pairs_markdown(pairs: pd.DataFrame, metrics: Sequence[str]) -> str:
    """Per (dataset, reader): one row per pair, ``wins/ties/losses (Holm p)`` per headline metric."""
    parts = []
    for (dataset, reader), g in pairs[pairs["metric"].isin(metrics)].groupby(["dataset", "reader"], sort=False):
        cells: dict[str, dict[str, str]] = {}
        for _, r in g.iterrows():
            mark = "†" if r["p_holm"] < ALPHA else ""
            cells.setdefault(f"{r['reranker']} vs {r['other']}", {})[r["metric"]] = \
                f"{r['wins']}/{r['ties']}/{r['losses']} ({r['p_holm']:.3f}{mark})"
        shown = [m for m in metrics if m in set(g["metric"])]
        table = pd.DataFrame([{"pair": pair, **{m: row.get(m, "–") for m in shown}} for pair, row in cells.items()])
        parts.append(f"### Pairwise: {dataset} · reader {reader}\n\n{table.to_markdown(index=False)}\n")
    if not parts:
        return ""
    n_pairs = pairs.groupby(["dataset", "reader", "metric"]).size().max()
    parts.append(f"Pairwise cells: wins/ties/losses of the pair's first reranker against the second over the queries "
                 f"both have (the same queries as the leaderboard's means), and in parentheses the p-value of the "
                 f"exact McNemar test (0/1 metrics) or the paired randomization test (graded ones), Holm-corrected "
                 f"over the pairs of each metric (up to {n_pairs}); † = p < {ALPHA}. `pairs.csv` has every metric, "
                 f"the mean difference and the raw p-values.")
    return "\n".join(parts)


# --- LaTeX ------------------------------------------------------------------------------------------------------------

LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(df: pd.DataFrame, opts: ReportOptions) -> str:
    """The Markdown leaderboard's tables as LaTeX tables in booktabs rules: the same cells, † marks and CIs; names
    escaped."""
    parts = [f"% leaderboard.tex: needs \\usepackage{{booktabs}}. Cells: mean [95% bootstrap CI]; "
             f"$^\\dagger$: differs from {opts.baseline} at p < {ALPHA} after Holm correction (see leaderboard.md)."]
    for dataset, reader, _, table in _tables(df, opts, dagger=r"$^\dagger$", missing="--"):
        header = " & ".join(latex_escape(c) for c in table.columns)
        body = [" & ".join(latex_escape(v) if j == 0 else str(v) for j, v in enumerate(row)) + r" \\"
                for row in table.itertuples(index=False)]
        caption = (f"{latex_escape(dataset)}, reader {latex_escape(reader)}: mean [95\\% bootstrap CI]; "
                   f"$^\\dagger$ differs from {latex_escape(opts.baseline)} at $p < {ALPHA}$ (Holm).")
        parts.append("\n".join([r"\begin{table}[t]", r"\centering", f"\\caption{{{caption}}}",
                                f"\\begin{{tabular}}{{l{'r' * (len(table.columns) - 1)}}}", r"\toprule",
                                header + r" \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}",
                                r"\end{table}"]))
    return "\n\n".join(parts) + "\n"


# --- sections from what the run persisted: judge agreement, costs ---------------------------------------------------

def _with_ci(triple: Sequence[float | None]) -> str:
    value, lo, hi = triple
    return "–" if value is None or value != value else f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def measured_agreement(judge: str, measured: Mapping[str, Mapping[str, Any]] | None) -> str:
    """What ``bench judge-eval`` measured of this judge spec with this prompt version against human verdicts (one
    clause per labelled set), or how to measure it."""
    if not measured:
        return (f"Not measured against human verdicts with this prompt: `python -m bench judge-eval --judge {judge}` "
                f"does (docs/answer-metrics.md).")
    found = [f"on {name} ({'' if m['rows'] == 'all rows' else m['rows'] + ' of '}{m['of']:,} labelled answers, "
             f"{m['n']} valid verdicts, prompt `{m['prompt']}`): agreement {_with_ci(m['agreement'])}, κ "
             f"{_with_ci(m['kappa'])}" for name, m in measured.items()]
    return "Measured against human verdicts (`bench judge-eval`) " + "; ".join(found) + "."


def judge_agreement(records: Sequence[QueryRecord], judge: str,
                    measured: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
    """Cohen's κ of the judge's verdicts with lexical accuracy over the judged answers, the unparseable verdicts,
    and the judge's measured agreement with human verdicts (``measured``: ``bench.judges.measurements`` of its spec
    and prompt); None when nothing was judged."""
    judged = [r for r in records if r.status == "ok" and "judge" in r.metrics and "accuracy" in r.metrics]
    invalid = sum(1 for r in records if r.info.get("judge", {}).get("valid") is False)
    if not (judged or invalid):
        return None
    kappa = cohens_kappa([r.metrics["judge"] == 1.0 for r in judged],
                         [r.metrics["accuracy"] == 1.0 for r in judged]) if judged else float("nan")
    return (f"Judge `{judge}`: Cohen's κ with lexical accuracy = {kappa:.3f} over {len(judged)} judged answers; "
            f"{invalid} unparseable verdicts (recorded as invalid, not scored). {measured_agreement(judge, measured)}")


def trained_rerankers(records: Sequence[QueryRecord]) -> str | None:
    """One line per reranker whose rankings say what it was trained with (an RRPO checkpoint's reader, reward and
    data: ``info.reranker.trained_with``); None when no reranker of the run was trained so."""
    seen: dict[str, dict] = {}
    for r in records:
        identity = r.info.get("reranker", {})
        if isinstance(identity, dict) and identity.get("trained_with"):
            seen.setdefault(r.reranker, identity)
    if not seen:
        return None
    lines = ["### Trained rerankers", ""]
    for name, identity in seen.items():
        t = identity["trained_with"]
        noisy = t.get("reward_noise", "none") != "none"
        noise = f", reward noise {t['reward_noise']} p={t['noise_p']:g}" if noisy else ""
        limit = f" (first {t['limit']})" if t.get("limit") else ""
        expansion = f", queries expanded by Query2Doc with `{t['query2doc']}`" if t.get("query2doc") else ""
        lines.append(f"- `{name}` (checkpoint `{identity.get('checkpoint')}`): {t['backbone']} trained with reader "
                     f"`{t['reader']}`, reward {t['metric']}{noise}, on {t['dataset']}/{t['split']}{limit}"
                     f"{expansion}, k_train = {t['k']}, {t['steps']} steps")
    return "\n".join(lines)


def cost_report(costs: Mapping[str, Any]) -> str:
    """The cost section from ``costs.json``, which each invocation of ``bench run`` rewrites with its own calls."""
    llm = costs.get("llm", {})
    lines = ["### Cost of the last invocation", "",
             "From `costs.json`: what the last `bench run` of this folder did (an earlier, interrupted invocation's "
             "calls are not in it; its answers count as cache hits here).", ""]
    if llm:
        lines += ["| LLM | calls made | attempts sent | retries | failed attempts | failed calls | cache hits | "
                  "tokens in | tokens out |", "|---|---|---|---|---|---|---|---|---|"]
        for spec, s in llm.items():
            lines.append(f"| {spec} | {s['calls']} | {s.get('attempts', s['calls'])} | {s.get('retries', 0)} | "
                         f"{s.get('failed_attempts', s['errors'])} | {s['errors']} | {s['hits']} | "
                         f"{s['prompt_tokens']} | {s['completion_tokens']} |")
        lines.append("")
    lines += ["| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in costs.get("stage_seconds", {}).items()]
    return "\n".join(lines + utility_cost_lines(costs.get("utility", {})))


def utility_cost_lines(utility: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The utility labels' part of the cost section: pairs labelled, reader calls made for them, and per reranker
    judged by eRAG alone the reading it needed against end to end."""
    if not utility:
        return []
    lines = ["", "Utility labels (one single-passage reader call per (question, passage) pair in the union of every "
             "reranker's top depth; pairs labelled by an earlier invocation are reused):", "",
             "| dataset | reader | pairs | labelled before | read now | LLM calls made | failed |",
             "|---|---|---|---|---|---|---|"]
    judged = []
    for dataset, readers in utility.items():
        for reader, u in readers.items():
            lines.append(f"| {dataset} | {reader} | {u['pairs']} | {u['labelled_before']} | {u['read_now']} | "
                         f"{u['llm_calls']} | {u['failed']} |")
            judged += [(dataset, reader, name, r) for name, r in u["rerankers"].items()]
    if judged:
        lines += ["", "Rerankers judged by eRAG from the labels (`--utility-only`): single-passage reads of pairs no "
                  "other reranker or earlier run labelled, against end to end (one reader call of top-k passages per "
                  "question):", "",
                  "| dataset | reader | reranker | questions | top-depth pairs | new pairs read | end-to-end calls "
                  "(passages) | calls saved |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {d} | {rd} | {name} | {r['questions']} | {r['top_depth_pairs']} | {r['new_pairs']} | "
                  f"{r['end_to_end_calls']} ({r['end_to_end_passages']}) | {r['calls_saved']} |"
                  for d, rd, name, r in judged]
    return lines


def cross_reader_matrix(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """reranker × reader table of one metric (per dataset, concatenated with a dataset level)."""
    return df.pivot_table(index=["dataset", "reranker"], columns="reader", values=metric, sort=False)


def row_labels(matrix: pd.DataFrame) -> list[str]:
    return [" / ".join(map(str, i)) for i in matrix.index]


def plot_matrix(matrix: pd.DataFrame, metric: str, path: Path) -> None:
    import matplotlib  # lazy: matplotlib only when a plot is drawn

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


@dataclass
class Report:
    """Every table of a leaderboard, computed from records and not yet written: what ``bench run`` and ``bench
    report`` write into a run folder (``write``) and what ``bench.compare`` returns."""

    leaderboard: pd.DataFrame               # leaderboard.csv
    pairs: pd.DataFrame                     # pairs.csv
    matrices: dict[str, pd.DataFrame]       # matrix_<metric>.csv (several readers only)
    answer_positions: pd.DataFrame          # answer_position.csv (records naming their answer-bearing passages)
    options: ReportOptions
    markdown: str                           # leaderboard.md, less its final newline

    def to_markdown(self) -> str:
        """The Markdown ``bench report`` prints: leaderboards, pairwise tables and the sections the records allow."""
        return self.markdown

    def to_latex(self) -> str:
        """leaderboard.tex: the leaderboards as booktabs tables."""
        return to_latex(self.leaderboard, self.options)

    def to_csv(self, path: str | Path | None = None, table: str = "leaderboard") -> str | None:
        """leaderboard.csv (``table="pairs"``: pairs.csv) as text, or written to ``path`` (then None), as pandas
        does."""
        frames = {"leaderboard": self.leaderboard, "pairs": self.pairs}
        if table not in frames:
            raise ValueError(f"table={table!r}: expected one of {', '.join(frames)}")
        return frames[table].to_csv(path, index=False)

    def write(self, out_dir: Path) -> None:
        """The report's files in a run folder: leaderboard.csv/.md/.tex, pairs.csv and the cross-reader matrices
        (CSV and PNG)."""
        self.to_csv(out_dir / "leaderboard.csv")
        (out_dir / "leaderboard.tex").write_text(self.to_latex())
        for m, matrix in self.matrices.items():
            matrix.to_csv(out_dir / f"matrix_{m}.csv")
            plot_matrix(matrix, m, out_dir / f"matrix_{m}.png")
        self.to_csv(out_dir / "pairs.csv", table="pairs")
        if not self.answer_positions.empty:
            self.answer_positions.to_csv(out_dir / "answer_position.csv", index=False)
        (out_dir / "leaderboard.md").write_text(self.markdown + "\n")


def build_report(records: Sequence[QueryRecord], opts: ReportOptions, judge: str | None = None,
                 costs: Mapping[str, Any] | None = None,
                 judge_measured: Mapping[str, Mapping[str, Any]] | None = None) -> Report:
    """The leaderboards, pairwise tests and, with several readers, cross-reader matrices of ``records``. ``judge``
    (its engine spec) adds the judge-agreement section (with ``judge_measured``, its measurements against human
    verdicts), ``costs`` (a run's costs.json) the cost section."""
    df = leaderboard(records, opts)
    md = to_markdown(df, opts)
    matrices = {}
    if df["reader"].nunique() > 1:
        for m in [c for c in ("F1", "accuracy", "judge") if c in df.columns]:
            matrices[m] = matrix = cross_reader_matrix(df, m)
            shown = matrix.set_axis(row_labels(matrix), axis=0)
            md += f"\n\n### {m}: reranker × reader\n\n{shown.to_markdown(floatfmt='.3f')}\n"
    pairs = pairwise(records, opts)
    positions = answer_position_table(records, opts.top_k)
    sections = [pairs_markdown(pairs, _headline_columns(df, opts.top_k)),
                answer_position_markdown(positions, opts.top_k, opts.primary_metric),
                trained_rerankers(records), judge_agreement(records, judge, judge_measured) if judge else None,
                cost_report(costs) if costs else None]
    md = "\n\n".join([md, *(s for s in sections if s)])
    return Report(leaderboard=df, pairs=pairs, matrices=matrices, answer_positions=positions, options=opts,
                  markdown=md)


def write_reports(records: Sequence[QueryRecord], out_dir: Path, opts: ReportOptions, judge: str | None = None,
                  costs: Mapping[str, Any] | None = None,
                  judge_measured: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Write leaderboard.csv, leaderboard.md, leaderboard.tex, pairs.csv, answer_position.csv (where records name
    their answer-bearing passages) and, with several readers, cross-reader matrices; return the Markdown. Everything comes from the records and files the run folder keeps, so ``bench
    report`` rewrites what the run wrote."""
    report = build_report(records, opts, judge, costs, judge_measured)
    report.write(out_dir)
    return report.markdown
