"""Before the first question: the baseline is run, and every component is there (weights local, in the hub cache or
downloadable now; servers answering; templates parsing), or the run stops in one line without a run folder."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.environment import check_server_reachable, check_weights_available
from bench.errors import UserError
from tests.test_runner import write_dataset


def closed_port() -> int:
    with socket.socket() as s:          # a port nothing listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_run(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    dataset = tmp_path / "toyqa" if (tmp_path / "toyqa").exists() else write_dataset(tmp_path)
    cmd = [sys.executable, "-m", "bench", "run", "--datasets", str(dataset), "--pool", "4", "--top-k", "1",
           "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, rows", [
    (["--rerankers", "oracle"], ["none", "oracle"]),
    (["--rerankers", "oracle", "--baseline", "random"], ["random", "oracle"]),
])
def test_the_baseline_is_run_when_not_listed_with_one_line_saying_so(tmp_path, args, rows):
    proc = bench_run(tmp_path, "--reader", "none", *args)
    assert proc.returncode == 0, proc.stderr
    baseline = rows[0]
    notes = [line for line in proc.stderr.splitlines() if "not among --rerankers" in line]
    assert notes == [f"--baseline {baseline} is not among --rerankers: added as the first row (the reranker every "
                     f"other is compared with{'; the first-stage order, free' if baseline == 'none' else ''})"]
    (run_dir,) = (tmp_path / "out").iterdir()
    assert list(pd.read_csv(run_dir / "leaderboard.csv")["reranker"]) == rows


def test_a_listed_baseline_is_not_added_again(tmp_path):
    proc = bench_run(tmp_path, "--reader", "none", "--rerankers", "oracle", "none")
    assert proc.returncode == 0 and "not among --rerankers" not in proc.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    assert list(pd.read_csv(run_dir / "leaderboard.csv")["reranker"]) == ["oracle", "none"]


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def test_weights_neither_local_nor_cached_stop_the_run_before_any_folder(tmp_path):
    """The README's headline pair without the 7B weights: one line naming the checkpoint and how to get it; the
    `rrpo` reranker before it in the list is not run (no folder, no rankings)."""
    proc = bench_run(tmp_path, "--rerankers", "rrpo", "rankzephyr", "--reader", "none",
                     env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")})
    assert one_line_error(proc) == (
        "error: reranker 'rankzephyr': checkpoint 'castorini/rank_zephyr_7b_v1_full' is not on this machine and "
        "HF_HUB_OFFLINE is set; download it where the hub is reachable (`hf download "
        "castorini/rank_zephyr_7b_v1_full`, then copy the hub cache), or pass a local folder with --checkpoint "
        "rankzephyr=FOLDER")
    assert not (tmp_path / "out").exists()


def test_an_unreachable_hub_is_said_at_once_instead_of_retried(tmp_path):
    port = closed_port()
    proc = bench_run(tmp_path, "--rerankers", "none", "minilm-cross-encoder", "--reader", "none",
                     env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{port}",
                          "HF_HUB_CACHE": str(tmp_path / "hub")})
    message = one_line_error(proc)
    assert message.startswith("error: reranker 'minilm-cross-encoder': checkpoint "
                              f"'cross-encoder/ms-marco-MiniLM-L-6-v2' is not on this machine and the hub "
                              f"(http://127.0.0.1:{port}) cannot be reached (ConnectionRefusedError")
    assert not (tmp_path / "out").exists()


def test_a_missing_local_checkpoint_folder_is_named(tmp_path):
    proc = bench_run(tmp_path, "--rerankers", "none", "minilm-cross-encoder", "--reader", "none",
                     "--checkpoint", f"minilm-cross-encoder={tmp_path / 'no' / 'such'}")
    assert one_line_error(proc) == (f"error: reranker 'minilm-cross-encoder': checkpoint folder "
                                    f"{tmp_path / 'no' / 'such'} does not exist")
    assert not (tmp_path / "out").exists()


def test_weights_in_the_hub_cache_pass_without_the_network(tmp_path, monkeypatch):
    """A snapshot in the hub cache is enough, online or not; the same id without it is refused."""
    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_weights_available("org/tiny", "reranker 'x'")
    with pytest.raises(UserError, match=r"^reranker 'x': checkpoint 'org/other' is not on this machine and "
                                        r"HF_HUB_OFFLINE is set"):
        check_weights_available("org/other", "reranker 'x'")
    with pytest.raises(UserError, match=r"is neither a local folder nor a hub id"):
        check_weights_available("not a hub id", "reranker 'x'")


def test_an_unreachable_reader_server_stops_the_run_before_any_folder(tmp_path):
    port = closed_port()
    proc = bench_run(tmp_path, "--rerankers", "none", "--reader", "openai:toy", "--base-url",
                     f"http://127.0.0.1:{port}/v1")
    assert one_line_error(proc).startswith(f"error: reader openai:toy: the server http://127.0.0.1:{port}/v1 cannot "
                                           f"be reached (ConnectionRefusedError")
    assert not (tmp_path / "out").exists()


def test_a_server_that_answers_passes_whatever_its_status():
    """Any HTTP answer (here 404 from a server without /models) means the server is there."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - stdlib naming
            self.send_error(404)

        def log_message(self, *args):
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), NotFound) as server:
        Thread(target=server.serve_forever, daemon=True).start()
        check_server_reachable(f"http://127.0.0.1:{server.server_address[1]}/v1", "reader openai:x")
        server.shutdown()


def test_a_missing_template_stops_the_run_before_any_folder(tmp_path):
    """Templates are read before anything else is checked (here: before the reader's server, which is down)."""
    proc = bench_run(tmp_path, "--rerankers", "none", "--reader", "openai:toy", "--base-url",
                     f"http://127.0.0.1:{closed_port()}/v1", "--reader-template", str(tmp_path / "no-such-template.json"))
    assert one_line_error(proc).startswith(f"error: unknown prompt template '{tmp_path / 'no-such-template.json'}'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--timeout", "0"], "error: --timeout 0.0: expected a positive number of seconds"),
    (["--max-retries", "-1"], "error: --max-retries -1: expected 0 or a positive number"),
    (["--reader", "openai:toy", "--base-url", "https://api.example.com/v1", "--api-key-env", "NO_SUCH_KEY_VARIABLE"],
     "error: reader openai:toy: the environment variable NO_SUCH_KEY_VARIABLE (the API key of "
     "https://api.example.com/v1) is not set"),
])
def test_server_settings_are_refused_before_any_folder(tmp_path, args, message):
    proc = bench_run(tmp_path, "--rerankers", "none", *(["--reader", "none"] if "--reader" not in args else []),
                     *args, env={"NO_SUCH_KEY_VARIABLE": ""})
    assert one_line_error(proc) == message
    assert not (tmp_path / "out").exists()


def test_a_malformed_first_stage_file_stops_the_run_before_any_folder(tmp_path):
    run_file = tmp_path / "first.trec"
    run_file.write_text("q0 Q0 a0 1 2.0 t\nq1 Q0 a1 1\n")
    proc = bench_run(tmp_path, "--rerankers", "none", "--reader", "none", "--first-stage", str(run_file))
    assert one_line_error(proc) == (f"error: {run_file} line 2: expected 6 fields 'qid Q0 docid rank score tag', "
                                    f"got 4")
    assert not (tmp_path / "out").exists()
