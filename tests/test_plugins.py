"""Components added from OUTSIDE the package, through real entry points: a tiny installed-looking distribution (a
module plus ``*.dist-info/{METADATA,entry_points.txt}`` in a folder on the path, which importlib.metadata finds
like any installed package) adds a pointwise reranker, a dataset format, a first stage, an LLM engine and an answer
metric, and a ``bench run`` uses all five end to end. A broken plugin breaks only itself."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PLUGIN = '''
"""A third-party package: one file per kind would do; one module keeps the test short."""
from pathlib import Path

import torch

from bench.data import Dataset
from bench.llm.base import ChatResponse, Engine
from bench.metrics import Metric
from bench.retrieval import given_candidates
from bench.types import CandidateList, Document, Query
from rerankers.base import PointwiseReranker


class ShortestFirst(PointwiseReranker):
    """Scores a passage by minus its length: the shortest passage first."""

    registry_meta = {"kind": "pointwise", "description": "shortest passage first (plugin)"}

    @property
    def model(self):
        return torch.nn.Identity()

    def score(self, queries, passages):
        return torch.tensor([-float(len(p)) for p in passages])


def pipe_table(split="test", cache_dir=None):
    """A dataset format of its own: ``qid|question|answer|docid:passage;docid:passage`` lines."""
    corpus, queries, pools = {}, [], {}
    for line in (Path(__file__).parent / f"{split}.pipes").read_text().splitlines():
        qid, question, answer, docs = line.split("|")
        pools[qid] = []
        for item in docs.split(";"):
            docid, text = item.split(":")
            corpus[docid] = Document(docid=docid, text=text)
            pools[qid].append(docid)
        queries.append(Query(qid=qid, text=question, answers=[answer], qrels={pools[qid][0]: 1}))
    return Dataset("pipe-table", split, corpus, queries, candidates=pools)


pipe_table.registry_meta = {"description": "pipe-separated QA lines (plugin)"}


def reversed_pools(dataset, pool, cache_dir=None):
    """The dataset's own pools, last passage first."""
    return [CandidateList(cl.query, cl.candidates[::-1]) for cl in given_candidates(dataset, pool)]


class ParrotEngine(Engine):
    """Answers every request with its model name (``parrot:<word>``)."""

    kind = "parrot"

    def __init__(self, model):
        self.model = model

    def generate(self, requests):
        return [ChatResponse(self.model, {"prompt_tokens": 1, "completion_tokens": 1}) for _ in requests]


def parrot(model, options):
    return ParrotEngine(model)


parrot.registry_meta = {"model": "<word>", "description": "says its model name (plugin)"}

answer_words = Metric("answer_words", "answer", False, False, "words in the answer (plugin)",
                      lambda prediction, gold: float(len(prediction.split())))
'''

ENTRY_POINTS = """
[rerank_bench.rerankers]
shortest-first = rb_plugin:ShortestFirst
broken-reranker = rb_plugin_missing:Nothing
not-a-reranker = rb_plugin:ParrotEngine

[rerank_bench.datasets]
pipe-table = rb_plugin:pipe_table

[rerank_bench.first_stages]
reversed-pools = rb_plugin:reversed_pools

[rerank_bench.engines]
parrot = rb_plugin:parrot

[rerank_bench.metrics]
answer_words = rb_plugin:answer_words
"""

# Each question ranks its own passages (first stage "given"), its gold one first: the longest for q1, so shortest-first
# demotes it, the shortest for q2.
DATA = ("q1|Where is the tower?|Paris|d1:the tower stands in Paris by the river Seine;d2:a tower;d3:tower town\n"
        "q2|Which tower is tall?|Eiffel|d4:Eiffel tower;d5:the tall tower is a tower of steel and rivets\n")


@pytest.fixture
def plugin_path(tmp_path):
    site = tmp_path / "site"
    pkg = site / "rb_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(PLUGIN)
    (pkg / "test.pipes").write_text(DATA)
    dist = site / "rb_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rb-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def bench(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)])}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=site.parent)


def test_plugin_components_run_end_to_end(plugin_path, tmp_path):
    out = tmp_path / "out"
    proc = bench(plugin_path, "run", "--datasets", "pipe-table", "--rerankers", "none", "shortest-first",
                 "--reader", "parrot:Paris", "--first-stage", "reversed-pools", "--pool", "3", "--top-k", "1",
                 "--output", str(out), "--run-id", "p", "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    records = {(r["reranker"], r["qid"]): r for r in map(json.loads, (out / "p" / "records.jsonl").open())}
    assert len(records) == 4 and {r["status"] for r in records.values()} == {"ok"}
    # the plugin dataset's format was read, the plugin engine answered, the plugin metric scored every answer
    assert {r["answer"] for r in records.values()} == {"Paris"}
    assert all(r["metrics"]["answer_words"] == 1.0 for r in records.values())
    assert records[("none", "q1")]["metrics"]["EM"] == 1.0 and records[("none", "q2")]["metrics"]["EM"] == 0.0
    # the plugin first stage reversed each pool; the plugin reranker ordered by passage length
    assert records[("none", "q1")]["ranking"] == ["d3", "d2", "d1"]
    assert records[("shortest-first", "q1")]["ranking"] == ["d2", "d3", "d1"]
    assert records[("shortest-first", "q2")]["ranking"] == ["d4", "d5"]
    assert records[("none", "q2")]["metrics"]["nDCG@1"] == 0.0 and records[("shortest-first", "q2")]["metrics"][
        "nDCG@1"] == 1.0
    assert "answer_words" in (out / "p" / "leaderboard.csv").read_text().splitlines()[0]


def test_list_shows_plugins_and_survives_a_broken_one(plugin_path):
    proc = bench(plugin_path, "list")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines() if line.startswith("|")}
    assert "entry point (rb-plugin)" in rows["shortest-first"] and "shortest passage first" in rows["shortest-first"]
    assert "cannot load" in rows["broken-reranker"] and "rb_plugin_missing" in rows["broken-reranker"]
    assert "entry point (rb-plugin)" in rows["pipe-table"] and "entry point (rb-plugin)" in rows["parrot:<word>"]
    assert "castorini/monot5-base-msmarco-10k" in rows["monot5"]          # the built-ins are all still there


@pytest.mark.parametrize("reranker, message", [
    ("broken-reranker", "error: reranker 'broken-reranker' (entry point (rb-plugin)): cannot load "
                        "rb_plugin_missing:Nothing (ModuleNotFoundError: No module named 'rb_plugin_missing')"),
    ("not-a-reranker", "error: reranker 'not-a-reranker' (entry point (rb-plugin)): 'rb_plugin:ParrotEngine' is not "
                       "a rerankers.base.Reranker"),
])
def test_a_broken_plugin_fails_alone_in_one_line(plugin_path, tmp_path, reranker, message):
    proc = bench(plugin_path, "run", "--datasets", "pipe-table", "--rerankers", "none", reranker, "--reader", "none",
                 "--first-stage", "given", "--pool", "3", "--output", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == message
