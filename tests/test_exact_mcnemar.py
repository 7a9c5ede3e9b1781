"""benchmarks/exact_mcnemar.py: exact McNemar p-values of a run's 0/1 metrics against a baseline, paired by question."""
from __future__ import annotations

import json

import pytest

from bench.errors import UserError
from bench.types import QueryRecord
from benchmarks.exact_mcnemar import exact_mcnemar, main, mcnemar_table


def record(reranker: str, qid: str, accuracy: float, f1: float) -> QueryRecord:
    return QueryRecord("ds", reranker, "smollm2", qid, "q?", ["a"], [], "a",
                       {"accuracy": accuracy, "F1": f1, "nDCG@10": 0.5})


def test_exact_mcnemar_counts_discordant_pairs_and_is_two_sided():
    # b = 7, c = 1 (two concordant pairs do not count): p = 2 * P(X <= 1 | 8, 1/2) = 2 * 9 / 256
    system = [1] * 7 + [0] + [1, 0]
    baseline = [0] * 7 + [1] + [1, 0]
    assert exact_mcnemar(system, baseline) == (7, 1, pytest.approx(18 / 256, abs=1e-12))
    assert exact_mcnemar(baseline, system) == (1, 7, pytest.approx(18 / 256, abs=1e-12))
    assert exact_mcnemar([1, 0, 1], [1, 0, 1]) == (0, 0, 1.0)
    assert exact_mcnemar([1, 0], [0, 1]) == (1, 1, 1.0)


def test_table_pairs_by_question_keeps_only_0_1_metrics_and_holm_corrects():
    # rrpo beats minilm on q0..q6, loses on q7; "flat" equals minilm except q0 (b = 1, c = 0: p = 1).
    records = [record("minilm", f"q{i}", 1.0 if i == 7 else 0.0, 0.3) for i in range(8)]
    records += [record("rrpo", f"q{i}", 0.0 if i == 7 else 1.0, 0.5 + i / 100) for i in reversed(range(8))]
    records += [record("flat", f"q{i}", 1.0 if i in (0, 7) else 0.0, 0.3) for i in range(8)]
    table = mcnemar_table(records, "minilm").set_index("reranker")
    assert list(table["metric"]) == ["accuracy", "accuracy"]          # F1 and nDCG@10 are not 0/1
    rrpo, flat = table.loc["rrpo"], table.loc["flat"]
    assert (rrpo["b"], rrpo["c"], rrpo["n"]) == (7, 1, 8) and rrpo["p_exact"] == pytest.approx(18 / 256)
    assert (rrpo["system"], rrpo["baseline_value"]) == (7 / 8, 1 / 8)
    assert (flat["b"], flat["c"], flat["p_exact"]) == (1, 0, 1.0)
    assert rrpo["p_holm"] == pytest.approx(2 * 18 / 256) and flat["p_holm"] == 1.0


def test_command_reads_a_run_folder_and_names_a_missing_baseline(tmp_path, capsys):
    records = [record("minilm", "q0", 0.0, 0.1), record("rrpo", "q0", 1.0, 0.9)]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    assert main([str(tmp_path), "--baseline", "minilm"]) == 0
    out = capsys.readouterr().out
    assert "| rrpo " in out and "accuracy" in out
    with pytest.raises(UserError, match="no 0/1 answer metric with records of baseline 'bm25'"):
        main([str(tmp_path), "--baseline", "bm25"])
    with pytest.raises(UserError, match="no records.jsonl"):
        main([str(tmp_path / "missing"), "--baseline", "minilm"])
