"""``python -m bench judge-eval``: the OpenQA-eval loader (download from a real local HTTP server, a handmade
miniature of the release files), the generic JSONL format, agreement / κ / precision / recall against hand-computed
values and an independent pandas computation, the judge through the LLM cache (the real local OpenAI-compatible
server), and the measurement the leaderboard names."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.data import catalog
from bench.data.judgments import load_labelled
from bench.errors import UserError
from bench.stats import binary_agreement_ci
from tests.llm_server import ScriptedLLMServer, prompt_text
from tests.test_catalog import FileServer
from tests.test_squad_reference import ref_exact_match_score, ref_normalize_answer

HEADER = "id\tQuestion\tModel answer\tAcceptable?\tannotator1\tannotator2\tannotator3\n"
Q1, Q2, Q3 = "who wrote hamlet", "what is the multiplication sign", "when did the song come out"
# (question id, question, answer, human verdict); per row: EM, F1 (≥ 0.5?), accuracy (containment)
HUMAN_ROWS = [
    ("1", Q1, "Shakespeare", "Yes"),                                   # EM 1, F1 1, acc 1
    ("1", Q1, "It was written by William Shakespeare.", "Yes"),        # EM 0, F1 0.5 (P 2/6, R 1), acc 1
    ("1", Q1, "Christopher Marlowe", "No"),                            # 0, 0, 0
    ("2", Q2, "", "No"),                                               # empty: 0, 0, 0 (gold "*" is empty)
    ("2", Q2, "the symbol ×", "Yes"),                                  # 1, 1, 1
    ("2", Q2, "×", "Yes"),                                             # EM 0, F1 2/3, acc 0
    ("3", Q3, "1991", "Yes"),                                          # 1, 1, 1
    ("3", Q3, "1991", "Yes"),                                          # repeated row: dropped
    ("3", Q3, '"Things That Make You Go Hmmm" came out in 1991', "Yes"),  # EM 0, F1 2/11, acc 1 (quote kept)
    ("3", Q3, "1990", "No"),                                           # 0, 0, 0
    ("3", Q3, "in 1991 or 1992", "No"),                                # EM 0, F1 0.4, acc 1 (a false positive)
]
GOLD = {Q1: ["William Shakespeare", "Shakespeare"], Q2: ["a rotationally symmetric saltire", "the symbol ×", "*"],
        Q3: ["1991"], "an unjudged question": ["x"]}
HUMAN_TSV = HEADER + "".join(f"{i}\t{q}\t{a}\t{v}\t{v}\t{v}\t\n" for i, q, a, v in HUMAN_ROWS)
GOLD_JSONL = "".join(json.dumps({"question": q, "answer": g, "prediction": "p"}) + "\n" for q, g in GOLD.items())
N_ROWS = len(HUMAN_ROWS) - 1
# Hand-computed from the comments above (10 rows, 6 judged correct): tp, fp, fn, tn and Cohen's κ
# EM: says correct on rows 1, 5, 7 -> tp 3, fp 0, fn 3, tn 4; p_o .7, p_e .3*.6 + .7*.4 = .46 -> κ .24/.54
# F1 ≥ 0.5: rows 1, 2, 5, 6, 7 -> tp 5, fp 0, fn 1, tn 4; p_o .9, p_e .5*.6 + .5*.4 = .5 -> κ .4/.5
# accuracy: rows 1, 2, 5, 7, 8, 10 -> tp 5, fp 1, fn 1, tn 3; p_o .8, p_e .6*.6 + .4*.4 = .52 -> κ .28/.48
EXPECTED = {"EM": (3, 0, 3, 4, 0.7, 0.24 / 0.54, 1.0, 0.5),
            "F1 ≥ 0.5": (5, 0, 1, 4, 0.9, 0.8, 1.0, 5 / 6),
            "accuracy": (5, 1, 1, 3, 0.8, 0.28 / 0.48, 5 / 6, 5 / 6)}


def write_release(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "NQ301_human.tsv").write_text(HUMAN_TSV, encoding="utf-8")
    (folder / "NQ_DPR.jsonl").write_text(GOLD_JSONL, encoding="utf-8")
    return folder


def independent_agreement(folder: Path) -> dict[str, tuple[float, float]]:
    """Agreement and Cohen's κ of EM and containment accuracy with the human label, from the release files with
    pandas and the re-typed SQuAD v1.1 reference only (no code of bench's metrics, loader or statistics)."""
    human = pd.read_csv(folder / "NQ301_human.tsv", sep="\t", quoting=csv.QUOTE_NONE, dtype=str,
                        keep_default_na=False).drop_duplicates(["Question", "Model answer", "Acceptable?"])
    gold = pd.read_json(folder / "NQ_DPR.jsonl", lines=True, dtype=False).set_index("question")["answer"]
    df = pd.DataFrame({"pred": human["Model answer"], "gold": human["Question"].map(gold),
                       "human": human["Acceptable?"].eq("Yes")})
    norm = ref_normalize_answer
    # the documented deviation from the reference's EM: an answer that normalises to nothing matches nothing
    df["EM"] = [bool(norm(p)) and max(ref_exact_match_score(p, g) for g in gs) for p, gs in zip(df.pred, df.gold)]
    df["accuracy"] = [any(norm(g) and f" {norm(g)} " in f" {norm(p)} " for g in gs) for p, gs in zip(df.pred, df.gold)]
    out = {}
    for name in ("EM", "accuracy"):
        joint = pd.crosstab(df[name], df.human, normalize=True)
        p_o = joint.loc[True, True] + joint.loc[False, False]
        p_e = sum(joint.loc[v].sum() * joint[v].sum() for v in (True, False))
        out[name] = (p_o, (p_o - p_e) / (1 - p_e))
    return out


@pytest.fixture
def release_server(monkeypatch):
    """The catalog's openqa-eval entry pointed at a local server that publishes the miniature (sizes and sha256 of
    its bytes pinned as the real entry pins the release's)."""
    bodies = {"/NQ301_human.tsv": HUMAN_TSV.encode(), "/NQ_DPR.jsonl": GOLD_JSONL.encode()}
    srv = FileServer(bodies)
    entry = catalog.CATALOG["openqa-eval"]
    files = tuple(dataclasses.replace(f, url=f"{srv.url}/{f.path}", size=len(bodies[f"/{f.path}"]),
                                      sha256=hashlib.sha256(bodies[f"/{f.path}"]).hexdigest()) for f in entry.files)
    monkeypatch.setitem(catalog.CATALOG, "openqa-eval", dataclasses.replace(entry, files=files))
    yield srv
    srv.close()


def read_table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "agreement.csv").set_index(["reading", "rows"])


def test_downloads_the_release_and_matches_hand_computed_agreement(release_server, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["judge-eval", "--data-dir", str(tmp_path / "data"), "--output", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert sorted(p for p, _ in release_server.requests) == ["/NQ301_human.tsv", "/NQ_DPR.jsonl"]
    assert main(["data", "verify", "openqa-eval", "--data-dir", str(tmp_path / "data")]) == 0
    table = read_table(out)
    for reading, (tp, fp, fn, tn, agreement, kappa, precision, recall) in EXPECTED.items():
        line = table.loc[(reading, "all rows")]
        assert (line.n, line.tp, line.fp, line.fn, line.tn) == (N_ROWS, tp, fp, fn, tn), reading
        assert (line.agreement, line.kappa, line.precision, line.recall) == \
            pytest.approx((agreement, kappa, precision, recall), abs=1e-12), reading
        assert line.agreement_lo <= agreement <= line.agreement_hi and line.kappa_lo <= kappa <= line.kappa_hi
        assert line.human_correct == pytest.approx(0.6)
    md = (out / "agreement.md").read_text()
    assert "1 repeated row(s) dropped" in md and "score ≥ 0.5" in md
    assert "**accuracy** (all rows, n = 10)\n\n| | human: correct | human: incorrect |\n|---|---|---|\n" \
           "| says correct | 5 | 1 |\n| says incorrect | 1 | 3 |" in md
    rows = pd.read_csv(out / "rows.csv", keep_default_na=False)
    assert rows["answer"].tolist() == [a for _, _, a, _ in HUMAN_ROWS[:7] + HUMAN_ROWS[8:]]
    assert rows.loc[3, ["EM", "F1", "accuracy"]].tolist() == [0.0, 0.0, 0.0]     # the empty answer
    # the second call reads the checked local copy: nothing downloaded again
    assert main(["judge-eval", "--data-dir", str(tmp_path / "data"), "--output", str(out)]) == 0
    assert len(release_server.requests) == 2


def test_an_independent_pandas_computation_reproduces_agreement_and_kappa(tmp_path):
    folder = write_release(tmp_path / "openqa-eval")
    assert main(["judge-eval", "--data", str(folder), "--output", str(tmp_path / "out")]) == 0
    table = read_table(tmp_path / "out")
    for name, (agreement, kappa) in independent_agreement(folder).items():
        line = table.loc[(name, "all rows")]
        assert abs(line.agreement - agreement) < 1e-9 and abs(line.kappa - kappa) < 1e-9, name
    assert independent_agreement(folder)["EM"] == pytest.approx((0.7, 0.24 / 0.54), abs=1e-12)


@pytest.mark.skipif(not os.environ.get("OPENQA_EVAL_DIR"), reason="set OPENQA_EVAL_DIR to the real release files")
def test_the_real_release_agrees_with_the_independent_computation(tmp_path):
    """The real-file check (docs/answer-metrics.md): OPENQA_EVAL_DIR holds NQ301_human.tsv and NQ_DPR.jsonl."""
    folder = Path(os.environ["OPENQA_EVAL_DIR"])
    assert main(["judge-eval", "--data", str(folder), "--output", str(tmp_path / "out")]) == 0
    table = read_table(tmp_path / "out")
    for name, (agreement, kappa) in independent_agreement(folder).items():
        line = table.loc[(name, "all rows")]
        print(name, line.n, line.agreement, agreement, line.kappa, kappa)
        assert abs(line.agreement - agreement) < 1e-9 and abs(line.kappa - kappa) < 1e-9, name


def test_data_list_and_info_name_source_licence_and_citation(tmp_path, capsys):
    assert main(["data", "list", "--cache-dir", str(tmp_path)]) == 0
    assert "| openqa-eval " in capsys.readouterr().out
    assert main(["data", "info", "openqa-eval", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in ("MIT", "Kamalloo", "ACL 2023", "https://raw.githubusercontent.com/ehsk/OpenQA-eval/"
                 "8b9317d0f0c92b52e1c71c0168dff74b5f76a5f4/data/NQ301_human.tsv", "model_outputs/NQ_DPR.jsonl",
                 "sha256, bytes"):
        assert text in out, text
    with pytest.raises(UserError, match="unknown dataset 'openqa-eval'"):   # labelled answers, no retrieval set
        from bench.data import load_dataset
        load_dataset("openqa-eval")


# --- the generic JSONL format ------------------------------------------------------------------------------------

def test_generic_jsonl_is_read_and_scored(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [{"id": "a", "question": "q1", "gold_answers": ["Paris"], "answer": "Paris", "human_correct": True},
            {"question": "q2", "gold_answers": ["4"], "answer": "four", "human_correct": True},
            {"question": "q3", "gold_answers": ["red"], "answer": "blue", "human_correct": False}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    data = load_labelled(str(path))
    assert [r.qid for r in data.rows] == ["a", "2", "3"] and data.name == "mine"
    assert main(["judge-eval", "--data", str(path), "--output", str(tmp_path / "out")]) == 0
    em = read_table(tmp_path / "out").loc[("EM", "all rows")]
    assert (em.tp, em.fp, em.fn, em.tn, em.recall) == (1, 0, 1, 1, 0.5)


@pytest.mark.parametrize("line, message", [
    ('{"question": "q", "gold_answers": [], "answer": "a", "human_correct": true}', "field 'gold_answers' is []"),
    ('{"question": "q", "gold_answers": ["a"], "answer": "a", "human_correct": "yes"}',
     "field 'human_correct' is 'yes'"),
    ('{"question": "q", "gold_answers": ["a"], "human_correct": true}', "lacks 'answer'"),
    ("not json", "invalid JSON"),
    ('["a list"]', "lacks 'question', 'gold_answers', 'answer', 'human_correct'"),
])
def test_bad_jsonl_is_one_line_naming_file_line_and_field(tmp_path, capsys, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q", "gold_answers": ["a"], "answer": "a", "human_correct": true}\n' + line + "\n")
    assert main(["judge-eval", "--data", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path} line 2: ") and message in err and "\n" not in err


def test_bad_release_rows_are_named(tmp_path, capsys):
    folder = write_release(tmp_path / "rel")
    (folder / "NQ301_human.tsv").write_text(HEADER + f"1\t{Q1}\tShakespeare\tMaybe\t\t\t\n")
    assert main(["judge-eval", "--data", str(folder)]) == 2
    assert "NQ301_human.tsv line 2: Acceptable? is 'Maybe', expected Yes or No" in capsys.readouterr().err
    (folder / "NQ301_human.tsv").write_text(HEADER + "1\tan unknown question\tx\tYes\t\t\t\n")
    assert main(["judge-eval", "--data", str(folder)]) == 2
    assert "the question 'an unknown question' is not in" in capsys.readouterr().err
    (folder / "NQ301_human.tsv").write_text(HEADER + f"1\t{Q1}\tx\tYes\t\t\t\n1\t{Q1}\tx\tNo\t\t\t\n")
    assert main(["judge-eval", "--data", str(folder)]) == 2
    assert "line 3: the answer 'x' to 'who wrote hamlet' is judged both Yes and No" in capsys.readouterr().err


# --- the judge ---------------------------------------------------------------------------------------------------

def judge_reply(body: dict) -> str:
    """Correct iff the prediction is one of the reference lines; no verdict at all for "1990" (an invalid reply)."""
    refs, prediction = re.search(r"Reference answers.*?:\n(.*)\nPredicted answer: (.*)", prompt_text(body),
                                 re.S).groups()
    if prediction.strip() == "1990":
        return "I think it is 1990."
    ok = f"- {prediction.strip()}" in refs.splitlines()
    return json.dumps({"verdict": "correct" if ok else "incorrect", "reason": "scripted"})


def judge_eval_cmd(folder: Path, url: str, cache: Path, out: Path, *extra: str) -> list[str]:
    return ["judge-eval", "--data", str(folder), "--judge", "openai:toy-judge", "--base-url", url,
            "--api-key-env", "TOY_KEY", "--cache-dir", str(cache), "--output", str(out), "--concurrency", "1",
            *extra]


def test_judge_through_the_cache_with_a_declared_subset(tmp_path, monkeypatch):
    from bench.judges import measurements
    from bench.prompts import load_template

    monkeypatch.setenv("TOY_KEY", "sk-toy")
    folder, cache = write_release(tmp_path / "openqa-eval"), tmp_path / "cache"
    with ScriptedLLMServer(reply=judge_reply) as srv:
        assert main(judge_eval_cmd(folder, srv.base_url, cache, tmp_path / "out", "--judge-limit", "9")) == 0
        assert srv.count == 9
        assert main(judge_eval_cmd(folder, srv.base_url, cache, tmp_path / "out2", "--judge-limit", "9")) == 0
        assert srv.count == 9                                   # every verdict came from the LLM cache
    table = read_table(tmp_path / "out")
    # Rows 1-9: the judge says correct for rows 1, 5, 7 (exact reference lines), invalid on row 9 ("1990").
    judge = table.loc[("judge", "first 9 rows")]
    assert (judge.n, judge.invalid, judge.tp, judge.fp, judge.fn, judge.tn) == (8, 1, 3, 0, 3, 2)
    assert judge.kappa == pytest.approx((5 / 8 - (3 / 8 * 6 / 8 + 5 / 8 * 2 / 8)) / (1 - (3 / 8 * 6 / 8 + 5 / 8 * 2 / 8)))
    as_incorrect = table.loc[("judge (invalid = incorrect)", "first 9 rows")]
    assert (as_incorrect.n, as_incorrect.tn) == (9, 3)
    # the lexical metrics on all rows and on the judge's rows
    assert table.loc[("EM", "all rows")].n == 10 and table.loc[("EM", "first 9 rows")].n == 9
    md = (tmp_path / "out" / "agreement.md").read_text()
    assert "Judge: `openai:toy-judge` with prompt `judge-reference@v1:" in md
    assert "`, on the first 9 rows (file order); 1 invalid verdict(s)." in md
    rows = pd.read_csv(tmp_path / "out" / "rows.csv", keep_default_na=False)
    assert rows["judge_verdict"].tolist() == ["correct", "incorrect", "incorrect", "incorrect", "correct",
                                              "incorrect", "correct", "incorrect", "", ""]
    saved = measurements(str(cache), "openai:toy-judge", load_template("judge-reference"))
    assert list(saved) == ["openqa-eval"]
    assert saved["openqa-eval"]["rows"] == "first 9 rows" and saved["openqa-eval"]["of"] == 10
    assert saved["openqa-eval"]["kappa"][0] == pytest.approx(judge.kappa)


def test_a_failed_judge_call_is_no_verdict_and_the_rerun_judges_only_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_KEY", "sk-toy")
    folder, cache = write_release(tmp_path / "openqa-eval"), tmp_path / "cache"
    with ScriptedLLMServer(reply=judge_reply, faults=["500"]) as srv:
        cmd = judge_eval_cmd(folder, srv.base_url, cache, tmp_path / "out", "--max-retries", "0")
        assert main(cmd) == 0
        table = read_table(tmp_path / "out")
        assert table.loc[("judge (invalid = incorrect)", "all rows")].n == 9       # 10 rows, one call failed
        assert "; 1 call(s) failed (no verdict: run again to retry them)." in (tmp_path / "out" /
                                                                              "agreement.md").read_text()
        assert srv.count == 10
        assert main(cmd) == 0
        assert srv.count == 11                                  # only the failed call is asked again
    assert read_table(tmp_path / "out").loc[("judge (invalid = incorrect)", "all rows")].n == 10


# --- the leaderboard names the measurement ------------------------------------------------------------------------

def write_run_folder(run_dir: Path, cache: Path, template: str = "judge-reference") -> Path:
    from bench.types import QueryRecord

    run_dir.mkdir(parents=True)
    config = {"judge": "openai:toy-judge", "judge_template": template, "cache_dir": str(cache), "baseline": "none"}
    (run_dir / "config.json").write_text(json.dumps(config))
    recs = [QueryRecord("d", "none", "r", f"q{i}", "q", ["a"], [], "a", {"EM": 1.0, "F1": 1.0, "accuracy": float(i % 2),
                        "judge": float(i % 3 == 0)}) for i in range(6)]
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in recs))
    return run_dir


def test_leaderboard_names_the_judges_measured_agreement_for_its_prompt_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOY_KEY", "sk-toy")
    folder, cache = write_release(tmp_path / "openqa-eval"), tmp_path / "cache"
    run_dir = write_run_folder(tmp_path / "run", cache)
    assert main(["report", str(run_dir)]) == 0
    assert "Not measured against human verdicts with this prompt: `python -m bench judge-eval --judge " \
           "openai:toy-judge`" in capsys.readouterr().out
    with ScriptedLLMServer(reply=judge_reply) as srv:
        assert main(judge_eval_cmd(folder, srv.base_url, cache, tmp_path / "out")) == 0
    judge = read_table(tmp_path / "out").loc[("judge", "all rows")]
    capsys.readouterr()
    assert main(["report", str(run_dir)]) == 0
    md = (run_dir / "leaderboard.md").read_text()
    assert ("Measured against human verdicts (`bench judge-eval`) on openqa-eval (10 labelled answers, 9 valid "
            "verdicts, prompt `judge-reference@v1:") in md
    assert (f"agreement {judge.agreement:.3f} [{judge.agreement_lo:.3f}, {judge.agreement_hi:.3f}], κ "
            f"{judge.kappa:.3f} [{judge.kappa_lo:.3f}, {judge.kappa_hi:.3f}]") in md
    # the same judge with an edited prompt (another hash) has no measurement
    edited = json.loads((Path(__file__).parents[1] / "bench" / "prompts" / "judge-reference.json").read_text())
    edited["messages"][0]["content"] += " Be strict."
    (tmp_path / "strict.json").write_text(json.dumps(edited))
    other = write_run_folder(tmp_path / "run2", cache, template=str(tmp_path / "strict.json"))
    assert main(["report", str(other)]) == 0
    assert "Not measured against human verdicts" in (other / "leaderboard.md").read_text()


# --- the statistics ----------------------------------------------------------------------------------------------

def test_agreement_statistics_match_sklearn_and_the_intervals_are_seeded():
    from sklearn.metrics import cohen_kappa_score, precision_score, recall_score

    rng = np.random.default_rng(3)
    for n in (5, 40, 300):
        human = rng.random(n) < 0.55
        rater = np.where(rng.random(n) < 0.7, human, ~human)
        got = binary_agreement_ci(rater, human, n_resamples=300, seed=1)
        assert got["kappa"][0] == pytest.approx(cohen_kappa_score(rater, human), abs=1e-12)
        assert got["precision"][0] == pytest.approx(precision_score(human, rater), abs=1e-12)
        assert got["recall"][0] == pytest.approx(recall_score(human, rater), abs=1e-12)
        assert got["agreement"][0] == pytest.approx(np.mean(rater == human), abs=1e-12)
        for value, lo, hi in got.values():
            assert lo <= value <= hi
        assert binary_agreement_ci(rater, human, n_resamples=300, seed=1) == got
    never = binary_agreement_ci([False, False, False], [True, False, True], n_resamples=50)
    assert math.isnan(never["precision"][0]) and never["recall"][0] == 0.0
    assert never["kappa"][0] == pytest.approx(0.0, abs=1e-12)
