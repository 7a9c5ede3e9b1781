"""A persistent cache of LLM responses, shared by every engine.

Reader generations are deterministic (greedy), so a response is a function of (engine identity, request): RRPO
re-asks the same (question, prefix) many times and reruns of a benchmark re-ask everything. ``LLMCache`` keeps
responses in SQLite (WAL mode, so readers never block and writers from several threads or processes queue briefly on
``busy_timeout``); ``CachedEngine`` wraps any engine with it. Only successful responses are stored: a request that
failed is asked again next time. Prompts being asked are claimed in the same file (``inflight``), so processes
asking the same prompt at once pay for it once (the others wait for the stored answer).
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import uuid
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from bench.environment import cache_dir as bench_cache_dir
from bench.errors import UserError
from bench.hashing import stable_hash
from bench.llm.base import ChatRequest, ChatResponse, Engine, ResponseCallback

CACHE_MODES = ("use", "bypass", "refresh")
_SQL_VARIABLES = 500   # keys per SELECT ... IN (...), below SQLite's variable limit of every version
# In-flight claims: a process about to ask for a missing response claims its key, so that others asking the same
# prompt at the same time wait for the answer instead of paying for it again. A claim ends when its response is
# stored or its call failed; one whose process died (on this host) is void at once, one from another host after
# CLAIM_LEASE_S.
CLAIM_LEASE_S = 900.0
CLAIM_POLL_S = 0.2
HOST = socket.gethostname()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # someone else's process: alive
        return True
    return True


CACHE_FILE = "llm-cache.sqlite"


def open_cache(cache_dir: str | os.PathLike | None = None) -> "LLMCache":
    """The shared LLM cache of a cache folder (default: the bench cache folder)."""
    return LLMCache(bench_cache_dir(cache_dir) / CACHE_FILE)


def cache_key(identity: dict[str, Any], request: ChatRequest) -> str:
    return stable_hash({"engine": identity, "request": request.key_material()}, 64)


class LLMCache:
    """SQLite table key -> (response text, usage, the request as JSON: messages, decoding parameters, template).
    One connection per thread and process, each in autocommit mode with short explicit write transactions."""

    def __init__(self, path: str | os.PathLike, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        self.busy_timeout_ms = int(busy_timeout_s * 1000)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                       "usage TEXT NOT NULL, template TEXT NOT NULL, created REAL NOT NULL, request TEXT)")
            # Caches made before requests were kept get the column (their rows keep NULL); inside the write
            # transaction, so two processes opening one old file never both add it.
            if "request" not in {row[1] for row in db.execute("PRAGMA table_info(responses)")}:
                db.execute("ALTER TABLE responses ADD COLUMN request TEXT")
            db.execute("CREATE TABLE IF NOT EXISTS inflight (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                       "host TEXT NOT NULL, pid INTEGER NOT NULL, started REAL NOT NULL)")

    def _connection(self) -> sqlite3.Connection:
        # A connection must not cross a fork or a thread: keep one per (process, thread).
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout_ms / 1000)
                conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
                self._enable_wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError as exc:
                raise UserError(f"LLM cache {self.path}: not a usable SQLite database ({exc})") from exc
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL, retrying while another process switches the same new file: SQLite answers "database is
        locked" at once, without waiting on ``busy_timeout``, to the second of two connections that both hold a
        shared lock and want the exclusive one (its deadlock avoidance), which is what two processes opening a new
        cache together do (the ranks of a torchrun run)."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _write(self) -> "_WriteTransaction":
        return _WriteTransaction(self._connection())

    def get_many(self, keys: Sequence[str]) -> dict[str, ChatResponse]:
        """The stored responses among ``keys`` (missing keys are absent), marked ``cached``."""
        db = self._connection()
        found: dict[str, ChatResponse] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _SQL_VARIABLES):
            chunk = unique[start:start + _SQL_VARIABLES]
            rows = db.execute(f"SELECT key, text, usage FROM responses WHERE key IN ({','.join('?' * len(chunk))})",
                              chunk).fetchall()
            for key, text, usage in rows:
                found[key] = ChatResponse(text=text, usage=json.loads(usage), cached=True)
        return found

    def put_many(self, items: Sequence[tuple[str, ChatRequest, ChatResponse]], overwrite: bool = False) -> None:
        """Store successful responses; responses with ``error`` set are refused (a bug in the caller)."""
        if any(resp.error is not None for _, _, resp in items):
            raise ValueError("LLMCache.put_many: failed responses must not be cached")
        verb = "INSERT OR REPLACE" if overwrite else "INSERT OR IGNORE"
        now = time.time()
        rows = [(key, resp.text, json.dumps(resp.usage), req.template, now,
                 json.dumps(req.key_material(), ensure_ascii=False)) for key, req, resp in items]
        with self._write() as db:
            db.executemany(f"{verb} INTO responses (key, text, usage, template, created, request) "
                           f"VALUES (?, ?, ?, ?, ?, ?)", rows)

    def claim(self, keys: Sequence[str], owner: str) -> set[str]:
        """Claim the keys nobody else has a live claim on (see CLAIM_LEASE_S); returns the keys ``owner`` holds."""
        unique = list(dict.fromkeys(keys))
        held: set[str] = set()
        now = time.time()
        with self._write() as db:
            for start in range(0, len(unique), _SQL_VARIABLES):
                chunk = unique[start:start + _SQL_VARIABLES]
                marks = ",".join("?" * len(chunk))
                void = [key for key, host, pid, started in db.execute(
                    f"SELECT key, host, pid, started FROM inflight WHERE key IN ({marks})", chunk)
                    if now - started > CLAIM_LEASE_S or (host == HOST and not _process_alive(pid))]
                db.executemany("DELETE FROM inflight WHERE key = ?", [(k,) for k in void])
                db.executemany("INSERT OR IGNORE INTO inflight (key, owner, host, pid, started) VALUES (?, ?, ?, ?, ?)",
                               [(k, owner, HOST, os.getpid(), now) for k in chunk])
                held.update(k for (k,) in db.execute(
                    f"SELECT key FROM inflight WHERE owner = ? AND key IN ({marks})", [owner, *chunk]))
        return held

    def release(self, keys: Sequence[str], owner: str) -> None:
        """End ``owner``'s claims on ``keys`` (its responses are stored, or its calls failed)."""
        unique = list(dict.fromkeys(keys))
        with self._write() as db:
            for start in range(0, len(unique), _SQL_VARIABLES):
                chunk = unique[start:start + _SQL_VARIABLES]
                db.execute(f"DELETE FROM inflight WHERE owner = ? AND key IN ({','.join('?' * len(chunk))})",
                           [owner, *chunk])

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None


class _WriteTransaction:
    """``BEGIN IMMEDIATE`` takes the write lock up front, so a busy database waits on ``busy_timeout`` here instead
    of failing half-way through the transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


STAT_KEYS = ("batches", "requests", "calls", "hits", "misses", "errors", "prompt_tokens", "completion_tokens",
             "cached_prompt_tokens", "cached_completion_tokens")


class CachedEngine(Engine):
    """Any engine behind the cache.

    mode ``use``: serve stored responses, ask the engine for the rest (identical requests in one batch are asked
    once), store the successful ones. ``bypass``: neither read nor write. ``refresh``: ask the engine for everything
    and overwrite what is stored. ``stats`` counts ``batches`` (generate calls), ``requests``, ``calls`` (requests
    sent to the engine: the LLM calls really made), ``hits`` (requests answered without the engine; requests =
    calls + hits), ``misses`` (requests not found in the cache, = calls), ``errors`` (failed calls) and tokens
    (``prompt_tokens``/``completion_tokens``: what the engine processed; ``cached_*``: what the cache saved)."""

    def __init__(self, engine: Engine, cache: LLMCache, mode: str = "use"):
        if mode not in CACHE_MODES:
            raise UserError(f"cache mode {mode!r}: expected one of {', '.join(CACHE_MODES)}")
        self.engine, self.cache, self.mode = engine, cache, mode
        self.kind, self.model = engine.kind, engine.model
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        return self.engine.identity()

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        return self.stream(requests, None)

    def stream(self, requests: Sequence[ChatRequest], on_response: ResponseCallback | None) -> list[ChatResponse]:
        identity = self.engine.identity()
        keys = [cache_key(identity, r) for r in requests]
        answers: dict[Any, ChatResponse] = {}       # by key; by position under bypass (every request is asked)
        positions: dict[Any, list[int]] = {}

        def deliver(key: Any, resp: ChatResponse) -> None:
            if key not in answers:
                answers[key] = resp
                if on_response is not None:
                    for i in positions[key]:
                        on_response(i, resp)

        if self.mode == "bypass":
            positions = {i: [i] for i in range(len(requests))}
            fresh = self._ask(list(positions), list(requests), deliver) if requests else []
            self._count(len(requests), fresh, [])
            return fresh
        requests_by_key = dict(zip(keys, requests))      # identical requests of the batch are asked once
        for i, k in enumerate(keys):
            positions.setdefault(k, []).append(i)

        if self.mode == "use":
            for key, resp in self.cache.get_many(list(requests_by_key)).items():
                deliver(key, resp)
        fresh: list[ChatResponse] = []
        owner = uuid.uuid4().hex
        pending = [k for k in requests_by_key if k not in answers]
        while pending:
            # "use": ask only for the keys no other process is asking for right now; wait for theirs to be stored
            mine = self.cache.claim(pending, owner) if self.mode == "use" else set(pending)
            ask = [k for k in pending if k in mine]
            if ask:
                try:
                    fresh += self._ask(ask, [requests_by_key[k] for k in ask], deliver)
                finally:
                    if self.mode == "use":
                        self.cache.release(ask, owner)
            pending = [k for k in pending if k not in answers]
            if pending:
                time.sleep(CLAIM_POLL_S)
                for key, resp in self.cache.get_many(pending).items():
                    deliver(key, resp)
                pending = [k for k in pending if k not in answers]
        out, seen = [], set()
        for k in keys:
            resp = answers[k]
            if k in seen and not resp.cached:    # a duplicate in the batch is served from the first one's answer
                resp = ChatResponse(resp.text, dict(resp.usage), cached=True, error=resp.error)
            seen.add(k)
            out.append(resp)
        self._count(len(requests), fresh, [r for r in out if r.cached])
        # Each response names its key in the cache (a record links to the exact request and response by it); one
        # that is not stored there (failed) names none.
        return [replace(r, cache_key=k if r.error is None else None) for k, r in zip(keys, out)]

    def _ask(self, ask_keys: list, ask_requests: list[ChatRequest], deliver) -> list[ChatResponse]:
        """The engine's responses to ``ask_requests``, each stored the moment it arrives (a run killed mid-batch
        never pays for it again; not under ``bypass``) and handed to ``deliver(key, response)``."""
        def store(j: int, resp: ChatResponse) -> None:
            if self.mode != "bypass" and resp.error is None:
                self.cache.put_many([(ask_keys[j], ask_requests[j], resp)], overwrite=self.mode == "refresh")
            deliver(ask_keys[j], resp)

        fresh = self.engine.stream(ask_requests, store)
        if len(fresh) != len(ask_requests):
            raise RuntimeError(f"engine {self.engine.kind}:{self.engine.model} returned {len(fresh)} responses "
                               f"for {len(ask_requests)} requests")
        for key, resp in zip(ask_keys, fresh):     # an engine that answered without calling back for each
            deliver(key, resp)
        return fresh

    def _count(self, n_requests: int, fresh: list[ChatResponse], served: list[ChatResponse]) -> None:
        with self._lock:
            s = self.stats
            s["batches"] += 1
            s["requests"] += n_requests
            s["calls"] += len(fresh)
            s["misses"] += len(fresh)
            s["hits"] += len(served)
            s["errors"] += sum(r.error is not None for r in fresh)
            for prefix, responses in (("", fresh), ("cached_", served)):
                for r in responses:
                    s[f"{prefix}prompt_tokens"] += r.usage.get("prompt_tokens", 0)
                    s[f"{prefix}completion_tokens"] += r.usage.get("completion_tokens", 0)
