"""End-to-end runs of ``python -m bench run`` against a real local OpenAI-compatible server: resumption after
SIGKILL, zero LLM calls on a re-run, failed queries recorded and retried, no API key in any written file."""
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from tests.llm_server import ScriptedLLMServer, prompt_text
from tests.trec_check import assert_trec_runs_reproduce_leaderboard

ITEMS = ["amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "heron"]
N_QUESTIONS = len(ITEMS)
API_KEY = "sk-test-DO-NOT-WRITE-7f3a9c"


def write_dataset(root: Path) -> Path:
    folder = root / "toyqa"
    folder.mkdir()
    with (folder / "corpus.jsonl").open("w") as f:
        for i, item in enumerate(ITEMS):
            f.write(json.dumps({"id": f"a{i}", "title": item, "text": f"The code of {item} is zq{i}x."}) + "\n")
            f.write(json.dumps({"id": f"b{i}", "title": item,
                                "text": f"The {item} is mentioned here in passing, with nothing more about it."}) + "\n")
    with (folder / "test.jsonl").open("w") as f:
        for i, item in enumerate(ITEMS):
            f.write(json.dumps({"id": f"q{i}", "question": f"What is the code of {item}?",
                                "golden_answers": [f"zq{i}x"], "qrels": {f"a{i}": 2, f"b{i}": 1}}) + "\n")
    return folder


def scripted_reply(body: dict) -> str:
    """Reader: answer with the code found in the documents (or 'unknown'); judge: correct iff the prediction is a
    reference answer."""
    text = prompt_text(body)
    if "Predicted answer:" in text:
        refs = re.search(r"Reference answers.*?:\n(.*)\nPredicted answer: (.*)", text, re.S)
        ok = refs.group(2).strip() in refs.group(1)
        return json.dumps({"verdict": "correct" if ok else "incorrect", "reason": "scripted"})
    codes = re.findall(r"zq\d+x", text)
    return codes[0] if codes else "unknown"


def bench_cmd(dataset: Path, base_url: str | list[str], out: Path, cache: Path, *extra: str) -> list[str]:
    urls = [base_url] if isinstance(base_url, str) else base_url
    return [sys.executable, "-m", "bench", "run", "--datasets", str(dataset), "--rerankers", "none", "random",
            "--reader", "openai:toy-reader", "--judge", "openai:toy-judge", "--base-url", *urls,
            "--api-key-env", "TOY_KEY", "--pool", "2", "--top-k", "1", "--chunk-size", "3", "--concurrency", "1",
            "--max-retries", "1", "--output", str(out), "--cache-dir", str(cache), *extra]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOY_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    # the one-line errors first: under torchrun another rank's traceback can bury the rank that failed
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert proc.returncode == 0, "\n".join([*errors[:10], proc.stderr[-3000:]])
    return proc


def only_dir(path: Path) -> Path:
    (run_dir,) = [p for p in path.iterdir() if p.is_dir()]
    return run_dir


def records(run_dir: Path) -> list[dict]:
    return [json.loads(l) for l in (run_dir / "records.jsonl").read_text().splitlines() if l.strip()]


def request_key(body: dict) -> str:
    return json.dumps([body.get("model"), body.get("messages")], sort_keys=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner")
    dataset = write_dataset(root)
    with ScriptedLLMServer(reply=scripted_reply) as srv:
        cmd = bench_cmd(dataset, srv.base_url, root / "out", root / "cache")
        run(cmd)
        first_count = srv.count
        run(cmd)                                       # the same command again: nothing left to do
        run(bench_cmd(dataset, srv.base_url, root / "out2", root / "cache",   # fresh records, warm cache
                      "--primary-metric", "accuracy"))
        return {"root": root, "dataset": dataset, "run_dir": only_dir(root / "out"), "count": first_count,
                "again": srv.count - first_count, "bodies": [request_key(b) for b in srv.requests],
                "run_dir2": only_dir(root / "out2")}


def test_every_question_answered_and_judged(uninterrupted):
    recs = records(uninterrupted["run_dir"])
    assert len(recs) == 2 * N_QUESTIONS
    assert all(r["status"] == "ok" and r["metrics"]["judge"] in (0.0, 1.0) for r in recs)
    # none ranks by BM25, which puts the answer passage first for these questions: reader right, judge agrees
    none = [r for r in recs if r["reranker"] == "none"]
    assert all(r["metrics"]["accuracy"] == r["metrics"]["judge"] for r in recs)
    assert sum(r["metrics"]["EM"] for r in none) == N_QUESTIONS
    # reader + judge calls, each made once
    assert uninterrupted["count"] == len(set(uninterrupted["bodies"][:uninterrupted["count"]]))


def test_the_declared_primary_metric_is_named_in_the_leaderboard_and_kept_by_report(uninterrupted):
    assert "| F1 (primary)" in (uninterrupted["run_dir"] / "leaderboard.md").read_text()
    run_dir2 = uninterrupted["run_dir2"]
    assert "accuracy (primary)" in (run_dir2 / "leaderboard.md").read_text()
    (run_dir2 / "leaderboard.md").unlink()
    run([sys.executable, "-m", "bench", "report", str(run_dir2)])
    md = (run_dir2 / "leaderboard.md").read_text()
    assert "accuracy (primary)" in md and "Primary metric, declared before the run: accuracy" in md


def test_records_name_the_reranker_that_ranked_them(uninterrupted):
    recs = records(uninterrupted["run_dir"])
    assert {json.dumps(r["info"]["reranker"], sort_keys=True) for r in recs} == {
        json.dumps({"name": "none", "checkpoint": None}, sort_keys=True),
        json.dumps({"name": "random", "checkpoint": None, "seed": 0}, sort_keys=True)}


def test_records_name_the_answer_passage_and_the_run_splits_accuracy_by_where_it_landed(uninterrupted):
    run_dir = uninterrupted["run_dir"]
    recs = records(run_dir)
    assert all(r["info"]["answer_bearing"] == {"source": "qrels (max grade)", "docids": [f"a{r['qid'][1:]}"]}
               for r in recs)                                          # grade 2 beats b<i>'s grade 1
    # --top-k 1: the reader saw only the first passage; by hand from the records' rankings and answers
    expected = []
    for reranker in ("none", "random"):
        mine = [r for r in recs if r["reranker"] == reranker]
        for first in (True, False):
            part = [r for r in mine if (r["ranking"][0] == f"a{r['qid'][1:]}") == first]
            expected.append([reranker, "rank 1" if first else "not in top 1", len(part),
                             sum(r["metrics"]["accuracy"] for r in part) / len(part) if part else None])
    csv = [line.split(",") for line in (run_dir / "answer_position.csv").read_text().splitlines()]
    column = {name: i for i, name in enumerate(csv[0])}
    got = [[row[column["reranker"]], row[column["position"]], int(row[column["n"]]),
            float(row[column["accuracy"]]) if row[column["accuracy"]] else None] for row in csv[1:]]
    assert got == expected and expected[0][1:] == ["rank 1", N_QUESTIONS, 1.0]   # BM25 puts a<i> first
    assert "### Where the answer-bearing passage landed" in (run_dir / "leaderboard.md").read_text()


def test_second_run_makes_no_llm_calls(uninterrupted):
    assert uninterrupted["again"] == 0
    a = (uninterrupted["run_dir"] / "leaderboard.csv").read_text()
    assert a == (uninterrupted["run_dir2"] / "leaderboard.csv").read_text()
    costs = json.loads((uninterrupted["run_dir2"] / "costs.json").read_text())
    assert all(s["calls"] == 0 and s["hits"] > 0 for s in costs["llm"].values())


def test_sigkill_mid_run_then_resume_matches_uninterrupted(uninterrupted, tmp_path):
    kill_at = uninterrupted["count"] // 2 + 1
    procs: list[subprocess.Popen] = []
    answered: list[str] = []

    def reply(body: dict) -> str:
        answered.append(request_key(body))
        if len(answered) == kill_at:               # kill the client while this request is in flight
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
        return scripted_reply(body)

    with ScriptedLLMServer(reply=reply) as srv:
        cmd = bench_cmd(uninterrupted["dataset"], srv.base_url, tmp_path / "out", tmp_path / "cache")
        procs.append(subprocess.Popen(cmd, env={**os.environ, "TOY_KEY": API_KEY}, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        assert procs[0].wait(timeout=300) == -signal.SIGKILL
        run(cmd)
        bodies = [request_key(b) for b in srv.requests]
    # only the request in flight at the kill was sent twice; every answered request exactly once otherwise
    assert len(bodies) == uninterrupted["count"] + 1
    repeated = {b for b in bodies if bodies.count(b) > 1}
    assert repeated == {answered[kill_at - 1]}
    run_dir = only_dir(tmp_path / "out")
    recs = records(run_dir)
    keys = [(r["reranker"], r["reader"], r["qid"]) for r in recs]
    assert len(keys) == len(set(keys)) == 2 * N_QUESTIONS
    assert (run_dir / "leaderboard.csv").read_text() == \
        (uninterrupted["run_dir"] / "leaderboard.csv").read_text()
    # the TREC runs were rewritten whole by the resumed invocation: every query, as the uninterrupted run has them
    for reranker in ("none", "random"):
        name = f"runs/toyqa__{reranker}.trec"
        assert (run_dir / name).read_text() == (uninterrupted["run_dir"] / name).read_text()
        assert len((run_dir / name).read_text().splitlines()) == 2 * N_QUESTIONS       # pool 2


def test_failed_query_is_counted_then_retried(uninterrupted, tmp_path):
    with ScriptedLLMServer(reply=scripted_reply, faults=["500", "500"]) as srv:   # 1 retry: first call fails
        cmd = bench_cmd(uninterrupted["dataset"], srv.base_url, tmp_path / "out", tmp_path / "cache")
        out = run(cmd).stdout
        run_dir = only_dir(tmp_path / "out")
        failed = [r for r in records(run_dir) if r["status"] == "failed"]
        assert len(failed) == 1 and "500" in failed[0]["error"]
        none_row = next(l for l in out.splitlines() if l.startswith("| none"))
        assert [c.strip() for c in none_row.split("|")[2:5]] == [str(N_QUESTIONS - 1), str(N_QUESTIONS - 1), "1"]
        # the two failed attempts of one request, and the one retry between them, are reported
        reader_costs = json.loads((run_dir / "costs.json").read_text())["llm"]["openai:toy-reader"]
        calls = reader_costs["calls"]
        assert (reader_costs["attempts"], reader_costs["retries"], reader_costs["failed_attempts"],
                reader_costs["errors"]) == (calls + 1, 1, 2, 1)
        cost_row = next(l for l in out.splitlines() if l.startswith("| openai:toy-reader"))
        assert [c.strip() for c in cost_row.split("|")[2:7]] == [str(calls), str(calls + 1), "1", "2", "1"]
        run(cmd)
    recs = records(run_dir)
    assert len(recs) == 2 * N_QUESTIONS and all(r["status"] == "ok" for r in recs)
    assert (run_dir / "leaderboard.csv").read_text() == \
        (uninterrupted["run_dir"] / "leaderboard.csv").read_text()


@pytest.fixture(scope="module")
def two_readers(tmp_path_factory):
    """A finished run with two readers and a judge: every section of leaderboard.md is in it."""
    root = tmp_path_factory.mktemp("two_readers")
    dataset = write_dataset(root)
    with ScriptedLLMServer(reply=scripted_reply) as srv:
        proc = run(bench_cmd(dataset, srv.base_url, root / "out", root / "cache",
                             "--reader", "openai:toy-reader", "openai:toy-reader-b"))
    return {"run_dir": only_dir(root / "out"), "cache": root / "cache", "stdout": proc.stdout}


def test_report_rewrites_every_section_of_the_leaderboard_byte_for_byte(two_readers):
    run_dir = two_readers["run_dir"]
    names = ("leaderboard.md", "leaderboard.tex", "leaderboard.csv", "pairs.csv", "matrix_F1.csv")
    written = {name: (run_dir / name).read_bytes() for name in names}
    md = written["leaderboard.md"].decode()
    for section in ("### toyqa · reader openai:toy-reader-b", "### judge: reranker × reader",
                    "### Pairwise: toyqa · reader openai:toy-reader\n", "Judge `openai:toy-judge`: Cohen's κ",
                    "### Cost of the last invocation", "| openai:toy-reader-b | "):
        assert section in md
    assert two_readers["stdout"].startswith(md)
    for name in names:
        (run_dir / name).unlink()
    proc = run([sys.executable, "-m", "bench", "report", str(run_dir)])
    assert {name: (run_dir / name).read_bytes() for name in names} == written
    assert proc.stdout == md


def test_trec_runs_reproduce_the_leaderboard_retrieval_metrics(two_readers):
    qrels = {f"q{i}": {f"a{i}": 2, f"b{i}": 1} for i in range(N_QUESTIONS)}
    assert_trec_runs_reproduce_leaderboard(two_readers["run_dir"], "toyqa", ["none", "random"], qrels,
                                           relevance_level=1, top_k=1)
    lines = (two_readers["run_dir"] / "runs" / "toyqa__random.trec").read_text().splitlines()
    assert {l.split()[0] for l in lines} == {f"q{i}" for i in range(N_QUESTIONS)}
    assert all(l.split()[5] == "random" for l in lines)


def test_records_link_the_llm_calls_behind_their_answer(two_readers):
    from bench.judges import parse_verdict
    from bench.llm.cache import open_cache

    recs = records(two_readers["run_dir"])
    calls = [r["info"]["llm_calls"] for r in recs]
    assert all(set(c) == {"reader", "judge"} for c in calls)
    cache = open_cache(two_readers["cache"])
    stored = cache.get_many([key for c in calls for key in c.values()])
    db = sqlite3.connect(cache.path)
    for rec, call in zip(recs, calls):
        assert stored[call["reader"]].text == rec["answer"]
        # the request is there too, as the README's query shows it: the reader's prompt asks the record's question
        (request,) = db.execute("SELECT request FROM responses WHERE key = ?", (call["reader"],)).fetchone()
        assert rec["question"] in json.loads(request)["messages"][-1][1]
        verdict = parse_verdict(stored[call["judge"]].text)
        assert float(verdict.correct) == rec["metrics"]["judge"] and verdict.reason == rec["info"]["judge"]["reason"]
    by_reader = {reader: {c["reader"] for r, c in zip(recs, calls) if r["reader"] == reader}
                 for reader in ("openai:toy-reader", "openai:toy-reader-b")}
    assert not by_reader["openai:toy-reader"] & by_reader["openai:toy-reader-b"]   # each reader's own calls


def test_api_key_is_written_nowhere(uninterrupted):
    for path in uninterrupted["root"].rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_judge_on_its_own_server(uninterrupted, tmp_path):
    with ScriptedLLMServer(reply=scripted_reply) as reader_srv, ScriptedLLMServer(reply=scripted_reply) as judge_srv:
        cmd = bench_cmd(uninterrupted["dataset"], reader_srv.base_url, tmp_path / "out", tmp_path / "cache",
                        "--judge-base-url", judge_srv.base_url, "--judge-api-key-env", "TOY_KEY")
        run(cmd)
        assert reader_srv.count > 0 and judge_srv.count > 0
        assert all("Predicted answer:" not in prompt_text(b) for b in reader_srv.requests)
        assert all("Predicted answer:" in prompt_text(b) for b in judge_srv.requests)


def test_two_servers_share_the_run_and_one_killed_mid_run_loses_nothing(uninterrupted, tmp_path):
    with ScriptedLLMServer(reply=scripted_reply) as a, ScriptedLLMServer(reply=scripted_reply) as b:
        replies, lock = [0], threading.Lock()

        def reply_then_die(body: dict) -> str:
            with lock:
                replies[0] += 1
                if replies[0] == 4:
                    a.stop()   # this request gets no answer, and a takes no new connection
            return scripted_reply(body)

        a.reply = reply_then_die
        run(bench_cmd(uninterrupted["dataset"], [a.base_url, b.base_url], tmp_path / "out", tmp_path / "cache"))
        assert a.stopped and a.count >= 4 and b.count > 0
    run_dir = only_dir(tmp_path / "out")
    recs = records(run_dir)
    assert len(recs) == 2 * N_QUESTIONS and all(r["status"] == "ok" for r in recs)
    assert (run_dir / "leaderboard.csv").read_text() == \
        (uninterrupted["run_dir"] / "leaderboard.csv").read_text()
    assert json.loads((run_dir / "config.json").read_text())["base_url"] == [a.base_url, b.base_url]
    llm = json.loads((run_dir / "costs.json").read_text())["llm"]
    # the dead server is out of rotation for the reader (it died under it) and for the judge (which found it dead)
    assert [llm[spec]["servers"][a.base_url]["removals"] for spec in ("openai:toy-reader", "openai:toy-judge")] == \
        [1, 1]
    assert sum(s["servers"][b.base_url]["requests"] for s in llm.values()) == b.count


def test_changed_data_start_a_new_run_and_keep_the_old_one(tmp_path):
    """The same command after the dataset changed (here one gold answer) must not resume the old run's records:
    the data fingerprint is part of the run id, so a new folder is made and the old one stays as it was."""
    dataset = write_dataset(tmp_path)
    cmd = [sys.executable, "-m", "bench", "run", "--datasets", str(dataset), "--rerankers", "none", "--reader",
           "none", "--pool", "2", "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    run(cmd)
    first = only_dir(tmp_path / "out")
    before = (first / "records.jsonl").read_text()
    run(cmd)
    assert only_dir(tmp_path / "out") == first                     # unchanged data: the same run continues
    lines = (dataset / "test.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["qrels"] = {"b0": 1}
    (dataset / "test.jsonl").write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    run(cmd)
    run_dirs = sorted(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert len(run_dirs) == 2 and (first / "records.jsonl").read_text() == before
    (second,) = [p for p in run_dirs if p != first]
    config = json.loads((second / "config.json").read_text())
    assert config["fingerprints"]["data"] != json.loads((first / "config.json").read_text())["fingerprints"]["data"]
    q0 = next(json.loads(l) for l in (second / "records.jsonl").read_text().splitlines() if '"q0"' in l)
    assert q0["metrics"]["MRR@10"] == 0.5                           # scored against the new qrels


def test_judge_server_failure_is_a_failed_query_retried_next_run(uninterrupted, tmp_path):
    # concurrency 1, chunks of 3: the first chunk's 3 reader calls, then its first judge call fails twice
    with ScriptedLLMServer(reply=scripted_reply, faults=["ok", "ok", "ok", "500", "500"]) as srv:
        cmd = bench_cmd(uninterrupted["dataset"], srv.base_url, tmp_path / "out", tmp_path / "cache")
        run(cmd)
        run_dir = only_dir(tmp_path / "out")
        failed = [r for r in records(run_dir) if r["status"] == "failed"]
        assert len(failed) == 1 and failed[0]["error"].startswith("judge: Error code: 500")
        assert "judge" not in failed[0]["metrics"] and "judge" not in failed[0]["info"]
        run(cmd)
    recs = records(run_dir)
    assert len(recs) == 2 * N_QUESTIONS and all(r["status"] == "ok" and "judge" in r["metrics"] for r in recs)
    assert (run_dir / "leaderboard.csv").read_text() == \
        (uninterrupted["run_dir"] / "leaderboard.csv").read_text()


def test_run_in_which_every_query_failed_exits_non_zero(uninterrupted, tmp_path):
    with ScriptedLLMServer(reply=scripted_reply, faults=["500"] * 100) as srv:
        cmd = bench_cmd(uninterrupted["dataset"], srv.base_url, tmp_path / "out", tmp_path / "cache")
        proc = subprocess.run(cmd, env={**os.environ, "TOY_KEY": API_KEY}, capture_output=True, text=True,
                              timeout=300)
    run_dir = only_dir(tmp_path / "out")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == \
        f"error: no query was answered ({2 * N_QUESTIONS} failed); the errors are in {run_dir / 'records.jsonl'}"


def test_queries_without_candidates_get_their_own_status_and_no_reader_call(uninterrupted, tmp_path):
    run_file = tmp_path / "first.trec"       # q6 and q7 are missing from the first stage's run
    run_file.write_text("".join(f"q{i} Q0 a{i} 1 2.0 t\nq{i} Q0 b{i} 2 1.0 t\n" for i in range(N_QUESTIONS - 2)))
    with ScriptedLLMServer(reply=scripted_reply) as srv:
        cmd = bench_cmd(uninterrupted["dataset"], srv.base_url, tmp_path / "out", tmp_path / "cache",
                        "--first-stage", str(run_file))
        proc = run(cmd)
        asked = prompt_text_all = [prompt_text(b) for b in srv.requests]
        assert not any("grove" in t or "heron" in t for t in prompt_text_all), asked
        recs = records(only_dir(tmp_path / "out"))
        empty = sorted((r["reranker"], r["qid"]) for r in recs if r["status"] == "no_candidates")
        assert empty == [("none", "q6"), ("none", "q7"), ("random", "q6"), ("random", "q7")]
        # retrieval metrics 0 (trec_eval -c), no answer metric
        assert all(set(r["metrics"].values()) == {0.0} and "F1" not in r["metrics"] and "nDCG@10" in r["metrics"]
                   and r["answer"] is None for r in recs if r["status"] == "no_candidates")
        assert "2 of 8 queries have no first-stage candidates" in proc.stderr
        none_row = next(l for l in proc.stdout.splitlines() if l.startswith("| none"))
        assert [c.strip() for c in none_row.split("|")[2:6]] == [str(N_QUESTIONS - 2), str(N_QUESTIONS - 2), "0",
                                                                 "2"]
        count = srv.count
        run(cmd)                                   # final: nothing to redo (the server is still up: pre-flight)
        assert len(records(only_dir(tmp_path / "out"))) == 2 * N_QUESTIONS and srv.count == count


def test_second_run_into_a_locked_run_folder_exits_2_naming_the_holder(uninterrupted, tmp_path):
    from bench.store import run_folder_lock

    folder = tmp_path / "out" / "locked"
    folder.mkdir(parents=True)
    cmd = [sys.executable, "-m", "bench", "run", "--datasets", str(uninterrupted["dataset"]), "--rerankers", "none",
           "--reader", "none", "--pool", "2", "--output", str(tmp_path / "out"), "--run-id", "locked"]
    with run_folder_lock(folder):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == (
            f"error: {folder}: another run (pid {os.getpid()}) is writing into this run folder; wait for it to "
            f"finish, or pass another --output or --run-id")
        assert sorted(p.name for p in folder.iterdir()) == [".lock"]     # nothing written by the second run
    run(cmd)                                   # the lock is gone with its holder
    assert len(records(folder)) == N_QUESTIONS


def test_torn_tails_of_records_and_rankings_are_repaired_before_appending(uninterrupted, tmp_path):
    """A kill between a record and its newline: the next run's appends must start on a new line, in records and in
    rankings files alike."""
    cmd = [sys.executable, "-m", "bench", "run", "--datasets", str(uninterrupted["dataset"]), "--rerankers", "none",
           "--reader", "none", "--pool", "2", "--output", str(tmp_path / "out"), "--run-id", "torn"]
    run(cmd)
    folder = tmp_path / "out" / "torn"
    first = records(folder)
    for path, keep in ((folder / "records.jsonl", 5), (folder / "rankings" / "toyqa__none.jsonl", 6)):
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[:keep]))          # the last kept line lost its newline
    run(cmd)
    run(cmd)                                  # reads what the second run appended
    assert records(folder) == first
    rankings = (folder / "rankings" / "toyqa__none.jsonl").read_text().splitlines()
    assert sorted(json.loads(l)["qid"] for l in rankings) == [f"q{i}" for i in range(N_QUESTIONS)]


def test_reader_none_prints_no_llm_cost_table(uninterrupted, tmp_path):
    proc = run([sys.executable, "-m", "bench", "run", "--datasets", str(uninterrupted["dataset"]), "--rerankers",
                "none", "--reader", "none", "--pool", "2", "--output", str(tmp_path / "out")])
    assert "| LLM |" not in proc.stdout and "| stage | seconds |" in proc.stdout


def test_missing_reranker_extra_fails_before_the_run_folder(monkeypatch, tmp_path):
    from bench import errors
    from bench.config import RunConfig
    from bench.runner import Runner

    monkeypatch.setitem(errors.EXTRA_MODULES, "t5", ("sentencepiece", "no_such_module_for_this_test"))
    # a local folder for its weights: the weights are checked first (of what is missing, the hardest to get)
    runner = Runner(RunConfig.from_fields(dict(rerankers=["none", "monot5"], readers=["none"],
                                               output=str(tmp_path / "out"), checkpoints={"monot5": str(tmp_path)})))
    with pytest.raises(errors.MissingDependency) as err:
        runner.run()
    assert str(err.value) == ("reranker 'monot5' needs the Python package 'no_such_module_for_this_test': "
                              "pip install \"rerank-bench[t5]\"")
    assert not (tmp_path / "out").exists()


def write_beir_folder(root: Path) -> Path:
    """Four judged queries; BM25 finds nothing for q3 and q4 (no word of theirs is in the corpus)."""
    folder = root / "nfstyle"
    (folder / "qrels").mkdir(parents=True)
    docs = {"d1": "apple orchard in spring", "d2": "banana plantation by the river", "d3": "cherry blossom festival"}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n"
                                                 for d, t in docs.items()))
    queries = {"q1": "apple", "q2": "banana", "q3": "zebra", "q4": "xylophone"}
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    qrels = [("q1", "d1", 1), ("q2", "d2", 1), ("q2", "d3", 1), ("q3", "d3", 1), ("q4", "d1", 1)]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                               + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in qrels))
    return folder


def test_queries_without_candidates_count_zero_in_retrieval_means_as_trec_eval_c(tmp_path):
    """NFCorpus-style: 2 of 4 judged queries get no BM25 candidate. trec_eval -c averages over all 4: q1 finds its
    one relevant document at rank 1 (nDCG@10 1), q2 one of its two (1 / (1 + 1/log2 3)), q3 and q4 nothing (0)."""
    import pytrec_eval

    from bench.config import Components, Data, Reporting, RunConfig, Runtime
    from bench.runner import Runner

    folder = write_beir_folder(tmp_path)
    runner = Runner(RunConfig(Components(rerankers=["none"], readers=["none"]), Data(datasets=[str(folder)]),
                              runtime=Runtime(cache_dir=str(tmp_path / "cache")),
                              reporting=Reporting(output=str(tmp_path / "out"))))
    markdown = runner.run()
    by_hand = (1 + 1 / (1 + 1 / math.log2(3)) + 0 + 0) / 4
    row = pd.read_csv(runner.out_dir / "leaderboard.csv").iloc[0]
    assert row["nDCG@10"] == pytest.approx(by_hand, abs=1e-12)
    assert row["Recall@10"] == pytest.approx((1 + 0.5) / 4) and row["no_candidates"] == 2
    # pytrec_eval itself on the run file the run wrote, with the queries it drops counted 0 (trec_eval -c)
    run = {}
    for line in (runner.out_dir / "runs" / "nfstyle__none.trec").read_text().splitlines():
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, {})[docid] = float(score)
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1}, "q3": {"d3": 1}, "q4": {"d1": 1}}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    assert sorted(per_query) == ["q1", "q2"]
    assert row["nDCG@10"] == pytest.approx(sum(v["ndcg_cut_10"] for v in per_query.values()) / len(qrels))
    assert "`trec_eval -c`" in markdown and "`no_candidates` from the first stage count 0" in markdown
