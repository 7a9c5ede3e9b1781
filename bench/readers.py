"""The reader: an LLM answering each question from a ranked prefix of documents.

Documents are shown as a numbered list, ``[1] (Title: ...) text``, best first, each cut to its first
``passage_words`` words. A question with no documents (top-k 0) is asked closed-book, with its own template, so the
prompt never mentions documents that are not there. Generation stops at the first newline and the answer is the first
line of the reply, stripped. All questions of one ``answer`` call go to the engine in one ``generate`` call, so the
engine batches them and a ``CachedEngine`` asks only the ones it has not seen (RRPO asks hundreds of
(question, prefix) pairs at once, many of them repeated).

The wording of ``reader-qa`` was kept after comparing nine variants on the real SmolLM2-135M-Instruct (invented-fact
questions with the answer passage among three, and HotpotQA): none made it answer in a few words (it usually
answers with a sentence that contains the answer), and ``reader-qa`` had the best answer containment. Few-shot turns
made it copy the example's answer. So with this reader, containment and token F1 are the meaningful answer metrics;
exact match is near zero.
"""
from __future__ import annotations

from typing import Sequence

from bench.llm.base import ChatRequest, Engine
from bench.prompts import PromptTemplate, load_template
from bench.types import Answer, Document, Query, documents


def render_documents(docs: Sequence[Document], passage_words: int | None) -> str:
    """``[i] (Title: t) text`` lines; whitespace inside a passage is collapsed so each document is one line."""
    lines = []
    for i, doc in enumerate(docs, 1):
        words = doc.text.split()
        text = " ".join(words[:passage_words] if passage_words is not None else words)
        lines.append(f"[{i}] (Title: {doc.title}) {text}" if doc.title else f"[{i}] {text}")
    return "\n".join(lines)


def first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


class Reader:
    """Answers questions from documents with ``engine`` and a prompt template with the fields ``{documents}`` and
    ``{question}`` (``closed_book_template``: ``{question}`` only, used when a question has no documents)."""

    def __init__(self, engine: Engine, template: PromptTemplate | None = None, max_tokens: int = 32,
                 passage_words: int | None = 100, closed_book_template: PromptTemplate | None = None):
        self.engine = engine
        self.template = template or load_template("reader-qa")
        self.closed_book_template = closed_book_template or load_template("reader-closed-book")
        self.max_tokens = max_tokens
        self.passage_words = passage_words

    def identity(self) -> dict:
        """What determines the answers (for run ids and reports)."""
        return {"engine": self.engine.identity(), "template": self.template.tag,
                "closed_book_template": self.closed_book_template.tag, "max_tokens": self.max_tokens,
                "passage_words": self.passage_words}

    def requests(self, questions: Sequence[Query], docs: Sequence[Sequence[Document]]) -> list[ChatRequest]:
        if len(questions) != len(docs):
            raise ValueError(f"Reader: {len(questions)} questions but {len(docs)} document lists")
        out = []
        for q, ds in zip(questions, docs):
            if ds:
                out.append(self.template.request(max_tokens=self.max_tokens, stop=("\n",), question=q.text,
                                                 documents=render_documents(ds, self.passage_words)))
            else:
                out.append(self.closed_book_template.request(max_tokens=self.max_tokens, stop=("\n",),
                                                             question=q.text))
        return out

    def ask(self, question: str, docs: Sequence[str | tuple[str, str]] = ()) -> Answer:
        """Answer one question from passages in the given order (strings, or ``(id, text)`` pairs; none: closed
        book) through ``answer``, the batched call the runner makes.

        >>> bench.load_reader("smollm2").ask("Who wrote Hamlet?", ["Hamlet is a tragedy by William Shakespeare."]).text
        """
        return self.answer([Query(qid="0", text=question)], [documents(docs)])[0]

    def answer(self, questions: Sequence[Query], docs: Sequence[Sequence[Document]]) -> list[Answer]:
        """One answer per question, same order; a failed LLM call gives an Answer with ``error`` set and no text."""
        requests = self.requests(questions, docs)
        responses = self.engine.generate(requests)
        return [Answer(qid=q.qid, text="" if resp.error else first_line(resp.text), docids=[d.docid for d in ds],
                       prompt_hash=req.template, usage=dict(resp.usage), cached=resp.cached, error=resp.error,
                       cache_key=resp.cache_key)
                for q, ds, req, resp in zip(questions, docs, requests, responses)]
