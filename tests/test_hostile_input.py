"""Hostile input, second round: checkpoints that ship code, grades that crash pytrec_eval, edited inputs, corrupt
dataset copies, malformed files of every input format, keys where variable names belong (docs/robustness.md)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.llm_server import llm_server  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parent.parent
LOADERS = {"from_pretrained", "load_pretrained", "pipeline", "LLM"}     # calls that can import a checkpoint's code


def model_loads_without_trust_remote_code(root: Path) -> list[str]:
    """``file:line`` of every call in the project's code that loads a checkpoint (``*.from_pretrained``,
    ``Auto*.from_config``, ``load_pretrained``, ``pipeline``, ``vllm.LLM``, ``BiEncoder.load``) without passing
    ``trust_remote_code`` explicitly: such a call leaves the choice to transformers, which asks on stdin."""
    missing = []
    for path in sorted(p for part in ("bench", "rerankers", "rrpo", "benchmarks") for p in (root / part).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            loads = (name in LOADERS or (name == "from_config" and owner.startswith("Auto"))
                     or (name == "load" and owner == "BiEncoder"))
            if loads and not any(k.arg == "trust_remote_code" for k in node.keywords):
                missing.append(f"{path.relative_to(root)}:{node.lineno}")
    return sorted(missing)


def test_every_model_load_passes_trust_remote_code_explicitly():
    assert model_loads_without_trust_remote_code(REPO) == []


def test_the_walk_finds_a_load_that_leaves_the_choice_to_transformers(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "m.py").write_text("from transformers import AutoModel, AutoConfig\n"
                                             "AutoModel.from_pretrained('x', trust_remote_code=False)\n"
                                             "AutoModel.from_config(AutoConfig.from_pretrained('x'))\n"
                                             "BiEncoder.load('x')\n")
    assert model_loads_without_trust_remote_code(tmp_path) == ["bench/m.py:3", "bench/m.py:3", "bench/m.py:4"]


# --- input files: one line naming file (and line), exit 2 ------------------------------------------------------------

def run_cli(capsys, *args: str) -> tuple[int, str]:
    """``python -m bench ARGS`` in this process: (exit status, the last line of stderr, after progress bars)."""
    from bench.cli import main

    status = main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, re.split(r"[\r\n]+", err.strip())[-1] + "\n"


def beir_folder(tmp_path: Path, **replace: str) -> Path:
    """The tiny BEIR folder of tests/test_data.py with texts BM25 finds; ``replace``: file (relative) -> new text."""
    from tests.test_data import write_beir, write_jsonl

    folder = write_beir(tmp_path / "beir")
    write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "alpha text"}, {"_id": "q2", "text": "beta text"},
                                           {"_id": "q3", "text": "gamma"}])
    for name, text in replace.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("grade", ["-5", "99999999999999999999", "5", "1.5", "x"])
def test_a_qrels_grade_out_of_range_is_one_line_naming_file_and_line(grade, tmp_path, capsys):
    folder = beir_folder(tmp_path, **{"qrels/test.tsv": f"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t{grade}\n"})
    status, err = run_cli(capsys, "run", "--datasets", str(folder), "--rerankers", "none", "--reader", "none",
                          "--output", str(tmp_path / "out"))
    assert status == 2 and err == (f"error: {folder / 'qrels' / 'test.tsv'} line 3: relevance grade {grade!r} is not "
                                   f"an integer from -2 to 4\n")
    assert not (tmp_path / "out").exists()


def test_grades_at_the_bounds_are_scored(tmp_path):
    from bench.metrics import retrieval_metrics
    from bench.types import Ranking

    got = retrieval_metrics({"q": Ranking("q", ["a", "b"], [2.0, 1.0])}, {"q": {"a": -2, "b": 4}})["q"]
    # trec_eval's ndcg counts a negative grade as gain 0: DCG = 0/log2(2) + 4/log2(3), ideal = 4/log2(2)
    import math
    assert got["nDCG@10"] == pytest.approx((4 / math.log2(3)) / 4)
    assert got["Recall@10"] == 1.0 and got["MRR@10"] == 0.5


@pytest.mark.parametrize("grade", [-5, 99999999999999999999, True, 2.5])
def test_retrieval_metrics_refuse_a_grade_pytrec_eval_cannot_take(grade):
    from bench.errors import UserError
    from bench.metrics import retrieval_metrics
    from bench.types import Ranking

    with pytest.raises(UserError, match=r"^qrels of query 'q', document 'a': relevance grade .* is not an integer "
                                        r"from -2 to 4$"):
        retrieval_metrics({"q": Ranking("q", ["a"], [1.0])}, {"q": {"a": grade}})


@pytest.mark.parametrize("name, lines, message", [
    ("corpus.jsonl", ['{"_id": 7, "title": "", "text": "alpha text"}'], "line 1: '_id' is a int, expected a string"),
    ("corpus.jsonl", ['{"_id": "d1", "title": ["A", "B"], "text": "alpha text"}'],
     "line 1: 'title' is a list, expected a string"),
    ("queries.jsonl", ['{"_id": "q1", "text": 12}'], "line 1: 'text' is a int, expected a string"),
])
def test_mistyped_beir_fields_name_file_and_line(name, lines, message, tmp_path, capsys):
    folder = beir_folder(tmp_path, **{name: "\n".join(lines) + "\n"})
    if name == "corpus.jsonl":       # the qrels may name only documents of the corpus
        (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    status, err = run_cli(capsys, "run", "--datasets", str(folder), "--rerankers", "none", "--reader", "none",
                          "--output", str(tmp_path / "out"))
    assert status == 2 and err == f"error: {folder / name} {message}\n"


def test_a_corpus_without_any_text_is_refused_before_bm25(tmp_path, capsys):
    folder = beir_folder(tmp_path, **{"corpus.jsonl": '{"_id": "d1", "title": "", "text": ""}\n'
                                                      '{"_id": "d2", "title": "", "text": " "}\n',
                                      "qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\n"})
    status, err = run_cli(capsys, "run", "--datasets", str(folder), "--rerankers", "none", "--reader", "none",
                          "--output", str(tmp_path / "out"))
    assert status == 2 and err == ("error: dataset 'beir' (test): every document's title and text are empty; "
                                   "expected some text to retrieve\n")


def test_a_non_utf8_byte_at_the_top_of_a_trec_run_names_file_and_line(tmp_path, capsys):
    folder = beir_folder(tmp_path)
    run = tmp_path / "run.trec"
    run.write_bytes(b"q1 Q0 d1 1 2.0 x\nq1 Q0 d\xe92 2 1.0 x\n")
    status, err = run_cli(capsys, "run", "--datasets", str(folder), "--first-stage", str(run), "--rerankers", "none",
                          "--reader", "none", "--output", str(tmp_path / "out"))
    assert status == 2 and err == f"error: {run} line 2: not UTF-8 text (byte 0xe9); expected a UTF-8 file\n"


@pytest.mark.parametrize("flag, text, message", [
    ("--reader-template", '{"id": "t", "version": 1, "messages": [',
     "{path}: not a JSON prompt template (Expecting value: line 1 column 40"),
    ("--reader-template", '{"id": "t", "version": "one", "messages": []}',
     "{path}: malformed prompt template; expected a JSON object with id"),
    ("--reader-template", '[1, 2]', "{path}: prompt template lacks the field 'id'; expected a JSON object"),
    ("--config", "reranker_args: 5\n", "--config {path}: reranker_args=5: expected dict\n"),
    ("--config", "reranker_args: {minilm: 5}\n", "--config {path}: reranker_args.minilm=5: expected a mapping of "
                                                 "options\n"),
    ("--config", "datasets: fictional\n", "--config {path}: datasets='fictional': expected a list\n"),
    ("--config", "pool: [3]\n", "--config {path}: pool=[3]: expected int\n"),
])
def test_a_broken_template_or_config_file_is_one_line(flag, text, message, tmp_path, capsys):
    from bench.prompts import load_template

    path = tmp_path / ("mine.json" if flag == "--reader-template" else "run.yaml")
    path.write_text(text)
    load_template.cache_clear()
    status, err = run_cli(capsys, "run", "--datasets", str(beir_folder(tmp_path)), "--rerankers", "none",
                          "--reader", "smollm2", "--top-k", "1", "--output", str(tmp_path / "out"), flag, str(path))
    assert status == 2 and err.startswith(f"error: {message.format(path=path)}") and err.count("\n") == 1


def test_a_pickle_where_safetensors_belong_is_refused(tmp_path, capsys):
    import json
    import pickle

    rrpo = tmp_path / "rrpo"
    rrpo.mkdir()
    (rrpo / "config.json").write_text(json.dumps({"format": "rrpo-checkpoint/1", "backbone": "minilm",
                                                  "backbone_checkpoint": None, "temperature": 1.0,
                                                  "weights": "rrpo_delta.safetensors"}))
    (rrpo / "rrpo_delta.safetensors").write_bytes(pickle.dumps({"weight": [1.0]}))
    status, err = run_cli(capsys, "run", "--rerankers", "none", "rrpo", "--rrpo-checkpoint", str(rrpo),
                          "--reader", "none", "--limit", "1", "--output", str(tmp_path / "out"),
                          "--cache-dir", str(tmp_path / "cache"))
    assert status == 2 and err.startswith(f"error: {rrpo / 'rrpo_delta.safetensors'}: not a safetensors file (")


# --- keys where variable names belong; server URLs ----------------------------------------------------------------------

KEYS = ["ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "fw_3ZfKq8pLm2VxR7tYcN4bW9dH", "sk-proj-abc123SECRET",
        "hf_abcdefSECRETxyz", "gsk_SECRET123", "Bearer SECRET", "AIzaSyA1b2C3d4E5f6G7h8I9j0",
        "q8Vn2LxT5rKw9ZpM3sYb7HcJ4fGd6NaE",            # 32 random characters, mixed case
        "Q8VN2LXT5RKW9ZPM3SYB7HCJ4FGD6NAE",            # the same, upper case: one 32-character word
        "Q8VN_2LXT_5RKW_9ZPM_3SYB_7HCJ_4FGD_6NAE",     # cut into words: too many digits
        "QVNLXTRKWZPMSYBHCJFGDNAEUIO_KEY",            # no digits, 27-letter word
        "ABCDEFGHIJKLMNOP_QRSTUVWXYZ_01",              # words of 16 letters, all different: high entropy
        "SERVER_KEY_20245", "APPLICATIONCREDSX_KEY"]   # just past the bounds: 5 digits, a 17-letter word
NAMES = ["OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "HUGGING_FACE_HUB_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS",
         "VLLM_KEY", "HF_TOKEN", "MY_VLLM_SERVER_KEY_2", "RB_TEST_JUDGE_KEY", "_PRIVATE_KEY",
         "SERVER_KEY_2024", "APPLICATIONCREDS_KEY"]      # at the bounds: 4 digits, a 16-letter word


@pytest.mark.parametrize("value", KEYS)
def test_a_value_that_is_no_plausible_variable_name_is_refused_unechoed_and_unwritten(value, tmp_path, capsys):
    for flag in ("--api-key-env", "--judge-api-key-env"):
        status, err = run_cli(capsys, "run", "--rerankers", "none", "--reader", "none", flag, value,
                              "--output", str(tmp_path / "out"))
        assert status == 2 and err == (f"error: {flag}: the value is not the NAME of an environment variable "
                                       f"(upper-case letters, digits and underscores, e.g. OPENAI_API_KEY) and may "
                                       f"be a key; it is not shown here\n")
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", NAMES)
def test_plausible_variable_names_pass(name):
    from bench.options import check_key_variable_name

    check_key_variable_name("--api-key-env", name)


@pytest.mark.parametrize("url", ["not-a-url", "localhost:8000/v1", "ftp://host/v1", "http://", "http://:8000/v1",
                                 "http://host:0/v1", "http://host:99999/v1"])
def test_a_base_url_that_is_no_http_url_is_refused_before_the_run(url, tmp_path, capsys):
    for flag in ("--base-url", "--judge-base-url"):
        status, err = run_cli(capsys, "run", "--rerankers", "none", "--reader", "openai:m", flag,
                              "http://127.0.0.1:9/v1", url, "--output", str(tmp_path / "out"))
        assert status == 2 and err == (f"error: {flag} {url!r}: expected an http(s) URL with a host, e.g. "
                                       f"http://localhost:8000/v1\n")
        assert not (tmp_path / "out").exists()


def test_the_run_id_does_not_depend_on_the_servers():
    from bench.config import Components, RunConfig, Servers

    content = {"data": ["x"]}
    one = RunConfig(Components(readers=["openai:m"]), servers=Servers(base_url="http://a:8000/v1"))
    fleet = RunConfig(Components(readers=["openai:m"]), servers=Servers(
        base_url=["http://b:8000/v1", "http://c:8000/v1"], judge_base_url="https://api.example.com/v1"))
    other_model = RunConfig(Components(readers=["openai:n"]), servers=Servers(base_url="http://a:8000/v1"))
    one, fleet, other_model = (c.resolved_run_id(content) for c in (one, fleet, other_model))
    assert one == fleet != other_model


# --- edited inputs never resume a run made from their old content -------------------------------------------------------

def test_an_edited_first_stage_file_starts_a_new_run_with_its_own_table(tmp_path, capsys):
    from bench.cli import main

    folder = beir_folder(tmp_path)        # q1 judges d1 (2) and d3 (1); q2 judges d2 (1)
    run = tmp_path / "run.trec"
    args = ["run", "--datasets", str(folder), "--first-stage", str(run), "--rerankers", "none", "--reader", "none",
            "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]

    def ndcg_at_10() -> tuple[set, float]:
        assert main(args) == 0
        capsys.readouterr()
        import pandas as pd

        folders = {p.name for p in (tmp_path / "out").iterdir()}
        newest = max((tmp_path / "out").iterdir(), key=lambda p: p.stat().st_mtime_ns)
        return folders, float(pd.read_csv(newest / "leaderboard.csv")["nDCG@10"].iloc[0])

    run.write_text("q1 Q0 d2 1 3.0 x\nq1 Q0 d1 2 2.0 x\nq2 Q0 d1 1 2.0 x\n")        # q2's relevant d2 missing
    first, worst = ndcg_at_10()
    run.write_text("q1 Q0 d1 1 3.0 x\nq1 Q0 d3 2 2.0 x\nq2 Q0 d2 1 2.0 x\n")        # the ideal ranking
    second, best = ndcg_at_10()
    assert len(first) == 1 and len(second) == 2 and best == 1.0 and worst < 0.5


def test_the_run_id_follows_the_content_of_a_template_file(tmp_path):
    import json

    from bench.config import Components, RunConfig
    from bench.runner import input_file_digests

    template = tmp_path / "mine.json"
    template.write_text(json.dumps({"id": "mine", "version": 1, "messages": [{"role": "user", "content": "{question}"}]}))
    config = RunConfig(Components(reader_template=str(template)))
    before = input_file_digests(config)
    template.write_text(json.dumps({"id": "mine", "version": 1, "messages": [{"role": "user", "content": "Q: {question}"}]}))
    after = input_file_digests(config)
    assert list(before) == [str(template)] and before != after
    assert config.resolved_run_id({"files": before}) != config.resolved_run_id({"files": after})
    assert input_file_digests(RunConfig()) == {}          # the packaged defaults name no file: run ids hold


# --- a dataset's files are checked at every load, at the cost of a stat ------------------------------------------------

def cached_beir_copy(cache: Path, name: str = "nfcorpus") -> Path:
    """A BEIR folder where ``bench`` keeps its downloads, with the digests a pull records."""
    from bench.data import catalog
    from tests.test_data import write_beir

    folder = write_beir(cache / "beir" / name)
    catalog.write_manifest(catalog.CATALOG[name], folder)
    return folder


def test_a_truncated_cached_dataset_does_not_load(tmp_path, capsys):
    from bench.data import load_dataset

    folder = cached_beir_copy(tmp_path / "cache")
    assert len(load_dataset("nfcorpus", cache_dir=str(tmp_path / "cache")).corpus) == 3
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(corpus.read_text().splitlines(keepends=True)[:2]))      # a line cut off
    status, err = run_cli(capsys, "run", "--datasets", "nfcorpus", "--cache-dir", str(tmp_path / "cache"),
                          "--rerankers", "none", "--reader", "none", "--output", str(tmp_path / "out"))
    assert status == 2 and re.fullmatch(rf"error: {re.escape(str(corpus))}: sha256 \w+ does not match the recorded "
                                        rf"in SHA256SUMS at pull \w+; delete it and run `python -m bench data pull "
                                        rf"nfcorpus`\n", err)
    assert not (tmp_path / "out").exists()


def test_a_load_rehashes_only_files_whose_size_or_mtime_changed(tmp_path, monkeypatch):
    import os

    from bench.data import catalog, load_dataset

    folder = cached_beir_copy(tmp_path / "cache")
    hashed = []
    real = catalog.file_digest
    monkeypatch.setattr(catalog, "file_digest", lambda path, algorithm="sha256": hashed.append(path.name) or
                        real(path, algorithm))
    for _ in range(2):
        load_dataset("nfcorpus", cache_dir=str(tmp_path / "cache"))
    assert sorted(hashed) == ["corpus.jsonl", "queries.jsonl", "test.tsv"]          # the first load only
    queries = folder / "queries.jsonl"
    os.utime(queries, ns=(queries.stat().st_atime_ns, queries.stat().st_mtime_ns + 10**9))
    hashed.clear()
    load_dataset("nfcorpus", cache_dir=str(tmp_path / "cache"))
    assert hashed == ["queries.jsonl"]


def test_report_waits_for_no_run_it_refuses_while_a_run_holds_the_folder(tmp_path, capsys):
    """``bench report`` repairs a torn records.jsonl in place; while a run appends to the file it must not."""
    import os

    from bench.cli import main
    from bench.runner import run_folder_lock

    assert main(["run", "--datasets", str(beir_folder(tmp_path)), "--rerankers", "none", "--reader", "none",
                 "--output", str(tmp_path / "out"), "--run-id", "r", "--cache-dir", str(tmp_path / "cache")]) == 0
    folder = tmp_path / "out" / "r"
    records = folder / "records.jsonl"
    with records.open("ab") as f:
        f.write(b'{"dataset": "be')                       # a record being appended
    before = records.read_bytes()
    capsys.readouterr()
    with run_folder_lock(folder):
        status, err = run_cli(capsys, "report", str(folder))
        assert status == 2 and err == (f"error: {folder}: another run (pid {os.getpid()}) is writing into this run "
                                       f"folder; wait for it to finish, or pass another --output or --run-id\n")
        assert records.read_bytes() == before
    assert main(["report", str(folder)]) == 0            # once the run is done: the torn tail is cut
    assert records.read_bytes() == before[:before.rindex(b"\n") + 1]


def test_rrpo_train_applies_the_same_server_checks(tmp_path, capsys):
    from rrpo.__main__ import main as rrpo_main

    args = ["train", "--dataset", "fictional", "--split", "train", "--limit", "2", "--reader", "openai:m",
            "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "out")]
    assert rrpo_main([*args, "--api-key-env", KEYS[0]]) == 2
    err = capsys.readouterr().err
    assert "the value is not the NAME of an environment variable" in err and KEYS[0] not in err
    assert rrpo_main([*args, "--base-url", "not-a-url"]) == 2
    assert "--base-url 'not-a-url': expected an http(s) URL" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- the shared cache: a prompt asked by several processes at once is paid once ------------------------------------------

def test_three_processes_asking_the_same_prompts_at_once_pay_for_each_once(tmp_path, monkeypatch):
    """Three processes, one cache file, the same 40 uncached prompts, started at a barrier (0.3 s per reply): 40
    server requests (120 before the in-flight claims), and none when they ask again."""
    import multiprocessing as mp
    import time

    from benchmarks.shared_cache_double_payment import N_PROMPTS, run_processes
    from tests.llm_server import ScriptedLLMServer

    monkeypatch.setenv("RB_TEST_LLM_KEY", "x")
    ctx = mp.get_context("spawn")
    monkeypatch.setattr(mp, "Process", ctx.Process)
    monkeypatch.setattr(mp, "Barrier", ctx.Barrier)
    with ScriptedLLMServer(reply=lambda body: time.sleep(0.3) or "ok") as srv:
        run_processes(srv.base_url, str(tmp_path / "cache.sqlite"))
        assert srv.count == N_PROMPTS
        run_processes(srv.base_url, str(tmp_path / "cache.sqlite"))
        assert srv.count == N_PROMPTS


def claimed_engine(tmp_path, llm_server):
    from bench.llm.cache import CachedEngine, LLMCache
    from bench.llm.openai_engine import OpenAIEngine

    cache = LLMCache(tmp_path / "cache.sqlite")
    return cache, CachedEngine(OpenAIEngine("scripted", base_url=llm_server.base_url), cache)


def question():
    from bench.llm.base import ChatRequest

    return ChatRequest.chat([{"role": "user", "content": "who?"}], max_tokens=8)


def test_a_claim_whose_process_died_is_void(tmp_path, llm_server, monkeypatch):
    import socket
    import subprocess
    import sys
    import time

    from bench.llm.cache import cache_key

    cache, engine = claimed_engine(tmp_path, llm_server)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    key = cache_key(engine.identity(), question())
    with cache._write() as db:                      # a claim left by a process killed mid-request
        db.execute("INSERT INTO inflight VALUES (?, 'gone', ?, ?, ?)", (key, socket.gethostname(), int(dead),
                                                                         time.time()))
    monkeypatch.setattr("bench.llm.cache.CLAIM_LEASE_S", 40.0)
    started = time.monotonic()
    assert [r.text for r in engine.generate([question()])] == ["ok"] and llm_server.count == 1
    assert time.monotonic() - started < 30       # not at the lease's end: the claimant is known dead at once


@pytest.mark.parametrize("outcome", ["answered", "failed"])
def test_a_prompt_claimed_by_a_live_process_is_waited_for(outcome, tmp_path, llm_server):
    """Another process asks the same prompt: its answer is served from the cache when it arrives (no request);
    when its call fails, the claim ends and this process asks itself."""
    import threading
    import time

    from bench.llm.base import ChatResponse
    from bench.llm.cache import cache_key

    cache, engine = claimed_engine(tmp_path, llm_server)
    key = cache_key(engine.identity(), question())
    assert cache.claim([key], "other") == {key}
    result = []
    waiter = threading.Thread(target=lambda: result.extend(engine.generate([question()])))
    started = time.monotonic()
    waiter.start()
    time.sleep(0.6)
    assert waiter.is_alive() and llm_server.count == 0
    if outcome == "answered":
        cache.put_many([(key, question(), ChatResponse("theirs", {"prompt_tokens": 1}))])
    cache.release([key], "other")
    waiter.join(10)
    assert time.monotonic() - started >= 0.6
    if outcome == "answered":
        assert [r.text for r in result] == ["theirs"] and llm_server.count == 0 and engine.stats["hits"] == 1
    else:
        assert [r.text for r in result] == ["ok"] and llm_server.count == 1 and engine.stats["calls"] == 1
