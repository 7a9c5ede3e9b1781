"""rank-llm 0.26.0 itself (in its Python 3.12 venv) against the real local server: its prompts and rankings must
equal our own listwise path's on the same scripted replies, malformed ones included.

The venv comes from ``RERANK_BENCH_RANKLLM_PYTHON`` or is built once under the bench cache
(``python -m rerankers.rankllm_engine --setup``, ~30 s from PyPI); the tests skip only when PyPI is unreachable.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from contextlib import nullcontext

import pytest

from bench.errors import UserError
from bench.types import Candidate, CandidateList, Document, Query
from rerankers import rankllm_engine
from rerankers.registry import RerankerSettings, get_reranker
from tests.llm_server import ScriptedLLMServer, prompt_text


def pypi_reachable() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        probe = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
                                "--disable-pip-version-check", "rank-llm==0.26.0"], capture_output=True, timeout=300)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def rankllm_python(tmp_path_factory):
    if os.environ.get(rankllm_engine.PYTHON_ENV):
        return rankllm_engine.rankllm_python()
    python = rankllm_engine.default_venv() / "bin" / "python"
    ready = python.exists() and subprocess.run([str(python), "-c", "import rank_llm"]).returncode == 0 and \
        (rankllm_engine.tiktoken_cache_dir(python) / rankllm_engine.CL100K_CACHE_NAME).exists()
    if not ready:
        try:
            rankllm_engine.setup_venv()
        except (subprocess.CalledProcessError, RuntimeError):
            if not pypi_reachable():
                pytest.skip("PyPI is unreachable: cannot build the rank-llm 0.26.0 venv")
            raise
    return python


def make_lists() -> list[CandidateList]:
    words = "river city capital france paris bridge museum tower".split()
    return [CandidateList(Query(f"q{q}", f"question {q} about [1] paris"),
                          [Candidate(f"q{q}d{i}", 1.0 / (i + 1),
                                     Document(f"q{q}d{i}", f"passage number {i} " + " ".join(words[:1 + i % 8]),
                                              title="Paris" if i % 4 == 0 else ""))
                           for i in range(n)])
            for q, n in ((0, 27), (1, 9))]


def scripted_permutation(body: dict) -> str:
    """A deterministic reply per window: a pseudo-random order, sometimes partial, duplicated or out of range."""
    numbers = [int(x) for x in re.findall(r"passage number (\d+)", prompt_text(body))]
    order = sorted(range(len(numbers)), key=lambda i: (numbers[i] * 37) % 101)
    ids = [i + 1 for i in order]
    kind = sum(numbers) % 4
    if kind == 1:
        ids = ids[:len(ids) // 2]                      # partial
    elif kind == 2:
        ids = ids[:3] + ids[:2] + ids[3:] + [len(ids) + 5]   # duplicated and out of range
    return " > ".join(f"[{i}]" for i in ids)


def messages_of(body: dict) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in body.get("messages", body.get("input", []))]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rankgpt", "rankzephyr"])
def test_rankllm_matches_our_listwise_path(name, rankllm_python, monkeypatch):
    monkeypatch.setenv(rankllm_engine.PYTHON_ENV, str(rankllm_python))
    lists = make_lists()
    with ScriptedLLMServer(reply=scripted_permutation) as srv:
        ours = get_reranker(name, RerankerSettings(options={"base_url": srv.base_url, "engine": "openai"}))
        with pytest.warns(UserWarning) if name == "rankzephyr" else nullcontext():
            ours_rankings = ours.rerank(lists)
        n_ours = srv.count
        theirs = get_reranker(name, RerankerSettings(options={"base_url": srv.base_url, "engine": "rankllm",
                                                              "timeout": 120}))
        their_rankings = theirs.rerank(lists)
        ours_bodies, their_bodies = srv.requests[:n_ours], srv.requests[n_ours:]
    assert [r.docids for r in their_rankings] == [r.docids for r in ours_rankings]
    assert ours_rankings[0].info["malformed_windows"] > 0      # the repairs were exercised
    assert n_ours == 2 + 1 and len(their_bodies) == n_ours
    assert all("input" in b for b in their_bodies)              # rank-llm's SafeOpenai speaks the Responses API
    key = lambda body: json.dumps(messages_of(body))            # noqa: E731
    assert sorted(map(key, their_bodies)) == sorted(map(key, ours_bodies))   # the very same prompts


@pytest.mark.slow
def test_rankllm_times_out_when_the_server_is_down(rankllm_python, monkeypatch):
    monkeypatch.setenv(rankllm_engine.PYTHON_ENV, str(rankllm_python))
    with socket.socket() as s:          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reranker = get_reranker("rankgpt", RerankerSettings(options={
        "base_url": f"http://127.0.0.1:{port}/v1", "engine": "rankllm", "timeout": 8}))
    with pytest.raises(UserError, match=r"did not finish within 8 s .* is http://127\.0\.0\.1:\d+/v1 up\?"):
        reranker.rerank(make_lists()[1:])


def test_rankllm_engine_needs_a_server_and_an_interpreter(monkeypatch, tmp_path):
    reranker = get_reranker("rankgpt", RerankerSettings(options={"engine": "rankllm"}))
    with pytest.raises(UserError, match="set the base_url option"):
        reranker.rerank(make_lists())
    reranker = get_reranker("rankgpt", RerankerSettings(options={"engine": "rankllm",
                                                                 "base_url": ["http://x/v1", "http://y/v1"]}))
    with pytest.raises(UserError, match="rank-llm talks to one server, got 2 base URLs"):
        reranker.rerank(make_lists())
    monkeypatch.setenv(rankllm_engine.PYTHON_ENV, str(tmp_path / "nope" / "python"))
    reranker = get_reranker("rankgpt", RerankerSettings(options={"engine": "rankllm", "base_url": "http://x/v1"}))
    with pytest.raises(UserError, match="no rank-llm interpreter at .*nope/python .*--setup"):
        reranker.rerank(make_lists())
