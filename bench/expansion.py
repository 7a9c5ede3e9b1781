"""Query expansion: the stage between the data and the first stage (data -> expansion -> first stage).

Only the first stage searches with the expanded query: the candidate lists it returns carry the ORIGINAL queries, so
rerankers, readers, the judge and the records see the user's question, never the pseudo-document.

Query2doc (Wang, Yang & Wei, EMNLP 2023, "Query2doc: Query Expansion with Large Language Models", Section 2): an LLM
writes a pseudo-document d' answering the query q (prompt "Write a passage that answers the given query:"; the paper
prompts text-davinci-003 with 4 MS MARCO examples, we ship the zero-shot instruction as the versioned template
``bench/prompts/query2doc.json``), and the first stage searches with

- sparse retrieval (``bm25``): q+ = concat({q} × n, d'), n = 5: the query repeated five times, then the
  pseudo-document (the repetitions keep the query's few terms from being outweighed by the long pseudo-document);
- dense retrieval (``dense``): q+ = concat(q, [SEP], d').

Generation is greedy (the LLM cache serves a pseudo-document again only because it is a function of the request); the
paper sampled. Pseudo-documents are asked through the run's cached engine (``Builder.engine(spec, role="query2doc")``),
so a re-run, or ``rrpo train`` on the same queries, makes no LLM call.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from bench.data.base import Dataset
from bench.errors import UserError
from bench.llm import check_engine_installed, parse_engine_spec
from bench.llm.base import Engine
from bench.prompts import PromptTemplate, load_template
from bench.retrieval import first_stage
from bench.types import CandidateList, Query

QUERY_REPEATS = 5               # n of the paper's sparse form
DENSE_SEPARATOR = " [SEP] "     # the bi-encoder's tokenizer reads [SEP] as its separator token
REQUESTS_PER_CALL = 32          # pseudo-documents per generate call: each call's answers are cached as it ends
_PASSAGE_LABEL = re.compile(r"\A\s*passage\s*:\s*", re.IGNORECASE)


def sparse_expansion(query: str, pseudo_doc: str) -> str:
    """q+ = concat({q} × 5, d') (Query2doc, sparse retrieval)."""
    return " ".join([query] * QUERY_REPEATS + [pseudo_doc])


def dense_expansion(query: str, pseudo_doc: str) -> str:
    """q+ = concat(q, [SEP], d') (Query2doc, dense retrieval)."""
    return f"{query}{DENSE_SEPARATOR}{pseudo_doc}"


# The first stages that read the query text, each with its form of q+.
EXPANSIONS = {"bm25": sparse_expansion, "dense": dense_expansion}


def expansion_for(first_stage: str) -> Callable[[str, str], str]:
    """The form of q+ the first stage ``first_stage`` searches with."""
    if first_stage not in EXPANSIONS:
        raise UserError(f"--query2doc: first stage {first_stage!r} does not search with the query text; expansion "
                        f"needs one of {', '.join(EXPANSIONS)}")
    return EXPANSIONS[first_stage]


def clean_pseudo_document(text: str) -> str:
    """The generated passage on one line: whitespace collapsed and an echoed leading ``Passage:`` label dropped.
    Not cut at the first line (unlike a reader's answer): the whole passage is the expansion."""
    return " ".join(_PASSAGE_LABEL.sub("", text).split())


@dataclass(frozen=True)
class PseudoDocument:
    qid: str
    text: str
    template: str                   # the prompt template's tag (id@version:hash)
    cache_key: str | None           # the LLM cache's key of the call that wrote it

    def info(self) -> dict[str, Any]:
        """What a record keeps of its query's expansion: the text, and the template and cached call behind it."""
        return {"pseudo_doc": self.text, "template": self.template, "llm_call": self.cache_key}


class Query2Doc:
    """Writes one pseudo-document per query with ``engine`` and a template with the field ``{query}``."""

    def __init__(self, engine: Engine, template: PromptTemplate | None = None, max_tokens: int = 128):
        self.engine = engine
        self.template = template or load_template("query2doc")
        self.max_tokens = max_tokens

    def pseudo_documents(self, queries: Sequence[Query]) -> list[PseudoDocument]:
        """One per query, same order. A failed LLM call fails the stage (one line, naming the query): searching
        some queries unexpanded would mix two conditions in one run; the finished calls are cached for the re-run."""
        out = []
        with tqdm(total=len(queries), desc=f"query2doc {self.engine.model}", unit="q",
                  disable=len(queries) <= REQUESTS_PER_CALL) as bar:
            for start in range(0, len(queries), REQUESTS_PER_CALL):
                batch = queries[start:start + REQUESTS_PER_CALL]
                requests = [self.template.request(max_tokens=self.max_tokens, query=q.text) for q in batch]
                for q, resp in zip(batch, self.engine.generate(requests)):
                    if resp.error:
                        raise UserError(f"--query2doc {self.engine.kind}:{self.engine.model}: the pseudo-document "
                                        f"of query {q.qid!r} failed ({resp.error}); run again to retry (the "
                                        f"finished ones are cached)")
                    out.append(PseudoDocument(q.qid, clean_pseudo_document(resp.text), self.template.tag,
                                              resp.cache_key))
                bar.update(len(batch))
        return out


def check_query2doc(spec: str, first_stage: str, template: str, max_tokens: int) -> None:
    """Fail in one line, before any model loads, on an unknown engine spec, a first stage that does not read the
    query text, a template without ``{query}`` or a non-positive token budget."""
    try:
        parse_engine_spec(spec)
    except UserError as exc:
        raise UserError(f"--query2doc: {exc}") from None
    check_engine_installed(spec)
    expansion_for(first_stage)
    if max_tokens < 1:
        raise UserError(f"--query2doc-max-tokens {max_tokens}: expected a positive number")
    try:
        load_template(template).render(query="")
    except ValueError as exc:
        raise UserError(f"--query2doc-template {template}: {exc}") from None


def expanded_first_stage(dataset: Dataset, method: str, pool: int, cache_dir: str | os.PathLike | None = None,
                         expander: Query2Doc | None = None,
                         **params: Any) -> tuple[list[CandidateList], dict[str, PseudoDocument]]:
    """``bench.retrieval.first_stage`` searched with each query expanded by ``expander`` (none: the query as is);
    the lists carry the original queries. Also the pseudo-documents by qid (empty without ``expander``). The
    expanded texts are in the first stage's query fingerprint, so its cache never serves unexpanded results."""
    if expander is None:
        return first_stage(dataset, method, pool, cache_dir=cache_dir, **params), {}
    expand = expansion_for(method)
    docs = {d.qid: d for d in expander.pseudo_documents(dataset.queries)}
    expanded = replace(dataset, queries=[replace(q, text=expand(q.text, docs[q.qid].text)) for q in dataset.queries])
    original = {q.qid: q for q in dataset.queries}
    lists = first_stage(expanded, method, pool, cache_dir=cache_dir, **params)
    return [CandidateList(query=original[cl.query.qid], candidates=cl.candidates) for cl in lists], docs
