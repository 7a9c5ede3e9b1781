"""OpenAIEngine over several real local servers (tests/llm_server.py): load shared within per-server limits, a server
killed mid-batch or answering 500s taken out of rotation without losing a request, and cache keys that do not name
the server."""
from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from bench.errors import UserError
from bench.llm.base import ChatRequest
from bench.llm.cache import CachedEngine, LLMCache, cache_key
from bench.llm.openai_engine import OpenAIEngine
from tests.llm_server import ScriptedLLMServer, prompt_text


@pytest.fixture
def two_servers():
    with ScriptedLLMServer() as a, ScriptedLLMServer() as b:
        yield a, b


def fleet_engine(*servers: ScriptedLLMServer, **kw) -> OpenAIEngine:
    """Tiny backoff and timeout so that retry tests take milliseconds."""
    params = {"concurrency": 2, "timeout": 2.0, "max_retries": 1, "backoff_base": 0.001, "backoff_max": 0.05,
              "cooldown": 60.0}
    return OpenAIEngine("scripted", base_url=[s.base_url for s in servers], **(params | kw))


def questions(n: int) -> list[ChatRequest]:
    return [ChatRequest.chat([{"role": "user", "content": f"question {i}"}]) for i in range(n)]


def echo(body: dict) -> str:
    return prompt_text(body).replace("question", "answer")


def test_requests_are_shared_by_both_servers_within_each_ones_concurrency(two_servers):
    peaks = {}

    def counting_reply(name):
        in_flight, lock = [0], threading.Lock()

        def reply(body):
            with lock:
                in_flight[0] += 1
                peaks[name] = max(peaks.get(name, 0), in_flight[0])
            time.sleep(0.02)
            with lock:
                in_flight[0] -= 1
            return echo(body)
        return reply

    a, b = two_servers
    a.reply, b.reply = counting_reply("a"), counting_reply("b")
    engine = fleet_engine(a, b, concurrency=2)
    responses = engine.generate(questions(16))

    assert [r.text for r in responses] == [f"answer {i}" for i in range(16)]
    # the first four requests start at once, two on each server; the rest go wherever a place frees up
    assert a.count >= 2 and b.count >= 2 and a.count + b.count == 16
    assert 1 <= peaks["a"] <= 2 and 1 <= peaks["b"] <= 2
    assert engine.stats["servers"] == {
        a.base_url: {"requests": a.count, "failures": 0, "removals": 0, "out_of_rotation_s": 0.0},
        b.base_url: {"requests": b.count, "failures": 0, "removals": 0, "out_of_rotation_s": 0.0}}
    assert (engine.stats["requests"], engine.stats["attempts"], engine.stats["failures"]) == (16, 16, 0)


def test_a_server_killed_mid_batch_loses_no_request(two_servers):
    a, b = two_servers
    b.reply = echo

    replies, lock = [0], threading.Lock()

    def reply_then_die(body):
        with lock:
            replies[0] += 1
            if replies[0] == 3:
                a.stop()   # this request, and any other in flight on a, gets no answer
        return echo(body)

    a.reply = reply_then_die
    engine = fleet_engine(a, b, concurrency=2, max_retries=1)
    responses = engine.generate(questions(20))

    assert [(r.text, r.error) for r in responses] == [(f"answer {i}", None) for i in range(20)]
    assert a.stopped and b.count >= 20 - (a.count - 1)   # at least a's third request died with it
    assert engine.stats["failures"] == 0
    assert engine.stats["servers"][a.base_url]["removals"] == 1
    assert engine.stats["servers"][a.base_url]["out_of_rotation_s"] == 60.0
    assert engine.stats["servers"][b.base_url] == {"requests": b.count, "failures": 0, "removals": 0,
                                                   "out_of_rotation_s": 0.0}


def test_a_server_answering_500_is_taken_out_of_rotation_then_tried_again_after_its_cooldown(two_servers):
    a, b = two_servers
    a.reply = b.reply = echo
    a.add_faults("500", "500")                  # the first request's two attempts on a
    engine = fleet_engine(a, b, concurrency=1, max_retries=1, cooldown=1.0)

    first = engine.generate(questions(6))
    assert [r.text for r in first] == [f"answer {i}" for i in range(6)]
    assert a.count == 2 and b.count == 6       # out of rotation, a got nothing more; its request went to b
    assert engine.stats["servers"][a.base_url] == {"requests": 2, "failures": 2, "removals": 1,
                                                   "out_of_rotation_s": 1.0}
    assert (engine.stats["attempts"], engine.stats["retries"], engine.stats["failed_attempts"],
            engine.stats["failures"]) == (8, 2, 2, 0)

    time.sleep(1.0)                             # the cool-down is over: a is back, on probation
    second = engine.generate(questions(4))
    assert [r.text for r in second] == [f"answer {i}" for i in range(4)]
    assert a.count > 2 and a.count + b.count == 12
    assert engine.stats["servers"][a.base_url]["removals"] == 1


def test_a_request_fails_once_every_server_failed_it_and_the_last_server_stays_in_rotation(two_servers):
    a, b = two_servers
    a.add_faults("500", "500")
    b.add_faults("500", "500")
    engine = fleet_engine(a, b, max_retries=1)
    [response] = engine.generate(questions(1))
    assert response.error == "Error code: 500 - internal error (scripted) (after 4 attempts)"
    assert (a.count, b.count) == (2, 2)
    assert (engine.stats["attempts"], engine.stats["retries"], engine.stats["failures"]) == (4, 3, 1)
    # a went out of rotation; b, then the only server left, stayed in and answers the next request at once
    assert [engine.stats["servers"][s.base_url]["removals"] for s in (a, b)] == [1, 0]
    assert engine.generate(questions(1))[0].text == "ok" and b.count == 3


def test_a_status_that_retrying_cannot_fix_is_not_sent_to_the_other_server(two_servers):
    a, b = two_servers
    a.add_faults("401")
    [response] = fleet_engine(a, b).generate(questions(1))
    assert response.error == "Error code: 401 - Incorrect API key provided: EMPTY (after 1 attempt)"
    assert (a.count, b.count) == (1, 0)


def test_the_cache_key_does_not_depend_on_the_servers(two_servers, tmp_path):
    a, b = two_servers
    a.reply = b.reply = echo
    request = questions(1)[0]
    single, fleet = fleet_engine(a), fleet_engine(b, a)
    assert cache_key(single.identity(), request) == cache_key(fleet.identity(), request)

    cache = LLMCache(tmp_path / "llm.sqlite")
    answered = CachedEngine(single, cache).generate(questions(3))
    moved = CachedEngine(fleet, cache)
    assert moved.generate(questions(3)) == [dataclasses.replace(r, cached=True) for r in answered]   # same keys too
    assert (a.count, b.count, moved.stats["calls"], moved.stats["hits"]) == (3, 0, 0, 3)


@pytest.mark.parametrize("urls,message", [
    ([], "base_url is an empty list"),
    (["http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1/"], "lists http://127.0.0.1:9/v1 more than once"),
])
def test_bad_server_lists_are_user_errors(urls, message):
    with pytest.raises(UserError, match=message):
        OpenAIEngine("scripted", base_url=urls)


def test_a_key_is_required_when_any_server_is_remote(monkeypatch):
    monkeypatch.delenv("RB_TEST_ABSENT_KEY", raising=False)
    with pytest.raises(UserError, match=r"openai engine: the environment variable RB_TEST_ABSENT_KEY \(the API key of "
                                        r"http://gpu7:8000/v1\) is not set"):
        OpenAIEngine("m", base_url=["http://127.0.0.1:9/v1", "http://gpu7:8000/v1"], api_key_env="RB_TEST_ABSENT_KEY")


@pytest.mark.parametrize("argv,base_url,judge_base_url", [
    ([], None, None),
    (["--base-url", "http://a/v1"], "http://a/v1", None),     # one server: a string, as before (same run ids)
    (["--base-url", "http://a/v1", "http://b/v1", "--judge-base-url", "http://j/v1", "http://k/v1"],
     ["http://a/v1", "http://b/v1"], ["http://j/v1", "http://k/v1"]),
])
def test_server_options_take_one_or_several_urls(argv, base_url, judge_base_url):
    from bench.cli import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(["run", *argv]))
    assert (config.servers.base_url, config.servers.judge_base_url) == (base_url, judge_base_url)
