"""Reader: prompts (numbered documents, truncation, closed-book), one batched call, post-processing, failures."""
from __future__ import annotations

from typing import Sequence

import pytest

from bench.llm.base import ChatRequest, ChatResponse, Engine
from bench.llm.cache import CachedEngine, LLMCache
from bench.prompts import load_template
from bench.readers import Reader, first_line, render_documents
from bench.types import Document, Query


class ScriptedEngine(Engine):
    """Replies with ``reply(request)``; records every batch it receives."""

    kind, model = "test", "scripted"

    def __init__(self, reply=lambda r: " Quenlith\nbecause the document says so"):
        self.reply = reply
        self.batches: list[list[ChatRequest]] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        self.batches.append(list(requests))
        out = []
        for r in requests:
            text = self.reply(r)
            out.append(ChatResponse(text="", error=text[len("ERROR "):]) if text.startswith("ERROR ")
                       else ChatResponse(text=text, usage={"prompt_tokens": 10, "completion_tokens": 3}))
        return out


DOCS = [Document("d1", "Zorvia is a mountain country.", "Zorvia"),
        Document("d2", "The capital of Zorvia is\nQuenlith. It lies on a river.", "Quenlith"),
        Document("d3", "Bread is made from flour.")]
Q = Query("q1", "What is the capital of Zorvia?", ["Quenlith"])


def test_documents_are_a_numbered_list_cut_to_passage_words():
    assert render_documents(DOCS, passage_words=5) == (
        "[1] (Title: Zorvia) Zorvia is a mountain country.\n"
        "[2] (Title: Quenlith) The capital of Zorvia is\n"
        "[3] Bread is made from flour.")
    assert render_documents(DOCS[1:2], passage_words=None) == \
        "[1] (Title: Quenlith) The capital of Zorvia is Quenlith. It lies on a river."


def test_request_fills_the_template_and_stops_at_a_newline():
    reader = Reader(ScriptedEngine(), max_tokens=24, passage_words=5)
    (request,) = reader.requests([Q], [DOCS])
    template = load_template("reader-qa")
    assert request.template == template.tag
    assert request.max_tokens == 24 and request.temperature == 0 and request.stop == ("\n",)
    assert request.messages == tuple((m["role"], m["content"]) for m in template.render(
        question=Q.text, documents=render_documents(DOCS, 5)))
    assert "[2] (Title: Quenlith) The capital of Zorvia is" in request.messages[-1][1]
    assert Q.text in request.messages[-1][1]


def test_no_documents_is_asked_closed_book():
    reader = Reader(ScriptedEngine())
    with_docs, closed = reader.requests([Q, Q], [DOCS, []])
    closed_book = load_template("reader-closed-book")
    assert closed.template == closed_book.tag != with_docs.template
    assert closed.messages == tuple((m["role"], m["content"]) for m in closed_book.render(question=Q.text))
    assert "document" not in " ".join(c.lower() for _, c in closed.messages)


def test_answers_are_the_first_line_stripped_with_prompt_tag_and_usage():
    engine = ScriptedEngine()
    (answer,) = Reader(engine).answer([Q], [DOCS])
    assert answer.text == "Quenlith"
    assert answer.qid == "q1" and answer.docids == ["d1", "d2", "d3"]
    assert answer.prompt_hash == load_template("reader-qa").tag
    assert answer.usage == {"prompt_tokens": 10, "completion_tokens": 3}
    assert answer.error is None and not answer.cached
    assert first_line("\n  Paris, France \nmore") == "Paris, France"
    assert first_line("") == ""


def test_a_failed_call_becomes_an_answer_with_the_error():
    engine = ScriptedEngine(reply=lambda r: "ERROR timeout after 5 retries" if "Zorvia" in r.messages[-1][1]
                            else "Flour")
    failed, ok = Reader(engine).answer([Q, Query("q2", "What is bread made from?")], [DOCS, DOCS[2:]])
    assert failed.error == "timeout after 5 retries" and failed.text == ""
    assert ok.error is None and ok.text == "Flour" and ok.docids == ["d3"]


def test_many_pairs_go_to_the_engine_in_one_call_and_repeats_are_asked_once(tmp_path):
    """RRPO's use: every prefix of many rollouts in one call through the cache."""
    engine = ScriptedEngine(reply=lambda r: f"{r.messages[-1][1].count('[')} docs")
    reader = Reader(CachedEngine(engine, LLMCache(tmp_path / "c.sqlite")))
    questions, prefixes = [], []
    for rollout in range(10):
        for k in range(4):
            questions.append(Q)
            prefixes.append(DOCS[:k] if rollout % 2 else list(reversed(DOCS))[:k])
    answers = reader.answer(questions, prefixes)
    assert len(engine.batches) == 1
    assert len(engine.batches[0]) == 7      # closed-book + 3 prefixes of each of the 2 orders
    assert [a.text for a in answers[:4]] == ["0 docs", "1 docs", "2 docs", "3 docs"]
    assert sum(not a.cached for a in answers) == 7
    assert answers[4].docids == [] and answers[5].docids == ["d1"] and answers[1].docids == ["d3"]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 questions but 1 document lists"):
        Reader(ScriptedEngine()).answer([Q, Q], [DOCS])
