"""OpenAIEngine against a real local HTTP server (tests/llm_server.py): concurrency, order, retries, failures,
usage, secrecy of the API key."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from bench.errors import UserError
from bench.llm.base import ChatRequest
from bench.llm.openai_engine import OpenAIEngine, retry_after_seconds
from tests.llm_server import ScriptedLLMServer, llm_server, prompt_text  # noqa: F401 - llm_server is a fixture


def fast_engine(srv: ScriptedLLMServer, **kw) -> OpenAIEngine:
    """Tiny backoff and timeout so that retry tests take milliseconds."""
    params = {"concurrency": 4, "timeout": 2.0, "max_retries": 2, "backoff_base": 0.001, "backoff_max": 0.05}
    return OpenAIEngine("scripted", base_url=srv.base_url, **(params | kw))


def ask(text: str, **kw) -> ChatRequest:
    return ChatRequest.chat([{"role": "user", "content": text}], **kw)


def test_batch_keeps_request_order_under_uneven_delays_and_bounds_concurrency(llm_server):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def reply(body):
        i = int(prompt_text(body).removeprefix("question "))
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.02 * (12 - i))   # early requests answer last
        with lock:
            in_flight[0] -= 1
        return f"answer {i}"

    llm_server.reply = reply
    engine = fast_engine(llm_server, concurrency=4)
    responses = engine.generate([ask(f"question {i}", max_tokens=7, stop=("\n",)) for i in range(12)])

    assert [r.text for r in responses] == [f"answer {i}" for i in range(12)]
    assert all(r.error is None for r in responses)
    assert llm_server.count == 12
    assert 1 < peak[0] <= 4
    body = llm_server.requests[0]
    assert (body["_path"], body["model"], body["max_tokens"], body["temperature"], body["stop"]) == \
        ("/v1/chat/completions", "scripted", 7, 0.0, ["\n"])
    assert engine.stats["requests"] == 12 and engine.stats["retries"] == 0 and engine.stats["failures"] == 0


def test_usage_is_recorded_per_response_and_summed_in_stats(llm_server):
    llm_server.reply = lambda body: "two words"
    engine = fast_engine(llm_server)
    request = ChatRequest.chat([{"role": "system", "content": "be brief now"}, {"role": "user", "content": "a b"}])
    responses = engine.generate([request, ask("one")])
    assert [r.usage for r in responses] == [{"prompt_tokens": 5, "completion_tokens": 2},
                                            {"prompt_tokens": 1, "completion_tokens": 2}]
    assert (engine.stats["prompt_tokens"], engine.stats["completion_tokens"]) == (6, 4)


@pytest.mark.parametrize("fault", ["429:0", "500", "garbage", "drop", "slow:8"])
def test_a_transient_fault_is_retried_then_succeeds(llm_server, fault):
    # The timeout is generous (a busy CI machine must not turn a scheduling delay into an extra attempt) yet far
    # below the slow fault's sleep, so finishing well before 8 s proves the slow reply was abandoned, not awaited.
    llm_server.reply = lambda body: "fine"
    llm_server.add_faults(fault)
    engine = fast_engine(llm_server, timeout=2.0)
    start = time.monotonic()
    [response] = engine.generate([ask("q")])
    assert (response.text, response.error) == ("fine", None)
    assert llm_server.count == 2
    assert (engine.stats["attempts"], engine.stats["retries"], engine.stats["failed_attempts"],
            engine.stats["failures"]) == (2, 1, 1, 0)
    assert time.monotonic() - start < 6.0


@pytest.mark.parametrize("retry_after,backoff_max,min_wait", [("0.25", 5.0, 0.25), ("30", 0.15, 0.15)])
def test_429_waits_for_retry_after_capped_at_backoff_max(llm_server, retry_after, backoff_max, min_wait):
    llm_server.add_faults(f"429:{retry_after}")
    engine = fast_engine(llm_server, backoff_max=backoff_max)
    start = time.monotonic()
    [response] = engine.generate([ask("q")])
    waited = time.monotonic() - start
    assert response.text == "ok" and engine.stats["retries"] == 1
    assert min_wait <= waited < min_wait + 1.0


def test_persistent_500_becomes_a_recorded_failure_without_raising(llm_server):
    llm_server.add_faults("500", "500", "500")
    engine = fast_engine(llm_server, max_retries=2)
    [first] = engine.generate([ask("doomed")])
    assert first.text == "" and first.usage == {}
    assert first.error == "Error code: 500 - internal error (scripted) (after 3 attempts)"
    assert llm_server.count == 3
    assert (engine.stats["retries"], engine.stats["failed_attempts"], engine.stats["failures"]) == (2, 3, 1)
    [second] = engine.generate([ask("fine")])
    assert (second.text, second.error) == ("ok", None)


def test_a_status_that_retrying_cannot_fix_fails_at_once(llm_server):
    engine = OpenAIEngine("scripted", base_url=llm_server.base_url + "/no-such-route", max_retries=3,
                          backoff_base=0.001, backoff_max=0.05)
    [response] = engine.generate([ask("q")])
    assert response.error.startswith("Error code: 404 - no route POST") and response.error.endswith("(after 1 attempt)")
    assert llm_server.count == 1 and (engine.stats["retries"], engine.stats["failed_attempts"]) == (0, 1)


def test_api_key_comes_from_the_named_variable_and_never_leaks(llm_server, monkeypatch):
    secret = "sk-test-7f3a9c1e-unique-key"
    monkeypatch.setenv("RB_TEST_LLM_KEY", secret)
    llm_server.add_faults("401")
    engine = fast_engine(llm_server, api_key_env="RB_TEST_LLM_KEY")
    [rejected] = engine.generate([ask("q")])
    [accepted] = engine.generate([ask("q")])
    assert llm_server.headers[1]["authorization"] == f"Bearer {secret}"   # the key was really sent
    assert rejected.error == "Error code: 401 - Incorrect API key provided: <redacted> (after 1 attempt)"
    assert accepted.text == "ok"
    visible = [repr(engine), json.dumps(engine.identity()), str(engine.__dict__), rejected.error]
    assert not any(secret in s for s in visible)
    assert engine.identity() == {"kind": "openai", "model": "scripted"}


def test_missing_key_variable_is_a_user_error_for_remote_servers_only(llm_server, monkeypatch):
    monkeypatch.delenv("RB_TEST_ABSENT_KEY", raising=False)
    with pytest.raises(UserError, match="RB_TEST_ABSENT_KEY"):
        OpenAIEngine("gpt-4o-mini", api_key_env="RB_TEST_ABSENT_KEY")
    engine = fast_engine(llm_server, api_key_env="RB_TEST_ABSENT_KEY")
    assert engine.generate([ask("q")])[0].text == "ok"
    assert llm_server.headers[0]["authorization"] == "Bearer EMPTY"


def test_generate_runs_from_a_thread_and_from_inside_a_running_event_loop(llm_server):
    engine = fast_engine(llm_server)
    results = {}
    thread = threading.Thread(target=lambda: results.update(thread=engine.generate([ask("a")])[0].text))
    thread.start()
    thread.join()

    async def from_async_code():
        return engine.generate([ask("b")])[0].text

    results["loop"] = asyncio.run(from_async_code())
    assert results == {"thread": "ok", "loop": "ok"}
    assert engine.generate([]) == [] and llm_server.count == 2


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0   # a date in the past
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_server_rejects_unknown_faults():
    with pytest.raises(ValueError, match="unknown fault 'slow'"):
        ScriptedLLMServer(faults=["slow"])


def test_server_speaks_the_responses_api_and_lists_models(llm_server):
    import openai

    llm_server.reply = lambda body: "[2] > [1]"
    client = openai.OpenAI(api_key="unused", base_url=llm_server.base_url, max_retries=0)
    response = client.responses.create(model="scripted", instructions="rank them",
                                       input=[{"role": "user", "content": "passages one two"}])
    assert response.output_text == "[2] > [1]"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (5, 3)
    assert llm_server.requests[0]["_path"] == "/v1/responses"
    assert [m.id for m in client.models.list()] == ["scripted"]
    assert llm_server.count == 1
