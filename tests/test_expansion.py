"""Query2doc expansion (bench.expansion): the exact expanded query of each first stage, and ``bench run --query2doc``
end to end against a real local OpenAI-compatible server (tests/llm_server.py): only the first stage sees the
pseudo-document, the records trace it, a re-run makes no LLM call, runs without it keep their ids."""
from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from bench.cli import main
from bench.config import Data, RunConfig
from bench.expansion import (EXPANSIONS, clean_pseudo_document, dense_expansion, expansion_for, sparse_expansion)
from bench.errors import UserError
from bench.prompts import load_template
from tests.llm_server import ScriptedLLMServer, prompt_text

ITEMS = ["amber", "basil", "cedar", "delta"]
Q2D_INSTRUCTION = "Write a passage that answers the given query:"
MARK = "pseudomark"       # a word only the pseudo-documents contain: it must reach no reranker, reader or judge


def test_sparse_expansion_is_the_query_five_times_then_the_pseudo_document():
    assert sparse_expansion("who built it?", "Ada built it.") == (
        "who built it? who built it? who built it? who built it? who built it? Ada built it.")
    assert expansion_for("bm25") is sparse_expansion


def test_dense_expansion_is_query_sep_pseudo_document():
    assert dense_expansion("who built it?", "Ada built it.") == "who built it? [SEP] Ada built it."
    assert expansion_for("dense") is dense_expansion
    assert set(EXPANSIONS) == {"bm25", "dense"}
    with pytest.raises(UserError, match=r"first stage 'given' does not search with the query text"):
        expansion_for("given")


def test_pseudo_document_is_cleaned_but_not_cut_at_its_first_line():
    assert clean_pseudo_document("  Passage:  Ada built it\nin 1901.\n\n It stands.  ") == \
        "Ada built it in 1901. It stands."
    assert clean_pseudo_document("The passage: not a label") == "The passage: not a label"


def write_dataset(root: Path) -> Path:
    """Per item: the answer passage (the only one with the code zq<i>x) and a passage that repeats the item's name,
    which plain BM25 puts first for "What is the code of <item>?"."""
    folder = root / "codes"
    folder.mkdir()
    with (folder / "corpus.jsonl").open("w") as f:
        for i, item in enumerate(ITEMS):
            f.write(json.dumps({"id": f"a{i}", "title": "", "text": f"The code of {item} is zq{i}x."}) + "\n")
            f.write(json.dumps({"id": f"b{i}", "title": item,
                                "text": f"{item} {item} {item}: the {item} {item} note."}) + "\n")
    with (folder / "test.jsonl").open("w") as f:
        for i, item in enumerate(ITEMS):
            f.write(json.dumps({"id": f"q{i}", "question": f"What is the code of {item}?",
                                "golden_answers": [f"zq{i}x"], "qrels": {f"a{i}": 1}}) + "\n")
    return folder


def pseudo_doc_reply(query: str) -> str:
    item = next(i for i, name in enumerate(ITEMS) if name in query)
    return f"Passage: The {MARK}\n\nsays zq{item}x."     # a label and line breaks that cleaning removes


def scripted_reply(body: dict) -> str:
    text = prompt_text(body)
    if Q2D_INSTRUCTION in text:
        return pseudo_doc_reply(re.search(r"Query: (.*)\nPassage:", text).group(1))
    if "Rank the passages" in text or "rank the passages" in text.lower():
        return "[1] > [2]"
    codes = re.findall(r"zq\d+x", text)
    return codes[0] if codes else "unknown"


def is_query2doc(body: dict) -> bool:
    return Q2D_INSTRUCTION in prompt_text(body)


def run_args(dataset: Path, srv: ScriptedLLMServer, root: Path, *extra: str) -> list[str]:
    return ["run", "--datasets", str(dataset), "--rerankers", "none", "rankgpt", "--reader", "openai:toy-reader",
            "--base-url", srv.base_url, "--api-key-env", "TOY_KEY", "--pool", "2", "--top-k", "1", "--max-retries",
            "1", "--output", str(root / "out"), "--cache-dir", str(root / "cache"), *extra]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("q2d")
    dataset = write_dataset(root)
    mp = pytest.MonkeyPatch()
    mp.setenv("TOY_KEY", "sk-toy")
    try:
        with ScriptedLLMServer(reply=scripted_reply) as srv:
            assert main(run_args(dataset, srv, root)) == 0
            plain = srv.count
            assert main(run_args(dataset, srv, root, "--query2doc", "openai:toy-q2d")) == 0
            first = list(srv.requests[plain:])
            assert main(run_args(dataset, srv, root, "--query2doc", "openai:toy-q2d")) == 0
            again = srv.count - plain - len(first)
    finally:
        mp.undo()
    by_q2d = {}
    for run_dir in (root / "out").iterdir():
        config = json.loads((run_dir / "config.json").read_text())
        by_q2d[config["query2doc"]] = run_dir
    return {"root": root, "plain": by_q2d[None], "expanded": by_q2d["openai:toy-q2d"], "requests": first,
            "again": again}


def test_pseudo_documents_steer_the_first_stage_only(runs):
    plain = {r["qid"]: r for r in records(runs["plain"]) if r["reranker"] == "none"}
    expanded = {r["qid"]: r for r in records(runs["expanded"]) if r["reranker"] == "none"}
    # plain BM25 puts the passage that repeats the item's name first; the pseudo-document's code finds the answer
    assert [plain[f"q{i}"]["ranking"] for i in range(len(ITEMS))] == [[f"b{i}", f"a{i}"] for i in range(len(ITEMS))]
    assert [expanded[f"q{i}"]["ranking"] for i in range(len(ITEMS))] == [[f"a{i}", f"b{i}"] for i in range(len(ITEMS))]
    assert all(r["metrics"]["EM"] == 1.0 for r in expanded.values())


def test_rerankers_readers_and_records_see_the_original_question(runs):
    q2d = [b for b in runs["requests"] if is_query2doc(b)]
    others = [b for b in runs["requests"] if not is_query2doc(b)]
    assert sorted(re.search(r"Query: (.*)\n", prompt_text(b)).group(1) for b in q2d) == \
        sorted(f"What is the code of {item}?" for item in ITEMS)
    readers = [prompt_text(b) for b in others if b.get("model") == "toy-reader"]
    rankers = [prompt_text(b) for b in others if b.get("model") != "toy-reader"]
    # one reader call per question (both rerankers keep BM25's order: the same prompt, asked once)
    assert len(readers) == len(ITEMS) and len(rankers) == len(ITEMS)
    for item in ITEMS:
        assert sum(f"Question: What is the code of {item}?\nAnswer:" in t for t in readers) == 1
    assert all(re.search(r"query: What is the code of \w+\?", t) for t in rankers)
    assert not any(MARK in prompt_text(b) for b in others)
    recs = records(runs["expanded"])
    assert sorted({r["question"] for r in recs}) == sorted(f"What is the code of {item}?" for item in ITEMS)


def test_records_trace_the_pseudo_document_to_its_template_and_cached_call(runs):
    template = load_template("query2doc")
    db = sqlite3.connect(runs["root"] / "cache" / "llm-cache.sqlite")
    for rec in records(runs["expanded"]):
        q2d = rec["info"]["query2doc"]
        item = int(rec["qid"][1:])
        assert q2d["pseudo_doc"] == f"The {MARK} says zq{item}x."
        assert q2d["template"] == template.tag and template.hash in q2d["template"]
        (text,) = db.execute("SELECT text FROM responses WHERE key = ?", (q2d["llm_call"],)).fetchone()
        assert text == pseudo_doc_reply(ITEMS[item])
    assert not any("query2doc" in rec["info"] for rec in records(runs["plain"]))


def test_second_run_makes_no_llm_call_and_the_first_stage_cache_tells_expanded_queries_apart(runs):
    assert sum(is_query2doc(b) for b in runs["requests"]) == len(ITEMS)
    assert runs["again"] == 0
    assert len(list((runs["root"] / "cache" / "first_stage").glob("codes.test.bm25.*.jsonl"))) == 2


def test_run_ids_without_query2doc_are_unchanged():
    default = RunConfig()
    assert not {"query2doc", "query2doc_template", "query2doc_max_tokens"} & set(default.identity())
    # the default Quickstart run's id as before Query2doc existed (same content fingerprints)
    assert default.resolved_run_id({"data": ["x"]}) == "fictional-test-ad56113345"
    expanded = RunConfig(data=Data(query2doc="smollm2"))
    assert expanded.identity()["query2doc_max_tokens"] == 128
    assert expanded.resolved_run_id({"data": ["x"]}) != default.resolved_run_id({"data": ["x"]})


@pytest.mark.parametrize("extra,message", [
    (["--query2doc", "gpt-nope"], "error: --query2doc: unknown LLM engine 'gpt-nope'; expected one of: "),
    (["--query2doc", "smollm2", "--first-stage", "given"],
     "error: --query2doc: first stage 'given' does not search with the query text; expansion needs one of bm25, "
     "dense"),
    (["--query2doc", "smollm2", "--query2doc-max-tokens", "0"],
     "error: --query2doc-max-tokens 0: expected a positive number"),
    (["--query2doc", "smollm2", "--query2doc-template", "reader-qa"],
     "error: --query2doc-template reader-qa: prompt template 'reader-qa' needs the value 'documents'"),
])
def test_bad_query2doc_option_is_one_line_exit_2_before_anything_runs(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["run", "--reader", "none", "--rerankers", "none", "--output", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not out.exists()


def test_query2doc_from_a_config_file(tmp_path):
    from bench.cli import config_from_args, parse_run_args

    path = tmp_path / "run.yaml"
    path.write_text("query2doc: gemma3-270m\nquery2doc_max_tokens: 64\n")
    config = config_from_args(*parse_run_args(["run", "--config", str(path)]))
    assert (config.data.query2doc, config.data.query2doc_max_tokens, config.data.query2doc_template) == \
        ("gemma3-270m", 64, "query2doc")


def test_rrpo_train_query2doc_trains_on_expanded_candidates_with_the_original_question(tmp_path, monkeypatch):
    """``rrpo train --query2doc``: the candidate lists come through the same expansion (here only the pseudo-document
    matches any passage, so without it there would be nothing to train on), the reader is asked the original
    question, the checkpoint records the option, and resuming asks for no pseudo-document again."""
    from rerankers.registry import RERANKERS
    from rrpo.__main__ import main as rrpo_main
    from tests.rrpo_standins import STANDIN_NAME, register_standin

    words = ["alpha", "bravo", "charlie", "echo", "foxtrot", "golf", "hotel", "india"]
    folder = tmp_path / "hidden"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"id": f"d{i}", "title": "", "text": f"{w} doc{i}"}) + "\n" for i, w in enumerate(words)))
    (folder / "train.jsonl").write_text("".join(
        json.dumps({"id": f"q{n}", "question": f"Which city is question {n} about?", "golden_answers": ["Paris"]})
        + "\n" for n in range(2)))

    def reply(body: dict) -> str:
        text = prompt_text(body)
        if Q2D_INSTRUCTION in text:
            return f"{MARK} " + " ".join(words)
        return "Paris" if "doc3" in text else "unknown"

    monkeypatch.setenv("RB_TEST_KEY", "sk-test")
    register_standin()
    try:
        with ScriptedLLMServer(reply=reply) as srv:
            argv = ["train", "--dataset", str(folder), "--split", "train", "--query2doc", "openai:scripted",
                    "--pool", "8", "--backbone", STANDIN_NAME, "--temperature", "1.0", "--trainable", "all",
                    "--k", "2", "--rollouts", "2", "--queries-per-step", "2", "--epochs", "1",
                    "--reader", "openai:scripted", "--base-url", srv.base_url, "--api-key-env", "RB_TEST_KEY",
                    "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]
            assert rrpo_main(argv) == 0
            assert rrpo_main([*argv[:-1], str(tmp_path / "run"), "--epochs", "2"]) == 0     # resumed
            q2d = [prompt_text(b) for b in srv.requests if is_query2doc(b)]
            readers = [prompt_text(b) for b in srv.requests if not is_query2doc(b)]
    finally:
        RERANKERS.remove(STANDIN_NAME)
    assert len(q2d) == 2 and all("Query: Which city is question" in t for t in q2d)
    assert readers and all(re.search(r"Question: Which city is question \d about\?\nAnswer:", t) for t in readers)
    assert not any(MARK in t for t in readers)
    assert any("doc3" in t for t in readers)        # the expanded first stage found the passages
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["hyperparameters"]["query2doc"] == "openai:scripted" and config["step"] == 2


def test_benchmark_script_tabulates_the_effect_with_paired_tests(tmp_path, monkeypatch):
    """benchmarks/query2doc.py on the toy set. Plain BM25 ranks the answer passage second: nDCG@10 = 1/log2(3) each;
    expanded, first: 1. Recall@20 is 1 either way (pool 2). The reader sees the answer only when expanded: F1 and
    accuracy 0 -> 1. Four equal differences: the exact randomization test gives p = 2/2^4, and exact McNemar (4 wins,
    no loss) 2 * 0.5^4, both 0.125."""
    import math

    import pandas as pd

    from benchmarks import query2doc

    dataset = write_dataset(tmp_path)
    monkeypatch.setenv("TOY_KEY", "sk-toy")
    with ScriptedLLMServer(reply=scripted_reply) as srv:
        argv = ["--datasets", str(dataset), "--query2doc", "openai:toy-q2d", "--rerankers", "none", "--reader",
                "openai:toy-reader", "--pool", "2", "--top-k", "1", "--base-url", srv.base_url, "--api-key-env",
                "TOY_KEY", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "q2d")]
        assert query2doc.main(argv) == 0
    table = pd.read_csv(tmp_path / "q2d" / "query2doc.csv")
    rows = table.to_dict("records")
    ndcg_plain = 1 / math.log2(3)
    assert [(r["section"], r["system"], r["metric"], r["n"], r["test"]) for r in rows] == [
        ("first stage", "bm25", "Recall@20", 4, "paired randomization"),
        ("first stage", "bm25", "nDCG@10", 4, "paired randomization"),
        ("answers", "none → openai:toy-reader", "F1", 4, "paired randomization"),
        ("answers", "none → openai:toy-reader", "accuracy", 4, "exact McNemar")]
    assert [v for r in rows for v in (r["without"], r["with query2doc"], r["p"])] == pytest.approx(
        [1.0, 1.0, 1.0, ndcg_plain, 1.0, 0.125, 0.0, 1.0, 0.125, 0.0, 1.0, 0.125])
    assert list(table["difference"]) == pytest.approx([0.0, 1 - ndcg_plain, 1.0, 1.0])
    assert list(zip(table["better"], table["worse"])) == [(0, 0), (4, 0), (4, 0), (4, 0)]
    markdown = (tmp_path / "q2d" / "query2doc.md").read_text()
    assert "| nDCG@10   | 4   | 0.631     | 1.000            | +0.369       | 4        | 0       | 0.125 |" in markdown
