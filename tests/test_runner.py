"""End-to-end runs of ``python -m bench run`` against a real local OpenAI-compatible server: resumption after
SIGKILL, zero LLM calls on a re-run, failed queries recorded and retried, no API key in any written file."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.llm_server import ScriptedLLMServer, prompt_text

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


def bench_cmd(dataset: Path, base_url: str, out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench", "run", "--datasets", str(dataset), "--rerankers", "none", "random",
            "--reader", "openai:toy-reader", "--judge", "openai:toy-judge", "--base-url", base_url,
            "--api-key-env", "TOY_KEY", "--pool", "2", "--top-k", "1", "--chunk-size", "3", "--concurrency", "1",
            "--max-retries", "1", "--output", str(out), "--cache-dir", str(cache), *extra]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOY_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
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


def test_failed_query_is_counted_then_retried(uninterrupted, tmp_path):
    with ScriptedLLMServer(reply=scripted_reply, faults=["500", "500"]) as srv:   # 1 retry: first call fails
        cmd = bench_cmd(uninterrupted["dataset"], srv.base_url, tmp_path / "out", tmp_path / "cache")
        out = run(cmd).stdout
        run_dir = only_dir(tmp_path / "out")
        failed = [r for r in records(run_dir) if r["status"] == "failed"]
        assert len(failed) == 1 and "500" in failed[0]["error"]
        none_row = next(l for l in out.splitlines() if l.startswith("| none"))
        assert [c.strip() for c in none_row.split("|")[2:4]] == [str(N_QUESTIONS - 1), "1"]
        run(cmd)
    recs = records(run_dir)
    assert len(recs) == 2 * N_QUESTIONS and all(r["status"] == "ok" for r in recs)
    assert (run_dir / "leaderboard.csv").read_text() == \
        (uninterrupted["run_dir"] / "leaderboard.csv").read_text()


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
