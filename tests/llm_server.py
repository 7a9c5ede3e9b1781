"""A real local OpenAI-compatible HTTP server for tests: scripted replies and injected faults.

``ScriptedLLMServer`` serves, on 127.0.0.1 at a free port, from a daemon thread:

- ``POST /v1/chat/completions`` (Chat Completions API) -> a ``chat.completion`` object;
- ``POST /v1/responses`` (Responses API, what rank-llm's SafeOpenai calls) -> a ``response`` object whose
  ``output[0].content[0].text`` is the reply (so the openai client's ``response.output_text`` is the reply);
- ``GET /v1/models`` -> one model, ``scripted``;
- the rerank APIs, as their references document them: ``POST /v2/rerank`` (Cohere v2: ``results`` and
  ``meta.billed_units``) and ``POST /v1/rerank`` (Jina: ``results`` and ``usage``; Voyage, when ``rerank_dialect`` is
  ``"voyage"``: ``data`` and ``usage``), each result ``{"index", "relevance_score"}``, best first; the score of a
  document is ``rerank_score(query, document)`` (default: the number of the query's words it contains). Their
  ``root_url`` has no ``/v1``.

``reply(body)`` returns the assistant text for a request body (default: ``"ok"``); ``prompt_text(body)`` gives the
text of its messages for either API. Usage in replies counts whitespace tokens: prompt tokens = the whitespace
tokens of every message's text (plus the Responses API's ``instructions``), completion tokens = those of the reply.

Faults are consumed one per POST request, in arrival order (the request is recorded and counted either way):
``"429"`` (rate limited, with ``Retry-After: 1``; ``"429:<seconds>"`` sets another Retry-After value), ``"500"``,
``"slow:<seconds>"`` (sleep, then answer normally), ``"garbage"`` (status 200, JSON content type, a body that is not
JSON), ``"drop"`` (close the connection without any response), ``"401"`` (invalid key; the message echoes the
bearer key, as OpenAI's does partly masked), ``"ok"`` (answer normally). ``GET /v1/models`` is neither recorded nor
faulted. ``headers`` holds each recorded request's HTTP headers (lower-case names), parallel to ``requests``.

``stop()`` plays a killed server (callable from ``reply``, i.e. mid-request): it stops listening, and every request
still in flight or arriving on an open connection is dropped without a response (and not recorded).

Usage::

    with ScriptedLLMServer(reply=lambda body: "Paris", faults=["429"]) as srv:
        engine = OpenAIEngine("scripted", base_url=srv.base_url)
        ...
        assert srv.count == 2
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

import pytest

MODEL_ID = "scripted"


def _content_text(content: Any) -> str:
    """A message's content as text: a string, or a list of parts with ``text`` (both APIs allow either)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def prompt_text(body: dict) -> str:
    """The text of every message of a Chat Completions or Responses request body, joined by newlines."""
    parts = []
    if isinstance(body.get("instructions"), str):
        parts.append(body["instructions"])
    messages = body.get("messages", body.get("input", []))
    if isinstance(messages, str):
        parts.append(messages)
    else:
        parts.extend(_content_text(m.get("content")) for m in messages if isinstance(m, dict))
    return "\n".join(parts)


def _check_fault(fault: str) -> str:
    kind, sep, arg = fault.partition(":")
    if not sep and kind in {"401", "429", "500", "garbage", "drop", "ok"}:
        return fault
    if sep and kind in {"429", "slow"}:
        try:
            float(arg)
            return fault
        except ValueError:
            pass
    raise ValueError(f"unknown fault {fault!r}: expected 401, 429, 429:<seconds>, 500, slow:<seconds>, garbage, "
                     f"drop or ok")


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's parameter name
        """Silence the per-request stderr log."""

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on this request (a timeout test); nothing is left to tell it

    def _error(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
        self._send_json(status, {"error": {"message": message, "type": kind, "code": None, "param": None}}, headers)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.rstrip("/") == "/v1/models":
            self._send_json(200, {"object": "list", "data": [
                {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "tests"}]})
        else:
            self._error(404, f"no route GET {self.path}", "not_found")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.rstrip("/")
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._error(400, "request body is not JSON", "invalid_request_error")
            return
        if self.server.scripted.stopped:
            self.close_connection = True
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        fault = self.server.scripted.record(dict(body, _path=path), headers)
        if path not in {"/v1/chat/completions", "/v1/responses", "/v2/rerank", "/v1/rerank"}:
            self._error(404, f"no route POST {self.path}", "not_found")
            return
        kind, _, arg = fault.partition(":")
        if kind == "401":
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            self._error(401, f"Incorrect API key provided: {key}", "invalid_request_error")
        elif kind == "429":
            self._error(429, "rate limited (scripted)", "rate_limit_error", {"Retry-After": arg or "1"})
        elif kind == "500":
            self._error(500, "internal error (scripted)", "server_error")
        elif kind == "garbage":
            self._send(200, b"<html>this is not JSON")
        elif kind == "drop":
            self.close_connection = True   # return without writing: the client sees the connection closed
        else:
            if kind == "slow":
                time.sleep(float(arg))
            self._answer(path, body)

    def _answer(self, path: str, body: dict) -> None:
        if path.endswith("/rerank"):
            self._answer_rerank(path, body)
            return
        text = self.server.scripted.reply(body)
        if self.server.scripted.stopped:   # killed while answering
            self.close_connection = True
            return
        prompt_tokens = len(prompt_text(body).split())
        completion_tokens = len(text.split())
        n = self.server.scripted.count
        if path == "/v1/chat/completions":
            self._send_json(200, {
                "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", MODEL_ID),
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            })
        else:
            self._send_json(200, {
                "id": f"resp_{n}", "object": "response", "created_at": time.time(), "status": "completed",
                "model": body.get("model", MODEL_ID), "error": None, "incomplete_details": None,
                "instructions": body.get("instructions"), "parallel_tool_calls": False, "tool_choice": "auto",
                "tools": [], "temperature": body.get("temperature"), "top_p": None,
                "output": [{"type": "message", "id": f"msg_{n}", "status": "completed", "role": "assistant",
                            "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens,
                          "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens_details": {"reasoning_tokens": 0}},
            })


    def _answer_rerank(self, path: str, body: dict) -> None:
        scripted = self.server.scripted
        if not isinstance(body.get("query"), str) or not isinstance(body.get("documents"), list) or \
                not body.get("model"):
            self._error(400, "model, query and documents are required", "invalid_request_error")
            return
        scores = [scripted.rerank_score(body["query"], d) for d in body["documents"]]
        results = sorted(({"index": i, "relevance_score": s} for i, s in enumerate(scores)),
                         key=lambda r: -r["relevance_score"])
        tokens = len(body["query"].split()) * len(scores) + sum(len(d.split()) for d in body["documents"])
        if path == "/v2/rerank":
            self._send_json(200, {"id": f"rerank-{scripted.count}", "results": results,
                                  "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}})
        elif scripted.rerank_dialect == "voyage":
            self._send_json(200, {"object": "list", "data": results, "model": body["model"],
                                  "usage": {"total_tokens": tokens}})
        else:
            self._send_json(200, {"model": body["model"], "usage": {"total_tokens": tokens}, "results": results})


def word_overlap(query: str, document: str) -> float:
    words = set(document.lower().split())
    return float(sum(w in words for w in query.lower().split()))


class _Server(ThreadingHTTPServer):
    daemon_threads = True   # a request still sleeping in a "slow" fault never blocks shutdown

    def __init__(self, scripted: "ScriptedLLMServer"):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scripted = scripted


class ScriptedLLMServer:
    """See the module docstring. A context manager: serving starts on enter and stops on exit."""

    def __init__(self, reply: Callable[[dict], str] | None = None, faults: Iterable[str] = ()):
        self.reply: Callable[[dict], str] = reply or (lambda body: "ok")
        self.rerank_score: Callable[[str, str], float] = word_overlap
        self.rerank_dialect = "jina"          # who answers POST /v1/rerank: "jina" or "voyage"
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self._faults: deque[str] = deque()
        self.stopped = False
        self._lock = threading.Lock()
        self.add_faults(*faults)
        self._httpd = _Server(self)
        self.root_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.base_url = f"{self.root_url}/v1"
        # A short poll interval makes shutdown (once per test) take milliseconds instead of the default 0.5 s.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="scripted-llm-server", daemon=True)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def add_faults(self, *faults: str) -> None:
        checked = [_check_fault(f) for f in faults]
        with self._lock:
            self._faults.extend(checked)

    def record(self, body: dict, headers: dict[str, str]) -> str:
        """Record one request; return the fault it gets (``"ok"`` when none is left)."""
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            return self._faults.popleft() if self._faults else "ok"

    def stop(self) -> None:
        """See the module docstring; ``__exit__`` still cleans up afterwards."""
        self.stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "ScriptedLLMServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.fixture
def llm_server():
    """A running ``ScriptedLLMServer`` with the default reply; set ``.reply`` or ``add_faults`` in the test."""
    with ScriptedLLMServer() as srv:
        yield srv
