"""Meta-evaluation: how far each retrieval metric predicts each answer metric on the run's own data and reader.

For each (dataset, reader) and each pair (retrieval metric R, answer metric A), over the records of one or more run
folders (the rerankers read end to end; ``utility_only`` ones have no answer metric and are left out):

- **query level** (as the eRAG paper reports): Kendall's τ_b and Spearman's ρ between R and A over the questions,
  per reranker and pooled over every (reranker, question) pair. τ_b is ``scipy.stats.kendalltau`` (variant "b":
  concordant minus discordant pairs over the geometric mean of the pairs not tied in each variable, so ties, common
  with 0/1 metrics, neither count for nor against); ρ is ``scipy.stats.spearmanr`` (Pearson correlation of average
  ranks: ties get their mean rank). A constant vector has no order: τ and ρ are NaN. The pooled τ_b has a 95%
  percentile bootstrap CI over questions (a resampled question brings its pairs of every reranker; resamples with
  an undefined τ are dropped).
- **system level** (the leaderboard reader's question: does R order the rerankers as A does?): τ_b between the
  rerankers' means of R and of A over the questions every compared reranker has both for, with a 95% percentile
  bootstrap CI: questions resampled with replacement (``n_resamples``, seeded), the means and τ_b recomputed on
  each resample; resamples where either mean vector is constant (τ undefined) are dropped and counted
  (``boot_undefined``).
- **pairwise agreement**: for each pair of rerankers, the direction of R's difference when it is significant and of
  A's (the leaderboard's tests: exact McNemar for 0/1 metrics, paired randomization otherwise; Holm over the pairs of
  each metric, α = 0.05): ``agree`` (both significant, same direction), ``disagree`` (both significant, opposite
  directions), ``one n.s.`` (exactly one significant), ``both n.s.``.

Written as ``validity.csv`` (every metric pair and each reranker's query-level values), ``validity.md`` (the
headline metrics) and ``validity_<dataset>__<reader>__<answer metric>.png`` (per-reranker means with bootstrap CIs,
one panel per retrieval metric, system τ in each title).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.errors import UserError
from bench.metrics import is_answer_metric
from bench.report import ALPHA, ReportOptions, _groups, metric_names, pairwise, scored_values
from bench.stats import bootstrap_ci
from bench.types import QueryRecord

HEADLINE_RELEVANCE = ("nDCG@10", "Recall@{k}", "MRR@10", "P@{k}")
HEADLINE_ANSWER = ("accuracy", "F1")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy import stats  # lazy: scipy only when a test is computed

    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(stats.kendalltau(x, y, variant="b").statistic)


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy import stats  # lazy: scipy only when a test is computed

    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def paired_by_query(retrieval: Mapping[str, float], answer: Mapping[str, float]) -> tuple[list[float], list[float]]:
    shared = [q for q in answer if q in retrieval]
    return [retrieval[q] for q in shared], [answer[q] for q in shared]


def query_tau_ci(pairs_by_question: Mapping[str, Sequence[tuple[float, float]]], n_resamples: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of the pooled query-level τ_b: questions resampled with replacement, each bringing
    its (retrieval, answer) pairs of every reranker."""
    questions = list(pairs_by_question)
    if not questions:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(n_resamples):
        drawn = [p for i in rng.integers(0, len(questions), size=len(questions))
                 for p in pairs_by_question[questions[i]]]
        t = kendall_tau_b([x for x, _ in drawn], [y for _, y in drawn])
        if not math.isnan(t):
            taus.append(t)
    if not taus:
        return math.nan, math.nan
    lo, hi = np.quantile(taus, [0.025, 0.975])
    return float(lo), float(hi)


def system_tau(retrieval: Mapping[str, Mapping[str, float]], answer: Mapping[str, Mapping[str, float]],
               n_resamples: int = 1000, seed: int = 0) -> tuple[float, float, float, int, int]:
    """τ_b between the rerankers' means of R and of A (reranker -> qid -> value) over the questions every reranker
    has both for; its bootstrap CI over those questions. Returns (τ, CI low, CI high, questions, undefined
    resamples)."""
    names = list(answer)
    questions = [q for q in answer[names[0]] if all(q in answer[n] and q in retrieval[n] for n in names)]
    if len(names) < 2 or not questions:
        return math.nan, math.nan, math.nan, len(questions), 0
    r = np.array([[retrieval[n][q] for q in questions] for n in names])
    a = np.array([[answer[n][q] for q in questions] for n in names])
    tau = kendall_tau_b(list(r.mean(axis=1)), list(a.mean(axis=1)))
    rng = np.random.default_rng(seed)
    taus, undefined = [], 0
    for _ in range(n_resamples):
        idx = rng.integers(0, len(questions), size=len(questions))
        t = kendall_tau_b(list(r[:, idx].mean(axis=1)), list(a[:, idx].mean(axis=1)))
        if math.isnan(t):
            undefined += 1
        else:
            taus.append(t)
    lo, hi = (np.quantile(taus, [0.025, 0.975]) if taus else (math.nan, math.nan))
    return tau, float(lo), float(hi), len(questions), undefined


def agreement(pairs: pd.DataFrame, retrieval: str, answer: str, alpha: float = ALPHA) -> dict[str, int]:
    """Counts of agree / disagree / one n.s. / both n.s. over the reranker pairs of one group (``pairs``: the
    rows of ``bench.report.pairwise`` for that group)."""
    def direction(metric: str) -> dict[tuple[str, str], int]:
        rows = pairs[pairs["metric"] == metric]
        return {(r["reranker"], r["other"]): (int(np.sign(r["mean_diff"])) if r["p_holm"] < alpha else 0)
                for _, r in rows.iterrows()}

    dr, da = direction(retrieval), direction(answer)
    counts = {"agree": 0, "disagree": 0, "one n.s.": 0, "both n.s.": 0}
    for pair in dr.keys() & da.keys():
        s, t = dr[pair], da[pair]
        key = ("both n.s." if s == t == 0 else "one n.s." if s == 0 or t == 0 else
               "agree" if s == t else "disagree")
        counts[key] += 1
    return counts


def validity_table(records: Sequence[QueryRecord], opts: ReportOptions,
                   n_resamples: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per (dataset, reader, retrieval metric, answer metric): pooled query-level τ_b and ρ, system τ_b with
    its CI, pairwise agreement counts; one row per (..., reranker): its query-level τ_b and ρ)."""
    answered = [r for r in records if r.status != "utility_only"]
    rows, per_reranker = [], []
    pairs = pairwise(answered, opts)
    for (dataset, reader), by_reranker in _groups(answered).items():
        metrics = metric_names([r for recs in by_reranker.values() for r in recs])
        answers = [m for m in metrics if is_answer_metric(m)]
        retrievals = [m for m in metrics if not is_answer_metric(m)]
        group_pairs = pairs[(pairs["dataset"] == dataset) & (pairs["reader"] == reader)]
        for a in answers:
            a_vals = {n: scored_values(recs, a) for n, recs in by_reranker.items()}
            a_vals = {n: v for n, v in a_vals.items() if v}
            if not a_vals:
                continue
            for m in retrievals:
                r_vals = {n: scored_values(by_reranker[n], m) for n in a_vals}
                if not any(r_vals.values()):
                    continue
                pooled_x, pooled_y = [], []
                by_question: dict[str, list[tuple[float, float]]] = {}
                for name in a_vals:
                    x, y = paired_by_query(r_vals[name], a_vals[name])
                    pooled_x += x
                    pooled_y += y
                    for q in (q for q in a_vals[name] if q in r_vals[name]):
                        by_question.setdefault(q, []).append((r_vals[name][q], a_vals[name][q]))
                    per_reranker.append({"dataset": dataset, "reader": reader, "retrieval": m, "answer": a,
                                         "reranker": name, "n": len(x), "tau_b": kendall_tau_b(x, y),
                                         "rho": spearman_rho(x, y)})
                tau, lo, hi, n_q, undefined = system_tau(r_vals, a_vals, n_resamples, opts.seed)
                rows.append({"dataset": dataset, "reader": reader, "retrieval": m, "answer": a,
                             "n_pairs": len(pooled_x), "tau_b": kendall_tau_b(pooled_x, pooled_y),
                             **dict(zip(("tau_b_ci_lo", "tau_b_ci_hi"),
                                        query_tau_ci(by_question, n_resamples, opts.seed))),
                             "rho": spearman_rho(pooled_x, pooled_y), "rerankers": len(a_vals),
                             "system_tau": tau, "system_tau_ci_lo": lo, "system_tau_ci_hi": hi,
                             "system_questions": n_q, "boot_undefined": undefined,
                             **agreement(group_pairs, m, a)})
    return pd.DataFrame(rows), pd.DataFrame(per_reranker)


def headline_retrieval(names: Sequence[str], top_k: int) -> list[str]:
    """The relevance headline metrics and every eRAG metric at the reader's k, in that order."""
    relevance = [m.format(k=top_k) for m in HEADLINE_RELEVANCE]
    return [m for m in relevance if m in names] + [m for m in names if m.startswith("eRAG-") and
                                                   m.endswith(f"@{top_k}")]


def to_markdown(table: pd.DataFrame, top_k: int) -> str:
    if table.empty:
        return "No (dataset, reader) group has both retrieval and answer metrics."
    parts = []
    shown = headline_retrieval(list(dict.fromkeys(table["retrieval"])), top_k)
    for (dataset, reader, answer), g in table.groupby(["dataset", "reader", "answer"], sort=False):
        if answer not in HEADLINE_ANSWER:
            continue
        g = g.set_index("retrieval").loc[[m for m in shown if m in set(g["retrieval"])]]
        view = pd.DataFrame({
            "retrieval metric": g.index,
            "query τ_b (pooled) [95% CI]": [f"{t:.3f} [{lo:.3f}, {hi:.3f}]" for t, lo, hi in
                                            zip(g["tau_b"], g["tau_b_ci_lo"], g["tau_b_ci_hi"])],
            "query ρ (pooled)": g["rho"].map("{:.3f}".format),
            "system τ_b [95% CI]": [f"{t:.3f} [{lo:.3f}, {hi:.3f}]" for t, lo, hi in
                                    zip(g["system_tau"], g["system_tau_ci_lo"], g["system_tau_ci_hi"])],
            "pairs agree / disagree / one n.s. / both n.s.": [
                f"{r['agree']} / {r['disagree']} / {r['one n.s.']} / {r['both n.s.']}" for _, r in g.iterrows()]})
        first = g.iloc[0]
        parts.append(f"### {dataset} · reader {reader} · {answer}\n\n{view.to_markdown(index=False)}\n\n"
                     f"{first['n_pairs']} (reranker, question) pairs; system τ over {first['rerankers']} rerankers "
                     f"and {first['system_questions']} questions.\n")
    parts.append("Query τ_b / ρ: Kendall τ_b and Spearman ρ between the retrieval metric and the answer metric of each "
                 "(reranker, question), pooled (per reranker in validity.csv); τ_b's CI: bootstrap over questions. "
                 "System τ_b: between the rerankers' "
                 "mean retrieval metric and mean answer metric, with a 95% percentile bootstrap CI over questions. "
                 f"Pairs: reranker pairs whose significant differences (Holm over the pairs, α = {ALPHA}) point the "
                 "same way, opposite ways, or are significant on one metric only, or on neither.")
    return "\n".join(parts)


def plot(records: Sequence[QueryRecord], table: pd.DataFrame, top_k: int, out_dir: Path, seed: int = 0) -> list[Path]:
    """Per (dataset, reader, headline answer metric): per-reranker means with bootstrap CIs, one panel per headline
    retrieval metric, system τ_b in its title."""
    import matplotlib  # lazy: matplotlib only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    groups = _groups([r for r in records if r.status != "utility_only"])
    for (dataset, reader, answer), g in table.groupby(["dataset", "reader", "answer"], sort=False):
        if answer not in HEADLINE_ANSWER:
            continue
        shown = headline_retrieval(list(dict.fromkeys(g["retrieval"])), top_k)
        by_reranker = groups[(dataset, reader)]
        cols = min(4, len(shown))
        rows = math.ceil(len(shown) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
        for ax, m in zip(axes.flat, shown):
            tau = g.set_index("retrieval").loc[m, "system_tau"]
            for name, recs in by_reranker.items():
                xs, ys = list(scored_values(recs, m).values()), list(scored_values(recs, answer).values())
                if not xs or not ys:
                    continue
                (xl, xh), (yl, yh) = bootstrap_ci(xs, seed=seed), bootstrap_ci(ys, seed=seed)
                x, y = float(np.mean(xs)), float(np.mean(ys))
                ax.errorbar(x, y, xerr=[[x - xl], [xh - x]], yerr=[[y - yl], [yh - y]], fmt="o", capsize=2)
                ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_title(f"{m}: system τ_b = {tau:.2f}", fontsize=8)
            ax.set_xlabel(m, fontsize=7)
            ax.set_ylabel(answer, fontsize=7)
        for ax in list(axes.flat)[len(shown):]:
            ax.axis("off")
        fig.suptitle(f"{dataset} · {reader}: retrieval metric vs {answer} (means, 95% CI)", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"validity_{_UNSAFE.sub('_', f'{Path(dataset).name}__{reader}__{answer}')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def validity_report(records: Sequence[QueryRecord], out_dir: Path, opts: ReportOptions,
                    n_resamples: int = 1000) -> str:
    """Write validity.csv, validity_per_reranker.csv, validity.md and the plots into ``out_dir``; return the
    Markdown. Records of several run folders may be given: a (dataset, reader, reranker) must come from one."""
    seen: dict[tuple[str, str, str, str], None] = {}
    for r in records:
        key = (r.dataset, r.reader, r.reranker, r.qid)
        if key in seen:
            raise UserError(f"reranker {r.reranker!r} on {r.dataset} with reader {r.reader} is in more than one of "
                            f"the run folders given; give each (dataset, reader, reranker) once")
        seen[key] = None
    table, per_reranker = validity_table(records, opts, n_resamples)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "validity.csv", index=False)
    per_reranker.to_csv(out_dir / "validity_per_reranker.csv", index=False)
    md = to_markdown(table, opts.top_k)
    if not table.empty:
        plot(records, table, opts.top_k, out_dir, opts.seed)
    (out_dir / "validity.md").write_text(md + "\n")
    return md
