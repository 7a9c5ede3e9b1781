"""LLMCache and CachedEngine: hits, misses, modes, errors, persistence, concurrent writers (real SQLite)."""
from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from typing import Sequence

import pytest

from bench.errors import UserError
from bench.llm.base import ChatRequest, ChatResponse, Engine
from bench.llm.cache import CachedEngine, LLMCache, cache_key


class CountingEngine(Engine):
    """Answers "echo:<last message>", counts the requests it really receives; a message "fail" fails."""

    kind = "test"

    def __init__(self, model: str = "echo"):
        self.model = model
        self.batches: list[int] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        self.batches.append(len(requests))
        out = []
        for r in requests:
            content = r.messages[-1][1]
            if content == "fail":
                out.append(ChatResponse(text="", error="boom"))
            else:
                out.append(ChatResponse(text=f"echo:{content}", usage={"prompt_tokens": len(content),
                                                                       "completion_tokens": 1}))
        return out


def req(content: str, template: str = "t@v1:aaa") -> ChatRequest:
    return ChatRequest.chat([{"role": "user", "content": content}], template=template)


@pytest.fixture
def cache(tmp_path):
    c = LLMCache(tmp_path / "llm.sqlite")
    yield c
    c.close()


def test_second_call_is_served_from_cache(cache):
    engine = CountingEngine()
    cached = CachedEngine(engine, cache)
    first = cached.generate([req("a"), req("b")])
    assert [r.text for r in first] == ["echo:a", "echo:b"] and not any(r.cached for r in first)
    second = cached.generate([req("b"), req("c"), req("a")])
    assert [r.text for r in second] == ["echo:b", "echo:c", "echo:a"]
    assert [r.cached for r in second] == [True, False, True]
    assert engine.batches == [2, 1]                     # only the miss "c" went to the engine
    assert second[0].usage == {"prompt_tokens": 1, "completion_tokens": 1}
    s = cached.stats
    assert (s["batches"], s["requests"], s["calls"], s["hits"], s["misses"]) == (2, 5, 3, 2, 3)
    assert (s["prompt_tokens"], s["cached_prompt_tokens"]) == (3, 2)


def test_duplicates_in_one_batch_are_asked_once(cache):
    engine = CountingEngine()
    out = CachedEngine(engine, cache).generate([req("x"), req("x"), req("y"), req("x")])
    assert [r.text for r in out] == ["echo:x"] * 2 + ["echo:y", "echo:x"]
    assert [r.cached for r in out] == [False, True, False, True]
    assert engine.batches == [2]


def test_template_or_engine_change_is_a_miss(cache):
    engine = CountingEngine()
    CachedEngine(engine, cache).generate([req("a", template="t@v1:aaa")])
    CachedEngine(engine, cache).generate([req("a", template="t@v2:bbb")])
    CachedEngine(CountingEngine(model="other"), cache).generate([req("a", template="t@v1:aaa")])
    assert engine.batches == [1, 1]
    assert len(cache) == 3
    assert cache_key(engine.identity(), req("a")) != cache_key(engine.identity(), req("a", template="t@v2:bbb"))


def test_bypass_neither_reads_nor_writes(cache):
    engine = CountingEngine()
    CachedEngine(engine, cache).generate([req("a")])
    out = CachedEngine(engine, cache, mode="bypass").generate([req("a"), req("new"), req("new")])
    assert not any(r.cached for r in out)
    assert engine.batches == [1, 3]
    assert len(cache) == 1                              # "new" was not stored


def test_refresh_ignores_hits_and_overwrites(cache):
    old = CountingEngine()
    CachedEngine(old, cache).generate([req("a")])

    class Changed(CountingEngine):                      # same identity, different output (e.g. a fixed bug)
        def generate(self, requests):
            return [ChatResponse(text=r.text.upper()) for r in super().generate(requests)]

    new = Changed()
    out = CachedEngine(new, cache, mode="refresh").generate([req("a")])
    assert out[0].text == "ECHO:A" and not out[0].cached and new.batches == [1]
    again = CachedEngine(CountingEngine(), cache).generate([req("a")])
    assert again[0].text == "ECHO:A" and again[0].cached


def test_errors_are_not_cached(cache):
    engine = CountingEngine()
    cached = CachedEngine(engine, cache)
    out = cached.generate([req("fail"), req("ok")])
    assert out[0].error == "boom" and out[1].error is None
    cached.generate([req("fail"), req("ok")])
    assert engine.batches == [2, 1]                     # the failed request is asked again, the good one is not
    assert cached.stats["errors"] == 2
    with pytest.raises(ValueError, match="must not be cached"):
        cache.put_many([("k", req("fail"), ChatResponse(text="", error="x"))])


def test_persists_across_reopen(tmp_path):
    path = tmp_path / "sub" / "llm.sqlite"
    first = LLMCache(path)
    CachedEngine(CountingEngine(), first).generate([req("a")])
    first.close()
    engine = CountingEngine()
    out = CachedEngine(engine, LLMCache(path)).generate([req("a")])
    assert out[0].text == "echo:a" and out[0].cached and engine.batches == []
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unknown_mode_and_broken_file(tmp_path, cache):
    with pytest.raises(UserError, match="cache mode 'reuse'"):
        CachedEngine(CountingEngine(), cache, mode="reuse")
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(UserError, match="not a usable SQLite database"):
        LLMCache(bad)


def _write_many(path: str, worker: int, n: int) -> None:
    cache = LLMCache(path)
    engine = CachedEngine(CountingEngine(), cache)
    for i in range(0, n, 5):    # many short transactions, interleaved with the other writers
        engine.generate([req(f"{worker}-{j}") for j in range(i, i + 5)] + [req(f"shared-{i}")])


def test_concurrent_processes_and_threads(tmp_path):
    path = str(tmp_path / "llm.sqlite")
    LLMCache(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(path, w, 200)) for w in range(2)]
    errors: list[BaseException] = []

    def in_thread(worker: int) -> None:
        try:
            _write_many(path, worker, 100)
        except BaseException as exc:  # re-raised below: a thread's exception would otherwise only be printed
            errors.append(exc)

    threads = [threading.Thread(target=in_thread, args=(w,)) for w in (2, 3)]
    for t in procs + threads:
        t.start()
    for t in procs + threads:
        t.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert errors == []
    cache = LLMCache(path)
    keys = [cache_key(CountingEngine().identity(), req(f"{w}-{j}")) for w, n in ((0, 200), (1, 200), (2, 100),
                                                                                 (3, 100)) for j in range(n)]
    shared = [cache_key(CountingEngine().identity(), req(f"shared-{i}")) for i in range(0, 200, 5)]
    found = cache.get_many(keys + shared)
    assert len(found) == 600 + 40 == len(cache)
    assert found[keys[250]].text == "echo:1-50"


def test_responses_name_their_cache_key_where_the_request_and_reply_are_stored(cache):
    engine = CountingEngine()
    out = CachedEngine(engine, cache).generate([req("a"), req("fail"), req("a")])
    key = cache_key(engine.identity(), req("a"))
    assert [r.cache_key for r in out] == [key, None, key]          # a failed call is not stored: no key
    request, text = sqlite3.connect(cache.path).execute(
        "SELECT request, text FROM responses WHERE key = ?", (key,)).fetchone()
    assert json.loads(request) == {"messages": [["user", "a"]], "max_tokens": 32, "temperature": 0.0, "stop": [],
                                   "template": "t@v1:aaa"}
    assert text == "echo:a"
    again = CachedEngine(engine, cache).generate([req("a")])
    assert again[0].cached and again[0].cache_key == key
    bypassed = CachedEngine(engine, cache, mode="bypass").generate([req("a")])
    assert bypassed[0].cache_key is None                            # bypass stores nothing


def test_cache_file_from_before_requests_were_kept_gets_the_column(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, usage TEXT NOT NULL, "
                   "template TEXT NOT NULL, created REAL NOT NULL)")
        db.execute("INSERT INTO responses VALUES ('k-old', 'old reply', '{}', 't', 0)")
    cache = LLMCache(path)
    assert cache.get_many(["k-old"])["k-old"].text == "old reply"
    CachedEngine(CountingEngine(), cache).generate([req("b")])
    rows = dict(sqlite3.connect(path).execute("SELECT text, request FROM responses").fetchall())
    assert rows["old reply"] is None and json.loads(rows["echo:b"])["messages"] == [["user", "b"]]
    cache.close()
    LLMCache(path).close()                                          # reopening an upgraded file: no second column


def _open_cache_at_the_barrier(path, barrier, errors) -> None:
    barrier.wait()
    try:
        LLMCache(path)
    except Exception as exc:  # noqa: BLE001 - reported to the test through the queue
        errors.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_cache_together_all_get_it(tmp_path):
    """The ranks of a torchrun run open the same new cache at the same moment: switching it to WAL, SQLite answers
    "database is locked" at once to all but one of them (no busy wait), which used to fail a rank about one round in
    seven. Forty rounds of six processes released by one barrier."""
    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    for round_ in range(40):
        barrier = ctx.Barrier(6)
        procs = [ctx.Process(target=_open_cache_at_the_barrier, args=(tmp_path / f"{round_}.sqlite", barrier, errors))
                 for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0] * 6
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == []
