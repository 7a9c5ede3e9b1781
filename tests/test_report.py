import math

import pandas as pd
import pytest

from bench.report import ReportOptions, leaderboard, to_markdown, write_reports
from bench.stats import paired_tests
from bench.types import QueryRecord


def rec(reranker, qid, f1, acc, reader="r1", status="ok"):
    metrics = {} if status != "ok" else {"nDCG@10": f1 / 2, "F1": f1, "accuracy": acc}
    return QueryRecord(dataset="d", reranker=reranker, reader=reader, qid=qid, question="q", gold_answers=["a"],
                       ranking=[], answer=None if status != "ok" else "a", metrics=metrics, status=status)


BASE_F1 = [0.0, 0.5, 1.0, 0.2, 0.4, 0.0] * 2
GOOD_F1 = [1.0, 1.0, 0.9, 0.9, 1.0, 0.8] * 2
N = len(BASE_F1)


def records():
    out = []
    for i, (b, g) in enumerate(zip(BASE_F1, GOOD_F1)):
        out.append(rec("none", f"q{i}", b, float(b > 0.3)))
        out.append(rec("good", f"q{i}", g, 1.0))
        out.append(rec("flaky", f"q{i}", b, float(b > 0.3), status="failed" if i == 0 else "ok"))
    return out


def test_means_counts_and_pvalues_trace_to_records():
    df = leaderboard(records(), ReportOptions(baseline="none", n_resamples=1000)).set_index("reranker")
    assert df.loc["good", "F1"] == pytest.approx(sum(GOOD_F1) / N)
    assert df.loc["none", "nDCG@10"] == pytest.approx(sum(BASE_F1) / (2 * N))
    # the failed query is counted, not averaged
    assert (df.loc["flaky", "n"], df.loc["flaky", "failed"]) == (N - 1, 1)
    assert df.loc["flaky", "F1"] == pytest.approx(sum(BASE_F1[1:]) / (N - 1))
    # paired on the shared answered queries only
    expected = paired_tests(GOOD_F1, BASE_F1, n_resamples=1000)
    assert df.loc["good", "F1_p_t"] == pytest.approx(expected.p_ttest)
    assert df.loc["good", "F1_p_rand"] == pytest.approx(expected.p_randomization)
    assert math.isnan(df.loc["none", "F1_p_t"])
    # Holm over the two non-baseline rerankers: flaky is identical to baseline on its queries (p=1)
    assert df.loc["good", "F1_p_t_holm"] == pytest.approx(min(1, 2 * expected.p_ttest))
    assert df.loc["flaky", "F1_p_t_holm"] == 1.0
    assert df.loc["good", "F1_ci_lo"] <= df.loc["good", "F1"] <= df.loc["good", "F1_ci_hi"]


def test_markdown_marks_significance_and_explains():
    opts = ReportOptions(baseline="none", n_resamples=1000)
    md = to_markdown(leaderboard(records(), opts), opts)
    good_line = next(l for l in md.splitlines() if l.startswith("| good"))
    flaky_line = next(l for l in md.splitlines() if l.startswith("| flaky"))
    assert "†" in good_line.split("|")[-3]            # F1 of good vs none: better on 10 of 12 queries
    assert "†" not in flaky_line
    assert "Holm" in md and "randomization" in md


def test_cross_reader_matrix_written(tmp_path):
    recs = records() + [rec(r.reranker, r.qid, r.metrics.get("F1", 0), 1.0, reader="r2") for r in records()
                        if r.status == "ok"]
    md = write_reports(recs, tmp_path, ReportOptions(n_resamples=200))
    assert (tmp_path / "matrix_F1.png").stat().st_size > 1000
    matrix = pd.read_csv(tmp_path / "matrix_F1.csv", index_col=[0, 1])
    assert list(matrix.columns) == ["r1", "r2"]
    assert matrix.loc[("d", "good"), "r1"] == pytest.approx(sum(GOOD_F1) / N)
    assert "reranker × reader" in md
    csv = pd.read_csv(tmp_path / "leaderboard.csv")
    assert {"F1_p_t", "F1_p_rand", "F1_p_rand_holm", "F1_ci_lo"} <= set(csv.columns)


def binary_records():
    """100 questions, one system against `none`. accuracy: the system wins 9 discordant pairs and loses 2; EM: wins
    4, loses 0; F1: graded, the system 0.3 higher on 30 questions."""
    out = []
    for i in range(100):
        base_acc, sys_acc = (0.0, 1.0) if i < 9 else (1.0, 0.0) if i < 11 else (float(i % 2), float(i % 2))
        base_em, sys_em = (0.0, 1.0) if i < 4 else (0.0, 0.0)
        base_f1 = (i % 7) / 10
        sys_f1 = base_f1 + (0.3 if i % 3 == 0 and i < 90 else 0.0)
        for reranker, acc, em, f1 in (("none", base_acc, base_em, base_f1), ("sys", sys_acc, sys_em, sys_f1)):
            out.append(QueryRecord(dataset="d", reranker=reranker, reader="r", qid=f"q{i}", question="q",
                                   gold_answers=["a"], ranking=[], answer="a",
                                   metrics={"nDCG@10": f1, "EM": em, "F1": f1, "accuracy": acc}, status="ok"))
    return out


def test_binary_metrics_get_the_exact_mcnemar_p_and_answer_metrics_one_holm_family():
    opts = ReportOptions(baseline="none", n_resamples=1000)
    df = leaderboard(binary_records(), opts).set_index("reranker")
    sys = df.loc["sys"]
    # exact McNemar, by hand: 9 vs 2 -> 2 (C(11,9) + C(11,10) + C(11,11)) / 2^11 = 134 / 2048; 4 vs 0 -> 2 / 16
    assert sys["accuracy_p_exact"] == pytest.approx(134 / 2048, abs=1e-12)
    assert sys["EM_p_exact"] == pytest.approx(2 / 16, abs=1e-12)
    assert sys["accuracy_p_t"] < 0.05 < sys["accuracy_p"]             # the t-test is optimistic on 0/1 data
    assert math.isnan(sys["F1_p_exact"]) and sys["F1_p"] == sys["F1_p_rand"] == pytest.approx(2 / 1001)
    # Holm over {EM, F1, accuracy} x {sys}: F1 (2/1001, Monte Carlo's floor) x 3, then accuracy x 2, then EM x 1,
    # kept monotone
    assert sys["F1_p_holm"] == pytest.approx(6 / 1001)
    assert sys["accuracy_p_holm"] == pytest.approx(2 * 134 / 2048)
    assert sys["EM_p_holm"] == pytest.approx(2 * 134 / 2048)           # 0.125 raised to the previous step
    assert sys["nDCG@10_p_holm"] == pytest.approx(sys["nDCG@10_p_rand"])   # retrieval: its own family
    md = to_markdown(leaderboard(binary_records(), opts), opts)
    sys_line = next(line for line in md.splitlines() if line.startswith("| sys"))
    cells = dict(zip(["nDCG@10", "EM", "F1", "accuracy"], sys_line.split("|")[4:8]))
    assert "†" in cells["F1"] and "†" not in cells["accuracy"] and "†" not in cells["EM"]
    assert "F1 (primary)" in md.splitlines()[2]                        # the table's header
    assert ("Holm families: answer metrics {EM, F1, accuracy} × rerankers {sys} as one family (3 tests); "
            "nDCG@10: each metric across the 1 reranker(s).") in md
    assert "exact McNemar" in md and "Primary metric, declared before the run: F1" in md
    other = ReportOptions(baseline="none", n_resamples=1000, primary_metric="accuracy")
    assert "accuracy (primary)" in to_markdown(leaderboard(binary_records(), other), other)
