"""Hosted rerank APIs: Cohere ``POST /v2/rerank``, Jina ``POST /v1/rerank`` and Voyage ``POST /v1/rerank`` (and any
server speaking one of them: a TEI, Infinity or vLLM rerank endpoint speaks Cohere's or Jina's shape), as their API
references document the request and response:

- Cohere v2: ``{"model", "query", "documents": [str]}`` -> ``{"results": [{"index", "relevance_score"}], "meta":
  {"billed_units": {"search_units"}}}``; up to 10,000 documents a request (Cohere's rerank best practices; 1,000
  is the default here, as Cohere recommends);
- Jina: ``{"model", "query", "documents": [str], "return_documents": false}`` -> ``{"results": [{"index",
  "relevance_score"}], "usage": {"total_tokens"}}``;
- Voyage: ``{"model", "query", "documents": [str], "truncation": true}`` -> ``{"data": [{"index",
  "relevance_score"}], "usage": {"total_tokens"}}``; at most 1,000 documents a request.

A query's candidates go in requests of at most ``max_documents`` (the scores are absolute, so those of several
requests of one query compare). The calls follow the LLM engines' rules (``bench.llm.openai_engine``): the key is
read from the variable named by ``key_env`` (never recorded; loopback servers need none), ``concurrency`` requests
in flight, rate limits, server errors, timeouts and unreadable bodies retried up to ``max_retries`` times after the
server's ``Retry-After`` or a full-jitter backoff, other statuses not retried. Every request is a cache entry in the
shared LLM cache (``bench.llm.cache``; key: API, model and the request's query and documents), stored the moment it
is answered: a rerun, or a run killed half-way, pays again only for what was not answered.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Sequence

from bench.environment import check_server_reachable
from bench.errors import UserError
from bench.llm.base import ChatRequest, ChatResponse, Engine, ResponseCallback
from bench.llm.cache import CachedEngine, open_cache
from bench.llm.openai_engine import RETRYABLE_STATUS, is_local, retry_after_seconds
from bench.types import CandidateList, Ranking
from rerankers.base import Reranker, ranking_from_scores


@dataclass(frozen=True)
class Dialect:
    """What differs between the APIs: the path, the extra request fields, where the results are, and the API's own
    server and key variable. Its default model is the checkpoint it is registered with (rerankers.registry)."""

    name: str
    path: str
    extra: tuple[tuple[str, Any], ...] = ()      # request fields beside model, query and documents
    results_key: str = "results"
    base_url: str = field(kw_only=True)          # the API's own server
    key_env: str = field(kw_only=True)           # the variable its key is read from


COHERE = Dialect("cohere", "/v2/rerank", base_url="https://api.cohere.com", key_env="COHERE_API_KEY")
JINA = Dialect("jina", "/v1/rerank", (("return_documents", False),), base_url="https://api.jina.ai",
               key_env="JINA_API_KEY")
VOYAGE = Dialect("voyage", "/v1/rerank", (("truncation", True),), "data", base_url="https://api.voyageai.com",
                 key_env="VOYAGE_API_KEY")


class RerankAPIError(Exception):
    """A response that is not a rerank result for the request's documents."""


def parse_scores(dialect: Dialect, body: Any, n_documents: int) -> tuple[list[float], dict[str, int]]:
    """The relevance score of each document, in request order, and the usage the API reported."""
    try:
        results = body[dialect.results_key]
        scores: list[float | None] = [None] * n_documents
        for item in results:
            scores[int(item["index"])] = float(item["relevance_score"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise RerankAPIError(f"not a {dialect.name} rerank response ({type(exc).__name__}: {exc})") from None
    if any(s is None for s in scores):
        raise RerankAPIError(f"the {dialect.name} response scores {sum(s is not None for s in scores)} of "
                             f"{n_documents} documents")
    usage = body.get("usage") or {}
    units = (body.get("meta") or {}).get("billed_units") or {}
    reported = {"prompt_tokens": int(usage.get("total_tokens", 0))} if "total_tokens" in usage else {}
    if "search_units" in units:
        reported["search_units"] = int(units["search_units"])
    return scores, reported      # type: ignore[return-value]  (no None is left)


class RerankAPIEngine(Engine):
    """One rerank API as an engine of the LLM cache: a request's messages are ``("query", q)`` then ``("document",
    d)`` per document; the response's text is the JSON list of the documents' scores."""

    def __init__(self, dialect: Dialect, model: str, base_url: str, key_env: str, concurrency: int, timeout: float,
                 max_retries: int, backoff_base: float = 0.5, backoff_max: float = 20):
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise UserError(f"{dialect.name} rerank API: concurrency must be >= 1, max_retries >= 0 and timeout > 0 "
                            f"(got {concurrency}, {max_retries}, {timeout})")
        self.dialect, self.kind, self.model = dialect, f"{dialect.name}-rerank", model
        self.url = base_url.rstrip("/") + dialect.path
        self.key_env, self.concurrency, self.timeout, self.max_retries = key_env, concurrency, timeout, max_retries
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.stats = {"requests": 0, "attempts": 0, "retries": 0, "failed_attempts": 0}
        self._stats_lock = threading.Lock()     # requests run in several threads
        self._key()                   # fail now, before any candidate is sent

    def __repr__(self) -> str:
        return f"RerankAPIEngine({self.dialect.name}, model={self.model!r}, url={self.url!r})"

    def _key(self) -> str | None:
        key = os.environ.get(self.key_env)
        if key or is_local(self.url):
            return key or None
        raise UserError(f"{self.dialect.name} rerank API at {self.url}: the environment variable {self.key_env} "
                        f"(the API key) is not set")

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, n in increments.items():
                self.stats[name] += n

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        return self.stream(requests, None)

    def stream(self, requests: Sequence[ChatRequest], on_response: ResponseCallback | None) -> list[ChatResponse]:
        key = self._key()
        out: list[ChatResponse | None] = [None] * len(requests)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._ask, r, key): i for i, r in enumerate(requests)}
            for future in as_completed(futures):
                i = futures[future]
                out[i] = future.result()
                if on_response is not None:      # here, in one thread: the cache stores it now
                    on_response(i, out[i])
        return out  # type: ignore[return-value]  (every slot is filled above)

    def _ask(self, request: ChatRequest, key: str | None) -> ChatResponse:
        query = request.messages[0][1]
        documents = [text for _, text in request.messages[1:]]
        body = json.dumps({"model": self.model, "query": query, "documents": documents,
                           **dict(self.dialect.extra)}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._count(requests=1)
        error = ""
        for attempt in range(self.max_retries + 1):
            self._count(attempts=1, retries=int(attempt > 0))
            wait = None
            try:
                with urllib.request.urlopen(urllib.request.Request(self.url, body, headers, method="POST"),
                                            timeout=self.timeout) as reply:
                    scores, usage = parse_scores(self.dialect, json.loads(reply.read()), len(documents))
                return ChatResponse(text=json.dumps(scores), usage=usage)
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}: {exc.read()[:200].decode(errors='replace')}"
                if exc.code not in RETRYABLE_STATUS and exc.code < 500:
                    self._count(failed_attempts=1)
                    break
                wait = retry_after_seconds({k.lower(): v for k, v in exc.headers.items()})
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError,
                    RerankAPIError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            self._count(failed_attempts=1)
            if attempt < self.max_retries:
                time.sleep(min(wait, self.backoff_max) if wait is not None else
                           random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** attempt)))
        return ChatResponse(text="", error=error.replace(key, "<redacted>") if key else error)


@dataclass(frozen=True)
class RerankAPIOptions:
    model: str = ""                 # "" = the registered model (the API's default)
    url: str = ""                   # "" = the API's own server; else any server speaking its API
    key_env: str = ""               # the NAME of the variable holding the key ("" = COHERE_/JINA_/VOYAGE_API_KEY)
    max_documents: int = 1000       # documents per request
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 5


class RerankAPI(Reranker):
    """A hosted rerank API; ``dialect`` says which. The registered checkpoint is the API's default model."""

    kind = "pointwise"
    Options = RerankAPIOptions
    dialect: Dialect = COHERE

    def __init__(self, checkpoint: str | None = None, settings=None):
        super().__init__(checkpoint, settings)

        o, d = self.options, self.dialect
        if o.max_documents < 1:
            raise UserError(f"{d.name} rerank API: max_documents {o.max_documents}: expected a positive number")
        self.checkpoint = o.model or self.checkpoint
        if not self.checkpoint:
            raise UserError(f"{d.name} rerank API: no model; give one with --reranker-args NAME:model=MODEL")
        self.engine = CachedEngine(RerankAPIEngine(d, self.checkpoint, o.url or d.base_url, o.key_env or d.key_env,
                                                   o.concurrency, o.timeout, o.max_retries),
                                   open_cache(self.settings.cache_dir))

    @classmethod
    def weights_fingerprint(cls, checkpoint: str | None) -> str | None:
        return checkpoint       # a hosted model's name is all that is known of its weights

    @classmethod
    def preflight(cls, name, checkpoint, settings) -> None:
        """No weights here: the API's server must answer."""
        o = settings.options if isinstance(settings.options, cls.Options) else cls.Options()
        check_server_reachable(o.url or cls.dialect.base_url, f"reranker {name!r}", o.key_env or cls.dialect.key_env,
                               f"check the network, or point --reranker-args {name}:url=URL at a server of its API")

    def identity(self) -> dict:
        return {**super().identity(), "api": self.dialect.name}

    def rerank(self, lists: Sequence[CandidateList]) -> list[Ranking]:
        size = self.options.max_documents
        requests, owners = [], []
        for li, cl in enumerate(lists):
            for start in range(0, len(cl.candidates), size):
                docs = [c.doc.as_passage() for c in cl.candidates[start:start + size]]
                requests.append(ChatRequest(messages=(("query", cl.query.text), *(("document", d) for d in docs)),
                                            max_tokens=0, template=f"{self.dialect.name}{self.dialect.path}"))
                owners.append(li)
        responses = self.engine.generate(requests)
        failed = next((r.error for r in responses if r.error), None)
        if failed:
            raise UserError(f"{self.dialect.name} rerank API: a request failed after its retries ({failed}); the "
                            f"answered requests are cached, so a rerun sends only the others")
        scores: list[list[float]] = [[] for _ in lists]
        calls: list[int] = [0] * len(lists)
        for li, response in zip(owners, responses):
            scores[li] += json.loads(response.text)
            calls[li] += not response.cached
        return [ranking_from_scores(cl, s, info={"api_requests_sent": n}) for cl, s, n in zip(lists, scores, calls)]


class CohereRerank(RerankAPI):
    dialect = COHERE


class JinaRerank(RerankAPI):
    dialect = JINA


class VoyageRerank(RerankAPI):
    dialect = VOYAGE
