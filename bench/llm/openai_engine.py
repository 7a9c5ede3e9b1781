"""The ``openai`` engine: any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama, llama.cpp server), or
a fleet of them serving the same model (e.g. one vLLM server per GPU).

A batch of requests runs concurrently on one event loop, at most ``concurrency`` in flight per server (one
``AsyncOpenAI`` client each). Each request goes to the server with the fewest requests in flight (ties in turn).
The retry policy is ours (the openai client's own retries are off, so every retry is counted in ``stats``): rate
limits (429), server errors (5xx, 408, 409), timeouts, dropped connections and unparseable responses are retried up
to ``max_retries`` times, after a delay drawn with full jitter from ``[0, min(backoff_max, backoff_base *
2**attempt)]``, or after the server's ``Retry-After`` (capped at ``backoff_max``) when it sends one. A request that still fails, or fails with a status that
retrying cannot fix (400, 401, 404, ...), gets a response with ``error`` set; ``generate`` never raises for it.

With several servers, a request that still fails on a server after its retries moves to a server it has not tried
yet, and the failing server is taken out of rotation for ``cooldown`` seconds (unless it is the last one in
rotation: there is nowhere else to send requests, and its own retries pace them). After the cool-down it is on
probation, one request at a time, until it answers. Requests between retries on a server that was taken out
move on at once. So no request is lost while one server is up; a request fails once every server has failed it.
Which server answered is not part of the engine's identity (cache keys): the same model gives the same greedy answer,
so a run can move between servers and fleets.

The API key is read from the environment variable named by ``api_key_env`` each time a batch starts; it is kept out
of the engine's identity, repr and every error message. Local servers (loopback hosts) need no key.
"""
from __future__ import annotations

import asyncio
import contextlib
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

from tqdm.auto import tqdm

from bench.errors import UserError
from bench.llm.base import ChatRequest, ChatResponse, Engine, ResponseCallback

OPENAI_BASE_URL = "https://api.openai.com/v1"
# A placeholder key for local servers, which ignore it (the openai client refuses to start without one).
LOCAL_DUMMY_KEY = "EMPTY"
RETRYABLE_STATUS = frozenset({408, 409, 429})


def server_urls(base_url: str | Sequence[str] | None) -> tuple[str, ...]:
    """The servers an engine talks to: one URL or several, OpenAI's own when none is given (always explicit, so that
    the OPENAI_BASE_URL variable cannot silently redirect an engine whose repr says otherwise)."""
    urls = [base_url] if base_url is None or isinstance(base_url, str) else list(base_url)
    return tuple((url or OPENAI_BASE_URL).rstrip("/") for url in urls)


def missing_key(base_urls: Sequence[str], api_key_env: str) -> str | None:
    """Why these servers cannot be asked for lack of a key (a remote one and an unset variable), or None: local
    servers take no key. Checked by the run's pre-flight and by the engine itself."""
    remote = [url for url in base_urls if not is_local(url)]
    if remote and not os.environ.get(api_key_env):
        return f"the environment variable {api_key_env} (the API key of {', '.join(remote)}) is not set"
    return None


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
    # lazy: the openai client takes ~2 s to import; only when a server is called
    from openai.types.chat import ChatCompletion

    if not isinstance(completion, ChatCompletion):
        raise UnparseableResponse(f"expected a chat.completion object, got {str(completion)[:80]!r}")
    if not completion.choices or not isinstance(completion.choices[0].message.content, str):
        raise UnparseableResponse("chat.completion without text content")
    usage = completion.usage
    tokens = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens} if usage else {}
    return completion.choices[0].message.content, tokens


class _Server:
    """One server of the fleet: its health, shared by every batch, and its counts (``requests``: HTTP requests
    sent to it; ``failures``: those that got an error; ``removals``: times it was taken out of rotation;
    ``out_of_rotation_s``: the cool-downs it was given)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.down_until = 0.0   # time.monotonic() at which its cool-down ends
        self.on_probation = False
        self.stats: dict[str, float] = {"requests": 0, "failures": 0, "removals": 0, "out_of_rotation_s": 0.0}

    def in_rotation(self, now: float) -> bool:
        return now >= self.down_until


class OpenAIEngine(Engine):
    kind = "openai"

    def __init__(self, model: str, base_url: str | Sequence[str] | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout: float = 60, max_retries: int = 5, backoff_base: float = 0.5,
                 backoff_max: float = 20, cooldown: float = 30):
        if concurrency < 1 or max_retries < 0 or timeout <= 0 or cooldown < 0:
            raise UserError(f"openai engine: concurrency must be >= 1, max_retries >= 0, timeout > 0 and cooldown "
                            f">= 0 (got {concurrency}, {max_retries}, {timeout}, {cooldown})")
        self.model = model
        self.base_urls = server_urls(base_url)
        if not self.base_urls:
            raise UserError("openai engine: base_url is an empty list; expected one or more server URLs")
        repeated = sorted({url for url in self.base_urls if self.base_urls.count(url) > 1})
        if repeated:
            raise UserError(f"openai engine: base_url lists {', '.join(repeated)} more than once; expected distinct "
                            f"servers (--concurrency sets how many requests each one gets at a time)")
        self.servers = [_Server(url) for url in self.base_urls]
        self.cooldown = cooldown
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        # requests: asked by the caller; attempts: HTTP calls sent (requests + retries); failed_attempts: attempts
        # that got an error (retried or not); failures: requests that failed after every attempt; servers: the
        # counts of each server (see _Server), by URL.
        self.stats: dict[str, Any] = {"requests": 0, "attempts": 0, "retries": 0, "failed_attempts": 0,
                                      "failures": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                      "servers": {server.base_url: server.stats for server in self.servers}}
        self._stats_lock = threading.Lock()   # generate may run in several threads at once
        self._api_key()                        # fail now, not after the first batch is built

    def __repr__(self) -> str:
        urls = self.base_urls[0] if len(self.base_urls) == 1 else list(self.base_urls)
        return (f"OpenAIEngine(model={self.model!r}, base_url={urls!r}, api_key_env={self.api_key_env!r}, "
                f"concurrency={self.concurrency})")

    def identity(self) -> dict[str, Any]:
        # No server URL: which server of a fleet answered must not change a cache key.
        return {"kind": self.kind, "model": self.model}

    def _api_key(self) -> str:
        missing = missing_key(self.base_urls, self.api_key_env)
        if missing:
            raise UserError(f"openai engine: {missing}")
        return os.environ.get(self.api_key_env) or LOCAL_DUMMY_KEY

    def _count(self, server: _Server | None = None, **increments: float) -> None:
        with self._stats_lock:
            for name, n in increments.items():
                (self.stats if server is None else server.stats)[name] += n

    def _take_out_of_rotation(self, server: _Server) -> None:
        """After a request failed on ``server`` despite its retries: a cool-down, unless no other server is in
        rotation (then there is nowhere else to go)."""
        with self._stats_lock:
            now = time.monotonic()
            if not any(other.in_rotation(now) for other in self.servers if other is not server):
                return
            if server.in_rotation(now):
                server.down_until = now + self.cooldown
                server.on_probation = True
                server.stats["removals"] += 1
                server.stats["out_of_rotation_s"] += self.cooldown

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
        from openai import AsyncOpenAI  # lazy: the openai client takes ~2 s to import; only when a server is called

        key = self._api_key()
        fleet = _Fleet(self)
        progress = tqdm(total=len(requests), desc=f"openai {self.model}", unit="req", disable=None, leave=False)

        async def one(i: int, request: ChatRequest) -> ChatResponse:
            response = await self._generate_one(fleet, clients, request, key)
            if on_response is not None:
                on_response(i, response)
            progress.update()
            return response

        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(AsyncOpenAI(api_key=key, base_url=server.base_url,
                                                                   max_retries=0, timeout=self.timeout))
                       for server in self.servers]
            try:
                return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))
            finally:
                progress.close()

    async def _generate_one(self, fleet: "_Fleet", clients: Sequence[Any], request: ChatRequest,
                            key: str) -> ChatResponse:
        """The request on one server after another (never twice on one) until one answers or every server failed."""
        params: dict[str, Any] = {"model": self.model, "messages": request.message_dicts(),
                                  "max_tokens": request.max_tokens, "temperature": request.temperature}
        if request.stop:
            params["stop"] = list(request.stop)
        self._count(requests=1)
        tried: set[int] = set()
        attempts, error = 0, ""
        while (index := await fleet.acquire(tried)) is not None:
            tried.add(index)
            server = self.servers[index]
            try:
                response, server_attempts, server_failed = await self._ask_server(server, clients[index], params,
                                                                                  attempts)
                if server_failed:   # out before its place is freed, so that no waiting request takes that place
                    self._take_out_of_rotation(server)
            finally:
                fleet.release(index)
            attempts += server_attempts
            if response.error is None:
                fleet.answered(index)
                return response
            error = response.error
            if not server_failed:
                break   # a status that retrying cannot fix: another server would answer alike
        self._count(failures=1)
        error = f"{error} (after {attempts} attempt{'s' * (attempts > 1)})"
        # A server may echo the key in an error body (OpenAI does, partly masked); never let it reach a record.
        return ChatResponse(text="", error=error if key == LOCAL_DUMMY_KEY else error.replace(key, "<redacted>"))

    async def _ask_server(self, server: _Server, client: Any, params: dict[str, Any],
                          earlier_attempts: int) -> tuple[ChatResponse, int, bool]:
        """One server, with retries: (the response or the last error, attempts made, whether the server is to
        blame: False for a status that retrying cannot fix, which another server would answer alike)."""
        import openai  # lazy: the openai client takes ~2 s to import; only when a server is called

        for attempt in range(self.max_retries + 1):
            if attempt or earlier_attempts:
                self._count(retries=1)
            self._count(attempts=1)
            self._count(server, requests=1)   # the server's count of HTTP requests, as its access log has them
            server_wait = None
            try:
                # wait_for bounds the whole call; the client's own timeout only bounds each network read.
                completion = await asyncio.wait_for(client.chat.completions.create(**params), self.timeout)
                text, usage = completion_text(completion)
                self._count(**usage)
                return ChatResponse(text=text, usage=usage), attempt + 1, False
            except openai.APIStatusError as exc:
                error = exc.message   # "Error code: <status> - <server's message>"
                if exc.status_code not in RETRYABLE_STATUS and exc.status_code < 500:
                    self._count(failed_attempts=1)
                    self._count(server, failures=1)
                    return ChatResponse(text="", error=error), attempt + 1, False
                server_wait = retry_after_seconds(exc.response.headers)
            except openai.APIConnectionError as exc:   # includes the client's APITimeoutError
                error = f"{type(exc).__name__}: {exc}" + (f" ({exc.__cause__!r})" if exc.__cause__ else "")
            except (asyncio.TimeoutError, json.JSONDecodeError, openai.APIResponseValidationError,
                    UnparseableResponse) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else f"{type(exc).__name__} after {self.timeout}s"
            self._count(failed_attempts=1)
            self._count(server, failures=1)
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, server_wait))
                if not server.in_rotation(time.monotonic()):
                    break   # another request found it down meanwhile: move on rather than retry here
        return ChatResponse(text="", error=error), attempt + 1, True

    def _delay(self, attempt: int, server_wait: float | None) -> float:
        if server_wait is not None:
            return min(server_wait, self.backoff_max)
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** attempt))


class _Fleet:
    """The servers' free places in one batch (on its event loop): ``acquire`` picks, among the servers a request
    has not tried, one in rotation with a free place (``concurrency`` each; one while on probation), the one with
    fewest requests in flight (ties in turn), waiting when none is free."""

    def __init__(self, engine: OpenAIEngine):
        self.engine = engine
        self.in_flight = [0] * len(engine.servers)
        self.turn = 0
        self._change = asyncio.Event()

    def _limit(self, index: int) -> int:
        return 1 if self.engine.servers[index].on_probation else self.engine.concurrency

    async def acquire(self, tried: set[int]) -> int | None:
        """A server index for a request that tried ``tried`` already; None when it has tried them all."""
        servers = self.engine.servers
        while True:
            untried = [i for i in range(len(servers)) if i not in tried]
            if not untried:
                return None
            now = time.monotonic()
            free = [i for i in untried if servers[i].in_rotation(now) and self.in_flight[i] < self._limit(i)]
            if free:
                index = min(free, key=lambda i: (self.in_flight[i], (i - self.turn) % len(servers)))
                self.turn = (index + 1) % len(servers)
                self.in_flight[index] += 1
                return index
            cooling = [servers[i].down_until - now for i in untried if not servers[i].in_rotation(now)]
            change = asyncio.ensure_future(self._change.wait())
            # Woken by a freed place or a server's return; a cool-down ends without any event, hence the timeout.
            await asyncio.wait({change}, timeout=min(cooling) if cooling else None)
            change.cancel()

    def release(self, index: int) -> None:
        self.in_flight[index] -= 1
        self.changed()

    def answered(self, index: int) -> None:
        """A server that answers is off probation."""
        if self.engine.servers[index].on_probation:
            self.engine.servers[index].on_probation = False
            self.changed()

    def changed(self) -> None:
        """Wake every waiting request to look again (each one waits on the event current when it looked)."""
        self._change.set()
        self._change = asyncio.Event()
