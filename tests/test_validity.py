"""The validity report's estimators on handmade records: query-level τ_b and ρ equal scipy's on the same vectors,
the system-level τ and its bootstrap CI, and the pairwise agreement of significant differences."""
import math

import numpy as np
import pytest
from scipy import stats

from bench.report import ReportOptions
from bench.types import QueryRecord
from bench.validity import agreement, kendall_tau_b, spearman_rho, system_tau, validity_report, validity_table
from bench.report import pairwise

RNG = np.random.default_rng(7)
N = 12
VALUES = {name: {"nDCG@10": RNG.choice([0.0, 0.3, 0.6, 1.0], N), "accuracy": RNG.integers(0, 2, N).astype(float),
                 "F1": RNG.choice([0.0, 0.5, 1.0], N)} for name in ("none", "minilm", "oracle")}


def record(reranker: str, i: int, metrics: dict, status: str = "ok") -> QueryRecord:
    return QueryRecord(dataset="toy", reader="r", reranker=reranker, qid=f"q{i}", question="?", gold_answers=["x"],
                       ranking=["d"], answer="x", metrics=metrics, status=status)


def records_of(values: dict) -> list[QueryRecord]:
    return [record(name, i, {m: float(v[i]) for m, v in metrics.items()})
            for name, metrics in values.items() for i in range(len(next(iter(metrics.values()))))]


def test_tau_b_and_rho_by_hand_with_ties():
    assert kendall_tau_b([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # a tie in x: concordant 2, discordant 0, pairs untied in x 2 of 3, in y 3 of 3
    assert kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(2 * 3))
    assert spearman_rho([1, 1, 2], [1, 2, 3]) == pytest.approx(np.corrcoef([1.5, 1.5, 3], [1, 2, 3])[0, 1])
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3])) and math.isnan(spearman_rho([0, 1], [1, 1]))


def test_query_level_tau_and_rho_equal_scipy_per_reranker_and_pooled():
    table, per = validity_table(records_of(VALUES), ReportOptions(top_k=3), n_resamples=50)
    for answer in ("accuracy", "F1"):
        xs, ys = [], []
        for name, v in VALUES.items():
            row = per[(per["reranker"] == name) & (per["retrieval"] == "nDCG@10") & (per["answer"] == answer)]
            assert row["n"].item() == N
            assert row["tau_b"].item() == pytest.approx(stats.kendalltau(v["nDCG@10"], v[answer]).statistic)
            assert row["rho"].item() == pytest.approx(stats.spearmanr(v["nDCG@10"], v[answer]).statistic)
            xs += list(v["nDCG@10"])
            ys += list(v[answer])
        row = table[(table["retrieval"] == "nDCG@10") & (table["answer"] == answer)]
        assert row["n_pairs"].item() == 3 * N
        assert row["tau_b"].item() == pytest.approx(stats.kendalltau(xs, ys).statistic)
        assert row["rho"].item() == pytest.approx(stats.spearmanr(xs, ys).statistic)
        means_r = [VALUES[n]["nDCG@10"].mean() for n in VALUES]
        means_a = [VALUES[n][answer].mean() for n in VALUES]
        assert row["system_tau"].item() == pytest.approx(stats.kendalltau(means_r, means_a).statistic)
    # F1 against accuracy is not a (retrieval, answer) pair; nDCG@10 is never an answer
    assert set(table["retrieval"]) == {"nDCG@10"} and set(table["answer"]) == {"accuracy", "F1"}


def test_system_tau_by_hand_and_its_bootstrap_ci():
    # every question orders the rerankers the same way: retrieval a < b < c, answer a < c < b
    retrieval = {"a": {f"q{i}": 0.2 for i in range(5)}, "b": {f"q{i}": 0.5 for i in range(5)},
                 "c": {f"q{i}": 0.8 for i in range(5)}}
    answer = {"a": {f"q{i}": 0.1 for i in range(5)}, "b": {f"q{i}": 0.3 for i in range(5)},
              "c": {f"q{i}": 0.2 for i in range(5)}}
    tau, lo, hi, n, undefined = system_tau(retrieval, answer, n_resamples=200)
    assert (tau, lo, hi, n, undefined) == (pytest.approx(1 / 3), pytest.approx(1 / 3), pytest.approx(1 / 3), 5, 0)
    # questions that disagree: the CI widens around the point estimate, over the questions all rerankers have
    answer["c"]["q0"] = 1.0
    del retrieval["a"]["q4"]
    tau, lo, hi, n, _ = system_tau(retrieval, answer, n_resamples=500)
    assert n == 4 and tau == pytest.approx(1.0) and lo < tau <= hi


def test_pairwise_agreement_counts():
    values = {"a": {"nDCG@10": [0.9] * 30, "accuracy": [1.0] * 30},
              "b": {"nDCG@10": [0.1] * 30, "accuracy": [1.0] * 30},
              "c": {"nDCG@10": [0.5] * 30, "accuracy": [0.0] * 30},
              "d": {"nDCG@10": [0.95] * 30, "accuracy": [1.0] * 30},
              "e": {"nDCG@10": [0.9] * 30, "accuracy": [1.0] * 30}}
    recs = records_of({n: {m: np.array(v) for m, v in ms.items()} for n, ms in values.items()})
    pairs = pairwise(recs, ReportOptions(n_resamples=2000))
    # both say: a-c, c-d, c-e; opposite: b-c (nDCG says c, accuracy b); a-e the same system; the other five pairs
    # tie on accuracy and differ on nDCG
    assert agreement(pairs, "nDCG@10", "accuracy") == {"agree": 3, "disagree": 1, "one n.s.": 5, "both n.s.": 1}


def test_report_files_and_utility_only_records_left_out(tmp_path):
    recs = records_of(VALUES) + [record("new", i, {"nDCG@10": 1.0}, status="utility_only") for i in range(N)]
    md = validity_report(recs, tmp_path, ReportOptions(top_k=3), n_resamples=50)
    assert "### toy · reader r · accuracy" in md and "| nDCG@10 " in md
    assert (tmp_path / "validity.csv").is_file() and (tmp_path / "validity_toy__r__F1.png").is_file()
    table, _ = validity_table(recs, ReportOptions(top_k=3), n_resamples=50)
    assert set(table["rerankers"]) == {3}
    with pytest.raises(Exception, match="more than one of the run folders"):
        validity_report(recs + recs[:1], tmp_path, ReportOptions(top_k=3), n_resamples=10)


def test_query_tau_ci_resamples_questions_with_all_their_pairs():
    from bench.validity import query_tau_ci

    # within every question the pairs are concordant, and across questions too: every resample has τ_b = 1
    ordered = {f"q{i}": [(i, i), (i + 0.5, i + 0.5)] for i in range(6)}
    assert query_tau_ci(ordered, n_resamples=200) == (pytest.approx(1.0), pytest.approx(1.0))
    # one question reverses its pair: a resample without it has τ_b = 1, so the CI reaches 1 and lies below it too
    ordered["q5"] = [(5, 5.5), (5.5, 5)]
    x = [p[0] for ps in ordered.values() for p in ps]
    y = [p[1] for ps in ordered.values() for p in ps]
    lo, hi = query_tau_ci(ordered, n_resamples=500)
    assert lo < stats.kendalltau(x, y).statistic < hi == pytest.approx(1.0)
