"""The ``openai`` engine: any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama, llama.cpp server).

A batch of requests runs concurrently on one event loop, at most ``concurrency`` in flight. The retry policy is ours
(the openai client's own retries are off, so every retry is counted in ``stats``): rate limits (429), server errors
(5xx, 408, 409), timeouts, dropped connections and unparseable responses are retried up to ``max_retries`` times,
after a delay drawn with full jitter from ``[0, min(backoff_max, backoff_base * 2**attempt)]``, or after the server's
``Retry-After`` (capped at ``backoff_max``) when it sends one. A request that still fails, or fails with a status that
retrying cannot fix (400, 401, 404, ...), gets a response with ``error`` set; ``generate`` never raises for it.

The API key is read from the environment variable named by ``api_key_env`` each time a batch starts; it is kept out
of the engine's identity, repr and every error message. Local servers (loopback hosts) need no key.
"""
from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence
from urllib.parse import urlparse

from bench.errors import UserError
from bench.llm.base import ChatRequest, ChatResponse, Engine, ResponseCallback

OPENAI_BASE_URL = "https://api.openai.com/v1"
# A placeholder key for local servers, which ignore it (the openai client refuses to start without one).
LOCAL_DUMMY_KEY = "EMPTY"
RETRYABLE_STATUS = frozenset({408, 409, 429})


class UnparseableResponse(Exception):
    """The server answered 200 with something that is not a chat completion with text."""


def is_local(base_url: str) -> bool:
    host = urlparse(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The server's requested wait: ``retry-after-ms`` (OpenAI), else ``Retry-After`` in seconds or as an HTTP
    date; None when absent or unreadable."""
    if "retry-after-ms" in headers:
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def completion_text(completion: Any) -> tuple[str, dict[str, int]]:
    """Text and usage of a parsed chat completion; the openai client hands back a bare string when the body was
    not JSON, and servers may send no choices or a null content."""
    from openai.types.chat import ChatCompletion

    if not isinstance(completion, ChatCompletion):
        raise UnparseableResponse(f"expected a chat.completion object, got {str(completion)[:80]!r}")
    if not completion.choices or not isinstance(completion.choices[0].message.content, str):
        raise UnparseableResponse("chat.completion without text content")
    usage = completion.usage
    tokens = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens} if usage else {}
    return completion.choices[0].message.content, tokens


class OpenAIEngine(Engine):
    kind = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout: float = 60, max_retries: int = 5, backoff_base: float = 0.5,
                 backoff_max: float = 20):
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise UserError(f"openai engine: concurrency must be >= 1, max_retries >= 0 and timeout > 0 "
                            f"(got {concurrency}, {max_retries}, {timeout})")
        self.model = model
        # Always explicit, so that the OPENAI_BASE_URL variable cannot silently redirect an engine whose identity
        # says otherwise.
        self.base_url = (base_url or OPENAI_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        # requests: asked by the caller; attempts: HTTP calls sent (requests + retries); failed_attempts: attempts
        # that got an error (retried or not); failures: requests that failed after every attempt.
        self.stats = {"requests": 0, "attempts": 0, "retries": 0, "failed_attempts": 0, "failures": 0,
                      "prompt_tokens": 0, "completion_tokens": 0}
        self._stats_lock = threading.Lock()   # generate may run in several threads at once
        self._api_key()                        # fail now, not after the first batch is built

    def __repr__(self) -> str:
        return (f"OpenAIEngine(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r}, "
                f"concurrency={self.concurrency})")

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "base_url": self.base_url}

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if is_local(self.base_url):
            return LOCAL_DUMMY_KEY
        raise UserError(f"openai engine for {self.base_url}: the environment variable {self.api_key_env} "
                        f"(the API key) is not set")

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, n in increments.items():
                self.stats[name] += n

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        return self.stream(requests, None)

    def stream(self, requests: Sequence[ChatRequest], on_response: ResponseCallback | None) -> list[ChatResponse]:
        """Runs the batch on an event loop of its own; inside a thread that already runs one (a notebook, an
        async caller) the loop runs in a helper thread, since a thread can run one loop at a time."""
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._generate_batch(requests, on_response))
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self._generate_batch(requests, on_response)).result()

    async def _generate_batch(self, requests: Sequence[ChatRequest],
                              on_response: ResponseCallback | None) -> list[ChatResponse]:
        from openai import AsyncOpenAI
        from tqdm.auto import tqdm

        key = self._api_key()
        semaphore = asyncio.Semaphore(self.concurrency)
        progress = tqdm(total=len(requests), desc=f"openai {self.model}", unit="req", disable=None, leave=False)

        async def one(i: int, request: ChatRequest) -> ChatResponse:
            async with semaphore:
                response = await self._generate_one(client, request, key)
            if on_response is not None:
                on_response(i, response)
            progress.update()
            return response

        async with AsyncOpenAI(api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout) as client:
            try:
                return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))
            finally:
                progress.close()

    async def _generate_one(self, client: Any, request: ChatRequest, key: str) -> ChatResponse:
        import openai

        params: dict[str, Any] = {"model": self.model, "messages": request.message_dicts(),
                                  "max_tokens": request.max_tokens, "temperature": request.temperature}
        if request.stop:
            params["stop"] = list(request.stop)
        self._count(requests=1)
        error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count(retries=1)
            self._count(attempts=1)
            server_wait = None
            try:
                # wait_for bounds the whole call; the client's own timeout only bounds each network read.
                completion = await asyncio.wait_for(client.chat.completions.create(**params), self.timeout)
                text, usage = completion_text(completion)
                self._count(**usage)
                return ChatResponse(text=text, usage=usage)
            except openai.APIStatusError as exc:
                error = exc.message   # "Error code: <status> - <server's message>"
                if exc.status_code not in RETRYABLE_STATUS and exc.status_code < 500:
                    self._count(failed_attempts=1)
                    break
                server_wait = retry_after_seconds(exc.response.headers)
            except openai.APIConnectionError as exc:   # includes the client's APITimeoutError
                error = f"{type(exc).__name__}: {exc}" + (f" ({exc.__cause__!r})" if exc.__cause__ else "")
            except (asyncio.TimeoutError, json.JSONDecodeError, openai.APIResponseValidationError,
                    UnparseableResponse) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else f"{type(exc).__name__} after {self.timeout}s"
            self._count(failed_attempts=1)
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, server_wait))
        self._count(failures=1)
        attempts = attempt + 1
        error = f"{error} (after {attempts} attempt{'s' * (attempts > 1)})"
        # A server may echo the key in an error body (OpenAI does, partly masked); never let it reach a record.
        return ChatResponse(text="", error=error if key == LOCAL_DUMMY_KEY else error.replace(key, "<redacted>"))

    def _delay(self, attempt: int, server_wait: float | None) -> float:
        if server_wait is not None:
            return min(server_wait, self.backoff_max)
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** attempt))
