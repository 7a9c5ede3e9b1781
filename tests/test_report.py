import math

import pandas as pd
import pytest

from bench.report import ReportOptions, leaderboard, pairs_markdown, pairwise, to_markdown, write_reports
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
    6, loses 0; F1: graded, the system 0.3 higher on 30 questions."""
    out = []
    for i in range(100):
        base_acc, sys_acc = (0.0, 1.0) if i < 9 else (1.0, 0.0) if i < 11 else (float(i % 2), float(i % 2))
        base_em, sys_em = (0.0, 1.0) if i < 6 else (0.0, 0.0)
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
    # exact McNemar, by hand: 9 vs 2 -> 2 (C(11,9) + C(11,10) + C(11,11)) / 2^11 = 134 / 2048; 6 vs 0 -> 2 / 64
    assert sys["accuracy_p_exact"] == pytest.approx(134 / 2048, abs=1e-12)
    assert sys["EM_p_exact"] == pytest.approx(2 / 64, abs=1e-12)
    assert sys["accuracy_p_t"] < 0.05 < sys["accuracy_p"]             # the t-test is optimistic on 0/1 data
    assert math.isnan(sys["F1_p_exact"]) and sys["F1_p"] == sys["F1_p_rand"] == pytest.approx(2 / 1001)
    # Holm over {EM, F1, accuracy} x {sys}: F1 (2/1001, Monte Carlo's floor) x 3, then EM x 2, then accuracy x 1
    assert sys["F1_p_holm"] == pytest.approx(6 / 1001)
    assert sys["EM_p_holm"] == pytest.approx(2 * 2 / 64)                # significant alone (0.031), not in the family
    assert sys["accuracy_p_holm"] == pytest.approx(134 / 2048)
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


def test_retrieval_means_cover_failed_queries_so_rerankers_compare_on_the_same_queries():
    """flaky's reader failed on q0 (its ranking, nDCG 0.0, is valid): nDCG averages all 12 queries for both
    rerankers, F1 only flaky's 11 answered ones."""
    recs = []
    for i, b in enumerate(BASE_F1):
        recs.append(rec("none", f"q{i}", b, 0.0))
        r = rec("flaky", f"q{i}", b, 0.0)
        if i == 1:
            r.status, r.metrics = "failed", {"nDCG@10": 0.0}
        recs.append(r)
    df = leaderboard(recs, ReportOptions(baseline="none", n_resamples=200)).set_index("reranker")
    assert df.loc["flaky", "nDCG@10"] == pytest.approx((sum(BASE_F1) - BASE_F1[1]) / 2 / N)
    assert df.loc["flaky", "F1"] == pytest.approx((sum(BASE_F1) - BASE_F1[1]) / (N - 1))
    assert (df.loc["flaky", "n"], df.loc["flaky", "failed"]) == (N - 1, 1)


def test_rows_show_judged_verdicts_and_queries_without_candidates():
    recs = []
    for i in range(4):
        r = rec("none", f"q{i}", 1.0, 1.0)
        if i < 2:                                    # two valid verdicts, one invalid, one query not judged
            r.metrics["judge"] = float(i)
        recs.append(r)
    recs.append(QueryRecord(dataset="d", reranker="none", reader="r1", qid="q9", question="q", gold_answers=["a"],
                            ranking=[], answer=None, metrics={}, status="no_candidates"))
    opts = ReportOptions(n_resamples=200)
    df = leaderboard(recs, opts).set_index("reranker")
    assert (df.loc["none", "n"], df.loc["none", "judged"], df.loc["none", "no_candidates"]) == (4, 2, 1)
    assert df.loc["none", "judge"] == 0.5 and df.loc["none", "F1"] == 1.0
    lines = to_markdown(leaderboard(recs, opts), opts).splitlines()
    header = [c.strip() for c in next(l for l in lines if l.startswith("| reranker")).split("|")[1:6]]
    row = [c.strip() for c in next(l for l in lines if l.startswith("| none")).split("|")[1:6]]
    assert header == ["reranker", "n", "judged", "failed", "no_candidates"]
    assert row == ["none", "4", "2", "0", "1"]


# --- all pairs, LaTeX ---------------------------------------------------------------------------------------------

PAIR_ACCURACY = {"A": [1, 1, 1, 1, 1, 1, 1, 1, 1],
                 "B": [0, 0, 0, 0, 0, 0, 0, 1, 1],
                 "C": [1, 1, 1, 1, 0, 0, 0, 1, None]}      # C's reader failed on q8: not in C's pairs


def pair_records():
    out = []
    for reranker, accs in PAIR_ACCURACY.items():
        for i, acc in enumerate(accs):
            failed = acc is None
            out.append(QueryRecord(dataset="d", reranker=reranker, reader="r", qid=f"q{i}", question="q",
                                   gold_answers=["a"], ranking=[], answer=None if failed else "a",
                                   metrics={} if failed else {"accuracy": float(acc), "F1": 0.25 + 0.5 * acc},
                                   status="failed" if failed else "ok"))
    return out


def test_pairwise_wins_ties_losses_and_holm_corrected_p_by_hand():
    pairs = pairwise(pair_records(), ReportOptions(baseline="B")).set_index(["metric", "reranker", "other"])
    acc = pairs.loc["accuracy"]
    # A vs B over 9 queries: 7 wins, 2 ties; exact McNemar 2 / 2^7. A vs C over C's 8: 3 wins -> 2 / 2^3.
    # B vs C: 4 losses -> 2 / 2^4.
    assert [tuple(acc.loc[p, ["n", "wins", "ties", "losses"]]) for p in [("A", "B"), ("A", "C"), ("B", "C")]] == \
        [(9, 7, 2, 0), (8, 3, 5, 0), (8, 0, 4, 4)]
    assert list(acc["test"]) == ["mcnemar"] * 3
    assert list(acc["p"]) == pytest.approx([1 / 64, 1 / 4, 1 / 8], abs=1e-12)
    # Holm over the 3 pairs: 3 * 1/64, then 2 * 1/8 = 1/4, then max(1/4, 1 * 1/4)
    assert list(acc["p_holm"]) == pytest.approx([3 / 64, 1 / 4, 1 / 4], abs=1e-12)
    assert acc.loc[("A", "B"), "mean_diff"] == pytest.approx(7 / 9)
    # F1 (0.25 / 0.75: graded): the exact randomization test, the same sign-flip count as McNemar here
    f1 = pairs.loc["F1"]
    assert list(f1["test"]) == ["randomization"] * 3
    assert list(f1["p"]) == pytest.approx([1 / 64, 1 / 4, 1 / 8], abs=1e-12)
    md = pairs_markdown(pairwise(pair_records(), ReportOptions(baseline="B")), ["F1", "accuracy"])
    assert "| A vs B | 7/2/0 (0.047†) | 7/2/0 (0.047†) |" in md
    assert "| B vs C | 0/4/4 (0.250)  | 0/4/4 (0.250)  |" in md
    assert "### Pairwise: d · reader r" in md and "Holm-corrected over the pairs of each metric (up to 3)" in md


def test_latex_table_has_the_markdown_cells_with_escaped_names(tmp_path):
    import dataclasses

    names = {"none": "none", "good": "go_od&50%", "flaky": "fl#ky~{x}"}
    recs = [dataclasses.replace(r, reranker=names[r.reranker], dataset="d$") for r in records()]
    opts = ReportOptions(baseline="none", n_resamples=1000)
    write_reports(recs, tmp_path, opts)
    tex = (tmp_path / "leaderboard.tex").read_text()
    md = (tmp_path / "leaderboard.md").read_text()
    assert [l for l in tex.splitlines() if l.startswith("\\")][:5] == [
        r"\begin{table}[t]", r"\centering", r"\caption{d\$, reader r1: mean [95\% bootstrap CI]; $^\dagger$ differs "
        r"from none at $p < 0.05$ (Holm).}", r"\begin{tabular}{lrrrrr}", r"\toprule"]
    assert r"reranker & n & failed & nDCG@10 & F1 (primary) & accuracy \\" in tex
    assert r"\midrule" in tex and r"\bottomrule" in tex
    escaped = {"none": "none", "go_od&50%": r"go\_od\&50\%", "fl#ky~{x}": r"fl\#ky\textasciitilde{}\{x\}"}
    for shown, latex in escaped.items():
        md_cells = [c.strip() for c in next(l for l in md.splitlines() if l.startswith(f"| {shown} ")).split("|")[2:-1]]
        row = next(l for l in tex.splitlines() if l.startswith(latex + " & "))
        assert row == " & ".join([latex, *(c.replace("†", r"$^\dagger$") for c in md_cells)]) + r" \\"
    good_row = next(l for l in tex.splitlines() if l.startswith(r"go\_od"))
    assert r"$^\dagger$ [" in good_row                  # F1 of good vs none: significant, with its CI


def test_trained_rerankers_say_what_trained_them():
    from bench.report import trained_rerankers

    trained = {"backbone": "minilm", "reader": "gemma3-270m", "metric": "f1", "reward_noise": "flip", "noise_p": 0.25,
               "dataset": "fictional-large", "split": "train", "limit": 40, "k": 3, "query2doc": "smollm2",
               "steps": 5}
    recs = [QueryRecord(dataset="d", reranker=name, reader="r", qid="q1", question="?", gold_answers=["x"],
                        ranking=["a"], answer="x", metrics={}, info=info)
            for name, info in (("minilm", {"reranker": {"name": "minilm"}}),
                               ("rrpo", {"reranker": {"checkpoint": "runs/x", "trained_with": trained}}))]
    assert trained_rerankers(recs) == (
        "### Trained rerankers\n\n- `rrpo` (checkpoint `runs/x`): minilm trained with reader `gemma3-270m`, reward f1, "
        "reward noise flip p=0.25, on fictional-large/train (first 40), queries expanded by Query2Doc with "
        "`smollm2`, k_train = 3, 5 steps")
    assert trained_rerankers(recs[:1]) is None
