"""``python -m rrpo study transfer|noisy|depth``: cells trained (or reused) and evaluated against real local
OpenAI-compatible readers (tests/llm_server.py), tables checked against the per-query records by hand, resume,
reuse, the budget, and bad options."""
from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from rerankers.registry import RERANKERS
from rrpo.__main__ import main
from rrpo.studies.base import default_training_settings
from rrpo.trainer import RRPOConfig
from tests.llm_server import ScriptedLLMServer, prompt_text
from tests.rrpo_standins import STANDIN_NAME, register_standin

# Two readers on one server, told apart by the request's model: "a" answers right only with doc3 in its documents,
# "b" also with doc5.
READERS = ["openai:reader-a", "openai:reader-b"]
# The studies default to evaluating with SmolLM2 and Gemma-3-270m; Gemma is an optional extra (`gemma`) that the
# test command does not install, so tests that build a study without a server evaluate with SmolLM2 alone.
SMOLLM2_ONLY = ["smollm2"]


def reply(body: dict) -> str:
    text = prompt_text(body).split("Question:")[0]
    good = ("doc3",) if body["model"] == "reader-a" else ("doc3", "doc5")
    return "Paris" if any(d in text for d in good) else "London"


def hotpot_file(path, n_questions: int = 6) -> str:
    """HotpotQA-format questions whose 8 paragraphs are the stand-in backbone's documents doc0..doc7."""
    rows = [{"_id": f"q{i}", "question": f"Which city is question {i} about?", "answer": "Paris",
             "context": [[f"Title {j}", [f"doc{j}"]] for j in range(8)], "supporting_facts": [["Title 3", 0]]}
            for i in range(n_questions)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def standin_backbone():
    register_standin()
    yield
    RERANKERS.remove(STANDIN_NAME)


@pytest.fixture
def server():
    with ScriptedLLMServer(reply=reply) as srv:
        yield srv


def study_argv(tmp_path, server, study: list[str], *extra: str) -> list[str]:
    return ["study", *study, "--dataset", hotpot_file(tmp_path / "hotpot.jsonl"), "--train-split", "dev",
            "--eval-split", "dev", "--train-limit", "4", "--epochs", "1", "--eval-readers", *READERS,
            "--train-option", f"backbone={STANDIN_NAME}", "first_stage=given", "pool=8", "temperature=1.0",
            "trainable=all", "rollouts=2", "queries_per_step=2", "lr=0.05", "--top-k", "1",
            "--base-url", server.base_url, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "study"),
            *extra]


def records(run_folder: str) -> list[dict]:
    return [json.loads(line) for line in open(f"{run_folder}/records.jsonl")]


def test_transfer_table_is_the_paired_comparison_of_the_records(tmp_path, server, standin_backbone, capsys):
    argv = study_argv(tmp_path, server, ["transfer", "--train-readers", *READERS])
    assert main(argv) == 0
    folder = tmp_path / "study"
    table = pd.read_csv(folder / "table.csv")
    assert list(zip(table["trained_with"], table["eval_reader"])) == [(t, e) for t in READERS for e in READERS]
    cells = json.loads((folder / "cells.json").read_text())
    assert [c["training"]["reader"] for c in cells.values()] == READERS
    for _, row in table.iterrows():
        recs = [r for r in records(row["run"]) if r["reader"] == row["eval_reader"]]
        by = {name: {r["qid"]: r["metrics"]["accuracy"] for r in recs if r["reranker"] == name}
              for name in (STANDIN_NAME, "rrpo")}
        assert row["n"] == len(by["rrpo"]) == 6
        base, rrpo = sum(by[STANDIN_NAME].values()) / 6, sum(by["rrpo"].values()) / 6
        assert row["accuracy_backbone"] == pytest.approx(base)
        assert row["accuracy_rrpo"] == pytest.approx(rrpo)
        assert row["accuracy_gain"] == pytest.approx(rrpo - base)
        wins = sum(by["rrpo"][q] > by[STANDIN_NAME][q] for q in by["rrpo"])
        losses = sum(by["rrpo"][q] < by[STANDIN_NAME][q] for q in by["rrpo"])
        expected = stats.binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
        assert row["accuracy_p"] == pytest.approx(expected)
        f1 = {r["metrics"]["F1"] for r in recs}
        assert row["accuracy_test"] == "mcnemar"
        assert row["F1_test"] == ("mcnemar" if f1 <= {0.0, 1.0} else "randomization")
        assert row["steps"] == row["planned_steps"] == 2
        # the checkpoint's rankings say which reader trained it
        ranking_info = next(r for r in recs if r["reranker"] == "rrpo")["info"]["reranker"]
        assert ranking_info["trained_with"]["reader"] == row["trained_with"]
    # Holm over every test of the table (2 metrics x 4 cells), step-down by hand
    ps = [p for m in ("F1", "accuracy") for p in table[f"{m}_p"]]
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    running, holm = 0.0, [0.0] * len(ps)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        holm[i] = running
    assert [p for m in ("F1", "accuracy") for p in table[f"{m}_p_holm"]] == pytest.approx(holm)
    md = (folder / "table.md").read_text()
    assert "F1 (primary)" in md and "Holm correction over all 8 tests" in md and "Scaled down" not in md
    assert (folder / "transfer_heatmap.png").stat().st_size > 10_000
    page = (folder / "report.html").read_text()       # the study's page: the heatmap inlined, each cell's run linked
    assert base64.b64encode((folder / "transfer_heatmap.png").read_bytes()).decode() in page
    for run in table["run"]:
        assert f'"href":"runs/{Path(run).name}/report.html"' in page and (Path(run) / "report.html").is_file()
    leaderboard = open(f"{table['run'][0]}/leaderboard.md").read()
    assert f"`rrpo` (checkpoint `{cells['trained-with-openai-reader-a']['checkpoint']}`): {STANDIN_NAME} trained " \
           f"with reader `openai:reader-a`, reward f1, on " in leaderboard

    # a re-run resumes: nothing is trained or asked again, and the table is rebuilt identically
    asked = server.count
    before = (folder / "table.csv").read_text()
    assert main(argv) == 0
    assert server.count == asked
    assert (folder / "table.csv").read_text() == before


def test_a_cell_reuses_a_finished_checkpoint_with_its_exact_options(tmp_path, server, standin_backbone):
    train = ["train", "--dataset", hotpot_file(tmp_path / "hotpot.jsonl"), "--split", "dev", "--limit", "4",
             "--epochs", "1", "--backbone", STANDIN_NAME, "--first-stage", "given", "--pool", "8", "--temperature",
             "1.0", "--trainable", "all", "--rollouts", "2", "--queries-per-step", "2", "--lr", "0.05",
             "--reader", READERS[0], "--base-url", server.base_url, "--cache-dir", str(tmp_path / "cache"),
             "--out", str(tmp_path / "trained")]
    # the shipped checkpoint's other settings, which the study starts from
    shipped = default_training_settings()
    given = {a[2:].replace("-", "_") for a in train if a.startswith("--")}
    for name, value in shipped.items():
        if name not in given and value != getattr(RRPOConfig(), name):
            train += [f"--{name.replace('_', '-')}", str(value)]
    assert main(train) == 0
    trained_requests = server.count
    assert main(study_argv(tmp_path, server, ["depth", "--k", str(shipped["k"])], "--eval-readers", READERS[0],
                           "--train-option", f"reader={READERS[0]}", "--reuse", str(tmp_path / "trained"))) == 0
    table = pd.read_csv(tmp_path / "study" / "table.csv")
    assert list(table["reused_from"]) == [str(tmp_path / "trained")]
    assert not (tmp_path / "study" / "checkpoints").exists()
    # only evaluation answers were asked (the training's prefixes of the same questions are cache hits)
    assert server.count - trained_requests <= 2 * 6
    # a folder trained with other options (here the learning rate) is not reused: the cell trains its own
    other = study_argv(tmp_path, server, ["depth", "--k", str(shipped["k"])], "--eval-readers", READERS[0],
                       "--train-option", f"reader={READERS[0]}", "lr=0.01", "--reuse", str(tmp_path / "trained"))
    other[other.index("--out") + 1] = str(tmp_path / "other")
    assert main(other) == 0
    assert pd.read_csv(tmp_path / "other" / "table.csv")["reused_from"].isna().all()
    assert (tmp_path / "other" / "checkpoints" / f"k{shipped['k']}" / "config.json").is_file()


def test_budget_cuts_the_training_and_the_table_says_so(tmp_path, server, standin_backbone):
    argv = study_argv(tmp_path, server, ["noisy", "--p", "0", "0.5", "--supervisors", READERS[1]],
                      "--eval-readers", READERS[0], "--budget-minutes", "0.0001")
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "study" / "table.csv")
    assert list(table["steps"]) == [1, 1] and list(table["planned_steps"]) == [2, 2]
    md = (tmp_path / "study" / "table.md").read_text()
    assert "**Scaled down**: 2 of 2 trainings stopped early by --budget-minutes 0.0001" in md
    assert "1/2 (cut)" in md
    cells = json.loads((tmp_path / "study" / "cells.json").read_text())
    assert [(c["training"]["reader"], c["training"]["reward_noise"], c["training"]["noise_p"])
            for c in cells.values()] == [(READERS[1], "none", 0.0), (READERS[1], "flip", 0.5)]
    assert (tmp_path / "study" / "noise_curve.png").stat().st_size > 10_000
    # a larger budget continues the same trainings to their planned steps
    argv[argv.index("--budget-minutes") + 1] = "100"
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "study" / "table.csv")
    assert list(table["steps"]) == [2, 2]
    assert "Scaled down" not in (tmp_path / "study" / "table.md").read_text()


def test_depth_study_plans_one_cell_per_horizon_and_rejects_bad_values(tmp_path, capsys):
    from rrpo.studies.base import StudyOptions
    from rrpo.studies.depth import DepthStudy

    study = DepthStudy(StudyOptions(eval_readers=SMOLLM2_ONLY, out=str(tmp_path / "s")), [5, 1, 3])
    assert [(c.name, c.config.k) for c in study.cells] == [("k1", 1), ("k3", 3), ("k5", 5)]
    assert {c.config.lr for c in study.cells} == {1e-4} and study.cells[0].config.ratio_anchor == "behaviour"
    assert main(["study", "depth", "--k", "30", "--eval-readers", "smollm2", "--out", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.strip() == "error: --pool 20: expected >= --k 30"
    assert main(["study", "noisy", "--p", "1.5", "--eval-readers", "smollm2", "--out", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.strip() == "error: --p 1.5: expected probabilities in [0, 1]"
    assert main(["study", "transfer", "--train-readers", "smollm2", "--eval-readers", "gpt-9",
                 "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown LLM engine 'gpt-9'; expected one of: ") and "\n" not in err
    # the servers go through bench's one validation too (a key pasted where its variable's name belongs)
    assert main(["study", "depth", "--k", "1", "--eval-readers", "smollm2", "--api-key-env", "sk-abc123xyz789",
                 "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --api-key-env: the value is not the NAME") and "sk-abc" not in err
    assert not (tmp_path / "s").exists()                # refused before any folder, training or model load


def test_a_study_folder_refuses_other_options(tmp_path, capsys):
    from rrpo.studies.base import StudyOptions
    from rrpo.studies.depth import DepthStudy

    DepthStudy(StudyOptions(eval_readers=SMOLLM2_ONLY, out=str(tmp_path / "s")), [1]).claim_folder()
    DepthStudy(StudyOptions(eval_readers=SMOLLM2_ONLY, out=str(tmp_path / "s"), budget_minutes=3), [1]).claim_folder()   # budget may change
    with pytest.raises(Exception, match=r"holds a study with other options \(eval_limit, k\)"):
        DepthStudy(StudyOptions(eval_readers=SMOLLM2_ONLY, out=str(tmp_path / "s"), eval_limit=5), [1, 3]).claim_folder()


def test_train_option_parsing_types_values_like_rrpo_train():
    import argparse

    from rrpo.studies import training_option

    assert training_option("lr=3e-5") == ("lr", 3e-5)
    assert training_option("learn-temperature=true") == ("learn_temperature", True)
    assert training_option("temperature=none") == ("temperature", None)
    assert training_option("limit=7") == ("limit", 7) and training_option("limit=none") == ("limit", None)
    with pytest.raises(argparse.ArgumentTypeError, match=r"^k='three': expected int$"):
        training_option("k=three")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^learn_temperature='maybe': expected bool$"):
        training_option("learn_temperature=maybe")
    with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=VALUE"):
        training_option("nonsense=1")


def test_gain_cell_marks_only_holm_significant_gains():
    from rrpo.studies.base import gain_cell

    row = {"F1_gain": 0.05, "F1_backbone": 0.1, "F1_rrpo": 0.15, "F1_gain_ci_lo": 0.01, "F1_gain_ci_hi": 0.09,
           "F1_p_holm": 0.049}
    assert gain_cell(row, "F1") == "0.100 → 0.150 (+0.050* [+0.010, +0.090])"
    assert gain_cell({**row, "F1_p_holm": 0.05}, "F1") == "0.100 → 0.150 (+0.050 [+0.010, +0.090])"
    assert gain_cell({**row, "F1_gain": math.nan}, "F1") == "–"


def test_compare_pairs_the_checkpoint_with_its_backbone_question_by_question():
    from bench.types import QueryRecord
    from rrpo.studies.base import compare

    def rec(reranker, qid, acc, reader="r", status="ok"):
        return QueryRecord(dataset="d", reranker=reranker, reader=reader, qid=qid, question="?", gold_answers=["x"],
                           ranking=["a"], answer="x", metrics={"accuracy": acc, "F1": acc / 2}, status=status)

    base = [rec("bb", f"q{i}", v) for i, v in enumerate([0, 0, 1, 1, 0, 0])]
    rrpo = [rec("rrpo", f"q{i}", v) for i, v in enumerate([1, 1, 1, 0, 1, 1])]
    others = [rec("rrpo", "q0", 0, reader="other"), rec("rrpo", "q9", 1), rec("bb", "q8", 1, status="failed")]
    out = compare([*base, *rrpo, *others], "r", "bb", "accuracy")
    assert out["n"] == 6                                   # q9 has no backbone answer; other readers don't count
    assert (out["accuracy_backbone"], out["accuracy_rrpo"]) == (pytest.approx(2 / 6), pytest.approx(5 / 6))
    assert out["accuracy_gain"] == pytest.approx(3 / 6)
    assert out["accuracy_p"] == pytest.approx(stats.binomtest(4, 5).pvalue) and out["accuracy_test"] == "mcnemar"
    lo, hi = out["accuracy_gain_ci_lo"], out["accuracy_gain_ci_hi"]
    assert -1 / 6 <= lo < 3 / 6 < hi <= 1.0               # a CI of the per-question differences around their mean
    assert compare([*base, *rrpo], "r", "bb", "F1")["F1_test"] == "randomization"
    # exact McNemar only when both sides are 0/1: a graded backbone against a 0/1 checkpoint is randomization
    graded_base = [rec("bb", f"q{i}", 0) for i in range(6)]
    for r in graded_base:
        r.metrics["accuracy"] = 0.5
    assert compare([*graded_base, *rrpo], "r", "bb", "accuracy")["accuracy_test"] == "randomization"
    # a constant difference has a degenerate CI at that difference (not the CI of either system's mean)
    shifted = [rec("rrpo", f"q{i}", 1) for i in range(6)]
    flat = [rec("bb", f"q{i}", 0) for i in range(6)]
    out = compare([*flat, *shifted], "r", "bb", "accuracy")
    assert (out["accuracy_gain_ci_lo"], out["accuracy_gain_ci_hi"]) == (1.0, 1.0)


def test_the_budget_is_shared_among_the_trainings_still_to_run(tmp_path, monkeypatch):
    from rrpo.studies.base import Study, StudyOptions, Trained
    from rrpo.studies.depth import DepthStudy

    shares = []

    def fake_train(self, cell, share):
        shares.append(share)
        return Trained("x", 1, 5, minutes=4.0)

    monkeypatch.setattr(Study, "reusable", lambda self, cell: Trained("shipped", 5, 5, 30.0, reused_from="shipped")
                        if cell.config.k == 1 else None)
    monkeypatch.setattr(Study, "train", fake_train)
    DepthStudy(StudyOptions(eval_readers=SMOLLM2_ONLY, out=str(tmp_path / "s"), budget_minutes=12), [1, 3, 5, 7]).train_all()
    # three trainings share 12 minutes (the reused k = 1 costs nothing): 12/3, then (12 - 4)/2, then (12 - 8)/1
    assert shares == [4.0, 4.0, 4.0]
    shares.clear()
    DepthStudy(StudyOptions(eval_readers=SMOLLM2_ONLY, out=str(tmp_path / "t"), budget_minutes=10), [3, 5]).train_all()
    assert shares == [5.0, 6.0]
    shares.clear()
    DepthStudy(StudyOptions(eval_readers=SMOLLM2_ONLY, out=str(tmp_path / "u")), [3]).train_all()
    assert shares == [None]


def test_a_named_dataset_from_the_data_dir_trains_and_evaluates(tmp_path, server, standin_backbone):
    """``--data-dir`` reaches the training's candidate lists as well as the evaluation (``rrpo train --data-dir``)."""
    folder = tmp_path / "data" / "hotpotqa-distractor"
    folder.mkdir(parents=True)
    rows = [json.loads(line) for line in open(hotpot_file(tmp_path / "hotpot.jsonl"))]
    (folder / "hotpot_dev_distractor_v1.json").write_text(json.dumps(rows))
    argv = study_argv(tmp_path, server, ["depth", "--k", "1"], "--eval-readers", READERS[0],
                      "--train-option", f"reader={READERS[0]}", "--data-dir", str(tmp_path / "data"))
    argv[argv.index("--dataset") + 1] = "hotpotqa-distractor"
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "study" / "table.csv")
    assert list(table["n"]) == [6] and list(table["steps"]) == [2]
    assert not (tmp_path / "cache" / "hotpotqa").exists()          # read from the data dir, nothing downloaded


def test_an_interrupted_study_resumes_without_redoing_finished_work(tmp_path, server, standin_backbone, monkeypatch):
    from rrpo.studies.base import Study

    argv = study_argv(tmp_path, server, ["transfer", "--train-readers", *READERS], "--eval-readers", READERS[0])
    evaluate = Study.evaluate
    evaluated = []

    def killed_after_the_first_cell(self, cell, trained):
        if evaluated:
            raise KeyboardInterrupt          # the user's Ctrl-C (or a kill) while the second cell is evaluated
        evaluated.append(evaluate(self, cell, trained))
        return evaluated[-1]

    monkeypatch.setattr(Study, "evaluate", killed_after_the_first_cell)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    logs = {p: p.read_text() for p in (tmp_path / "study" / "checkpoints").glob("*/train_log.jsonl")}
    assert len(logs) == 2 and not (tmp_path / "study" / "table.csv").exists()
    first_records = (evaluated[0] / "records.jsonl").read_text()
    monkeypatch.setattr(Study, "evaluate", evaluate)
    asked = server.count
    assert main(argv) == 0
    # both trainings were finished: not one step again; the first cell's records were kept as they were
    assert {p: p.read_text() for p in logs} == logs
    assert (evaluated[0] / "records.jsonl").read_text() == first_records
    # only the second cell's checkpoint had answers left to ask (its 6 questions at most; the cache may hold them)
    assert server.count - asked <= 6
    assert list(pd.read_csv(tmp_path / "study" / "table.csv")["n"]) == [6, 6]


def test_a_cell_with_the_default_settings_reuses_the_shipped_checkpoint_by_name(tmp_path):
    """The studies start from the shipped checkpoint's settings, so their SmolLM2 cell is that very checkpoint."""
    from rrpo.studies.base import StudyOptions
    from rrpo.studies.depth import DepthStudy

    study = DepthStudy(StudyOptions(eval_readers=SMOLLM2_ONLY, out=str(tmp_path / "s"), cache_dir=str(tmp_path / "cache")), [1, 3])
    shipped = study.reusable(study.cells[0])
    assert (shipped.checkpoint, shipped.reused_from, shipped.steps, shipped.planned) == \
        ("minilm-fictional", "minilm-fictional", 40, 40)
    assert study.reusable(study.cells[1]) is None           # k_train = 3 was never trained with these settings


def test_a_resumed_training_gets_its_share_less_the_minutes_it_already_trained(tmp_path, monkeypatch):
    import rrpo.assemble
    from rrpo.studies.base import StudyOptions
    from rrpo.studies.depth import DepthStudy

    study = DepthStudy(StudyOptions(eval_readers=SMOLLM2_ONLY, out=str(tmp_path / "s")), [3])
    folder = tmp_path / "s" / "checkpoints" / "k3"
    folder.mkdir(parents=True)
    (folder / "train_log.jsonl").write_text(json.dumps({"step": 1, "seconds": 60.0}) + "\n"
                                            + json.dumps({"step": 2, "seconds": 150.0}) + "\n")
    budgets = []

    class Finished:
        step, seconds, train_lists = 10, 150.0, [None] * 40     # finished: 2 epochs of 5 steps

        def __init__(self, cfg):
            self.cfg = cfg
            budgets.append(cfg.max_minutes)

    monkeypatch.setattr(rrpo.assemble, "build_trainer", lambda cfg, *args: Finished(cfg))
    trained = study.train(study.cells[0], share_minutes=4.0)
    assert budgets == [pytest.approx(1.5)]                   # 4 minutes less the 2.5 already logged
    assert (trained.steps, trained.planned, trained.minutes) == (10, 10, 2.5)
