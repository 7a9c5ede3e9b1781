"""Listwise reranking by an LLM over a sliding window, as rank_llm does it (castorini/rank_llm 0.26.0,
``ListwiseRankLLM.sliding_windows`` / ``receive_permutation`` and ``response_utils.clean_ranking_response``).

- Windows of 20 candidates move from the bottom of the list to the top with stride 10: for 30 candidates the LLM
  first orders positions 11-30, then 1-20 of the list as it stands after that; the pass ends once a window starts at
  the top. Greedy decoding; a window's LLM reply is a permutation ``[3] > [1] > ...``.
- Each passage is shown as rank_llm's handler shows it: ``Title: t Content: text`` (when there is a title), stripped,
  ftfy-fixed, cut to 300 words, and with ``[n]`` written ``(n)`` so it cannot be mistaken for an identifier.
- A reply is repaired as rank_llm repairs it: every non-digit is a separator, duplicates are dropped (first one
  kept), out-of-range ids are dropped, missing ids follow in their window order; with no id at all the window keeps
  its order. Each repair is counted by kind (``unparseable``, ``partial``, ``duplicated``, ``out_of_range``) into
  ``Ranking.info`` so that a run can report how often the LLM misbehaved.
- Like rank_llm, a window whose prompt exceeds the context (4096 tokens by default) is re-rendered with fewer words
  per passage until it fits, when a tokenizer for the model is at hand.

Windows of all queries at the same step go to the engine as one batch (each query's windows are sequential, the
queries are independent). The engine is any ``bench.llm.base.Engine``: from the run's shared cached engines
(``settings.engine_factory``: spec -> engine), or built here; the options (``ListwiseOptions``) choose its kind
(``engine``: ``hf``, ``openai``, ``vllm``; ``rankllm`` hands the whole reranking to rank-llm itself, see
``rankllm_engine``), ``model`` (the served model name; default: the checkpoint), ``base_url`` and ``api_key_env``.
"""
from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from bench.environment import check_server_reachable, check_weights_available
from bench.errors import UserError, require
from bench.llm import make_engine
from bench.llm.base import ChatRequest, Engine
from bench.llm.cache import CachedEngine, open_cache
from bench.llm.openai_engine import server_urls
from bench.prompts import PROMPT_DIR, PromptTemplate, load_template
from bench.types import Candidate, CandidateList, Ranking, rank_scores
from rerankers.base import Reranker, RerankerSettings
from rerankers.rankllm_engine import rerank_with_rankllm

WINDOW_SIZE = 20
STRIDE = 10
MAX_PASSAGE_WORDS = 300
CONTEXT_SIZE = 4096
MALFORMED_KINDS = ("unparseable", "partial", "duplicated", "out_of_range")
ENGINE_KINDS = ("hf", "openai", "vllm", "rankllm")

# rank_llm's clean_ranking_response maps look-alike digits to ASCII digits before parsing.
_FAKE_DIGITS = str.maketrans(
    "⁰¹²³⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉①②③④⑤⑥⑦⑧⑨❶❷❸❹❺❻❼❽❾０１２３４５６７８９🄀🄁🄂🄃🄄🄅🄆🄇🄈🄉",
    "0123456789012345678912345678912345678901234567890123456789",
)


def window_plan(n: int, window: int = WINDOW_SIZE, stride: int = STRIDE) -> list[tuple[int, int]]:
    """The [start, end) windows over n candidates in the order they are sent (rank_llm's sliding_windows with
    rank_start=0, rank_end=n)."""
    if not 0 < stride <= window:
        raise UserError(f"listwise stride {stride}: expected 0 < stride <= window size ({window})")
    out: list[tuple[int, int]] = []
    end, start = n, max(n - window, 0)
    while end > start:
        out.append((start, end))
        if start == 0:
            break
        end -= stride
        start = max(start - stride, 0)
    return out


@dataclass(frozen=True)
class Permutation:
    order: list[int]            # 0-based window positions, best first, a permutation of range(n)
    problems: tuple[str, ...]   # the MALFORMED_KINDS this reply showed (empty when well-formed)


def parse_permutation(text: str, n: int) -> Permutation:
    """Read an LLM's ``[i] > [j] > ...`` reply for a window of n passages, repaired as rank_llm repairs it."""
    if "</think>" in text:
        text = text.split("</think>")[-1].strip()
    text = text.translate(_FAKE_DIGITS)
    ids = [int(x) - 1 for x in "".join(c if c.isdigit() else " " for c in text).split()]
    if not ids:
        return Permutation(list(range(n)), ("unparseable",))
    problems = []
    unique = list(dict.fromkeys(ids))
    if len(unique) < len(ids):
        problems.append("duplicated")
    valid = [i for i in unique if 0 <= i < n]
    if len(valid) < len(unique):
        problems.append("out_of_range")
    missing = [i for i in range(n) if i not in set(valid)]
    if missing:
        problems.append("partial")
    return Permutation(valid + missing, tuple(k for k in MALFORMED_KINDS if k in problems))


def passage_content(candidate: Candidate, max_words: int) -> str:
    """A passage as rank_llm's inference handler writes it into the prompt (``_convert_doc_to_prompt_content``)."""
    ftfy = require("ftfy", "listwise", "listwise reranking (rank_llm's passage clean-up)")
    doc = candidate.doc
    content = f"Title: {doc.title} Content: {doc.text}" if doc.title else doc.text
    content = " ".join(ftfy.fix_text(content.strip()).split()[:max_words])
    return replace_number(content)


def replace_number(text: str) -> str:
    return re.sub(r"\[(\d+)\]", r"(\1)", text)


IDENTIFIERS = ("numbers", "letters")


@dataclass(frozen=True)
class ListwisePrompt:
    """A listwise prompt (``bench/prompts/rank-*.json``): chat ``messages`` with ``{query}`` and ``{num}``, and the
    passages either inline (``passage``: one template per passage, concatenated into ``{passages}``) or as turns
    (``passage_turns``: messages per passage, inserted where the ``{"role": "passages"}`` marker stands; they may use
    ``{query}`` too). Passages are identified by ``{rank}``: 1, 2, ... or, with ``"identifiers": "letters"``, A, B,
    ... (rank_llm's ``use_alpha``)."""

    template: PromptTemplate
    passage: str | None
    passage_turns: tuple[tuple[str, str], ...]
    identifiers: str = "numbers"

    @classmethod
    def load(cls, name_or_path: str) -> "ListwisePrompt":
        template = load_template(name_or_path)
        path = Path(name_or_path) if Path(name_or_path).suffix else PROMPT_DIR / f"{name_or_path}.json"
        raw = json.loads(path.read_text())
        turns = tuple((m["role"], m["content"]) for m in raw.get("passage_turns", ()))
        has_marker = any(role == "passages" for role, _ in template.messages)
        if (raw.get("passage") is None) == (not turns) or bool(turns) != has_marker:
            raise UserError(f"{path}: a listwise prompt needs either 'passage' (with {{passages}} in a message) or "
                            f"'passage_turns' (with a message of role 'passages')")
        identifiers = raw.get("identifiers", "numbers")
        if identifiers not in IDENTIFIERS:
            raise UserError(f"{path}: identifiers {identifiers!r}: expected one of {', '.join(IDENTIFIERS)}")
        return cls(template, raw.get("passage"), turns, identifiers)

    def identifier(self, i: int) -> str:
        """The identifier of the i-th passage (0-based) of a window."""
        return chr(ord("A") + i) if self.identifiers == "letters" else str(i + 1)

    def render(self, query: str, passages: Sequence[str]) -> list[dict[str, str]]:
        values = {"query": replace_number(query), "num": len(passages)}
        inline = "".join(self.passage.format(rank=self.identifier(i), candidate=p) for i, p in enumerate(passages)) \
            if self.passage is not None else ""
        out: list[dict[str, str]] = []
        for role, content in self.template.messages:
            if role == "passages":
                out.extend({"role": r, "content": c.format(rank=self.identifier(i), candidate=p, query=values["query"])}
                           for i, p in enumerate(passages) for r, c in self.passage_turns)
            else:
                out.append({"role": role, "content": content.format(passages=inline, **values)})
        return out


class TokenCounter:
    """Counts a prompt's tokens the way rank_llm does for the model, to keep each window inside the context."""

    def __init__(self, count_text: Callable[[str], int], count_prompt: Callable[[list[dict[str, str]]], int]):
        self.count_text, self.prompt_tokens = count_text, count_prompt

    def output_tokens(self, n: int) -> int:
        """The length of a complete reply for n passages (rank_llm's ``num_output_tokens``)."""
        return self.count_text(" > ".join(f"[{i + 1}]" for i in range(n)))


@dataclass(frozen=True)
class ListwiseOptions:
    window: int = WINDOW_SIZE                    # passages per LLM call
    stride: int = STRIDE                         # how far the window moves up
    max_passage_words: int = MAX_PASSAGE_WORDS
    context_size: int = CONTEXT_SIZE             # tokens; passages are shortened until a window fits
    prompt: str | None = None                    # a prompt id or JSON file (default: the backend's own)
    model: str | None = None                     # the served model name (default: the checkpoint)
    engine: str | None = None                    # hf | openai | vllm | rankllm (default: the backend's choice)
    base_url: str | list[str] | None = None      # OpenAI-compatible server(s) (default: the run's --base-url)
    api_key_env: str = "OPENAI_API_KEY"          # the NAME of the variable holding the key
    max_new_tokens: int | None = None            # reply budget per window (default: 6 per passage + 10)
    timeout: float | None = None                 # engine rankllm: seconds for the whole reranking


class ListwiseReranker(Reranker):
    """An LLM ordering windows of passages (rank_llm's sliding window). Subclasses set the prompt and how the
    engine is chosen."""

    kind = "listwise"
    prompt_id = ""
    Options = ListwiseOptions
    engine_kinds = ENGINE_KINDS      # the engines this backend can run on
    uses_run_engines = True          # the run's shared engines (settings.engine_factory) can serve it

    def __init__(self, checkpoint: str | None = None, settings: RerankerSettings | None = None):
        super().__init__(checkpoint, settings)
        opts = self.options
        self.window, self.stride = opts.window, opts.stride
        window_plan(self.window, self.window, self.stride)       # validates stride against the window
        self.max_words = opts.max_passage_words
        self.context_size = opts.context_size
        self.prompt = ListwisePrompt.load(opts.prompt or self.prompt_id)
        self.model_name = opts.model or self.checkpoint
        self.engine_kind = self._engine_kind()
        self._engine: Engine | None = None

    # --- engine ---------------------------------------------------------------------------------------------
    def _engine_kind(self) -> str:
        kind = self.options.engine or self.default_engine_kind()
        if kind not in self.engine_kinds:
            raise UserError(f"{self.name or type(self).__name__}: engine {kind!r}: expected one of "
                            f"{', '.join(self.engine_kinds)}")
        return kind

    def default_engine_kind(self) -> str:
        return "openai"

    @classmethod
    def preflight(cls, name, checkpoint, settings) -> None:
        """Served engines: the server answers; local ones: the weights are at hand. Building the reranker is cheap
        (its prompt and options; the model loads with the engine)."""
        reranker = cls(checkpoint, settings)
        if reranker.engine_kind in ("openai", "rankllm"):
            for url in server_urls(reranker.options.base_url):
                check_server_reachable(url, f"reranker {name!r}", reranker.options.api_key_env)
        else:
            check_weights_available(reranker.model_name, f"reranker {name!r}", f"--checkpoint {name}=FOLDER")

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._build_engine()
        return self._engine

    def _build_engine(self) -> Engine:
        if self.settings.engine_factory is not None and self.uses_run_engines:
            return self.settings.engine_factory(f"{self.engine_kind}:{self.model_name}")
        engine = self.own_engine()
        if not self.settings.cache_dir:
            return engine

        return CachedEngine(engine, open_cache(self.settings.cache_dir))

    def own_engine(self) -> Engine:
        """The engine built here when the run's shared ones do not serve (``uses_run_engines``) or there are none."""
        return make_engine(f"{self.engine_kind}:{self.model_name}", device=self.settings.device,
                           dtype=self.settings.dtype, seed=self.settings.seed, base_url=self.options.base_url,
                           api_key_env=self.options.api_key_env)

    @cached_property
    def counter(self) -> TokenCounter | None:
        return self.token_counter()

    def token_counter(self) -> TokenCounter | None:
        """How to count prompt tokens for the context budget; None when no tokenizer for the model is at hand
        (passages are then only cut to ``max_passage_words``)."""
        return None

    # --- reranking ------------------------------------------------------------------------------------------
    def identity(self) -> dict:
        return {**super().identity(), "prompt": self.prompt.template.tag, "window": self.window,
                "stride": self.stride, "max_passage_words": self.max_words, "context_size": self.context_size,
                "engine": self.engine_kind, "model": self.model_name}

    def window_messages(self, query: str, window: Sequence[Candidate]) -> list[dict[str, str]]:
        """The prompt for one window, with passages shortened (rank_llm's rule) until it fits the context."""
        counter = self.counter
        max_words = self.max_words
        while True:
            messages = self.prompt.render(query, [passage_content(c, max_words) for c in window])
            if counter is None:
                return messages
            used = counter.prompt_tokens(messages)
            budget = self.context_size - counter.output_tokens(len(window))
            if used <= budget or max_words <= 1:
                return messages
            max_words -= max(1, (used - budget) // (len(window) * 4))

    def max_new_tokens(self, n: int) -> int:
        # "[12] > " is at most 6 tokens in the tokenizers of these models; a closing token or two on top.
        return self.options.max_new_tokens or 6 * n + 10

    def window_request(self, query: str, window: Sequence[Candidate]) -> ChatRequest:
        return ChatRequest.chat(self.window_messages(query, window), max_tokens=self.max_new_tokens(len(window)),
                                temperature=0.0, template=self.prompt.template.tag)

    def rerank(self, lists: Sequence[CandidateList]) -> list[Ranking]:
        if self.engine_kind == "rankllm":
            return rerank_with_rankllm(self, lists)

        orders = [list(cl.candidates) for cl in lists]
        plans = [window_plan(len(o), self.window, self.stride) for o in orders]
        counts = [Counter({"windows": len(p)}) for p in plans]
        bar = tqdm(total=sum(len(p) for p in plans), desc=f"rerank {self.name}", unit="window", leave=False)
        for step in range(max((len(p) for p in plans), default=0)):
            active = [i for i, p in enumerate(plans) if step < len(p)]
            requests = [self.window_request(lists[i].query.text, orders[i][slice(*plans[i][step])]) for i in active]
            sizes = [plans[i][step][1] - plans[i][step][0] for i in active]
            for i, perm in zip(active, self.order_windows(requests, sizes)):
                start, end = plans[i][step]
                window = orders[i][start:end]
                if perm is None:
                    counts[i]["engine_errors"] += 1
                    continue          # a failed call leaves the window as it was
                orders[i][start:end] = [window[j] for j in perm.order]
                counts[i]["malformed_windows"] += bool(perm.problems)
                counts[i].update(f"malformed_{k}" for k in perm.problems)
            bar.update(len(active))
        bar.close()
        return [ranking_from_order(cl.query.qid, order, counts[i]) for i, (cl, order) in enumerate(zip(lists, orders))]

    def order_windows(self, requests: Sequence[ChatRequest], sizes: Sequence[int]) -> list[Permutation | None]:
        """The new order of each window (``sizes[k]`` passages, prompted by ``requests[k]``), None where the engine
        failed: the LLM's generated permutation, parsed and repaired."""
        return [None if response.error is not None else parse_permutation(response.text, n)
                for response, n in zip(self.engine.generate(requests), sizes)]


def ranking_from_order(qid: str, order: Sequence[Candidate], counts: Counter | dict[str, int]) -> Ranking:
    """A listwise order as a Ranking: strictly decreasing scores n, n-1, ..., 1 and every diagnostic count
    (zeros included, so that runs sum them without missing keys)."""
    keys = ("windows", "malformed_windows", *(f"malformed_{k}" for k in MALFORMED_KINDS), "engine_errors")
    n = len(order)
    return Ranking(qid=qid, docids=[c.docid for c in order], scores=rank_scores(n),
                   info={k: int(counts.get(k, 0)) for k in keys})


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def hf_token_counter(tokenizer: Any, chat_template: bool) -> TokenCounter:
    """rank_llm's count for open models, in the model's own tokenizer: the chat-templated prompt (in-process
    generation) or, for a served model, ``role: content`` lines."""
    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    if chat_template:
        return TokenCounter(count, lambda m: count(tokenizer.apply_chat_template(m, tokenize=False,
                                                                                 add_generation_prompt=True)))
    return TokenCounter(count, lambda m: count("".join(f"{x['role']}: {x['content']}\n" for x in m)))
