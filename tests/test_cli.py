"""User errors from the command line: one line on stderr, exit status 2, no traceback."""
import subprocess
import sys

import pytest


def bench(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["run", "--rerankers", "none", "monot6"], "error: unknown reranker 'monot6'; registered: "),
    (["run", "--datasets", "no/such/place"], "error: unknown dataset 'no/such/place': not a registered name"),
    (["run", "--checkpoint", "monot5"], "error: --checkpoint 'monot5': expected RERANKER=PATH_OR_HUB_ID"),
    (["run", "--rerankers", "oracle"], "error: --baseline 'none' is not among --rerankers (oracle)"),
    (["run", "--pool", "0"], "error: --pool 0: expected a positive number"),
    (["run", "--primary-metric", "f1"], "python -m bench run: error: argument --primary-metric: invalid choice: 'f1'"),
    (["report", "no/such/run"], "error: no/such/run: no records.jsonl"),
])
def test_bad_arguments_fail_with_one_line(args, message):
    proc = bench(*args)
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
