"""Listwise rerankers: rank_llm's sliding window, the permutation parser and repairs, prompts, engines (a scripted
in-memory engine, the real local OpenAI-compatible server, a tiny transformers chat model), cache and budget."""
from __future__ import annotations

import re
from contextlib import nullcontext

import pytest

from bench.errors import UserError
from bench.llm.base import ChatResponse, Engine
from bench.types import Candidate, CandidateList, Document, Query
from benchmarks import tiny_models
from rerankers.listwise import ListwisePrompt, parse_permutation, passage_content, window_plan
from rerankers.registry import RerankerSettings, get_reranker, resolve
from tests.llm_server import ScriptedLLMServer, prompt_text


def make_list(n: int, qid: str = "q1", text=lambda i: f"passage number {i}") -> CandidateList:
    return CandidateList(Query(qid, "which passage is best"),
                         [Candidate(f"d{i}", float(n - i), Document(f"d{i}", text(i))) for i in range(n)])


def window_docids(messages) -> list[str]:
    """The docids shown in a window, in order (the test passages say 'passage number i')."""
    text = "\n".join(m["content"] for m in messages)
    return [f"d{i}" for i in re.findall(r"passage number (\d+)", text)]


class ScriptedEngine(Engine):
    """An in-memory engine: ``reply(messages) -> text`` (or ChatResponse); records every request."""

    kind, model = "scripted", "scripted"

    def __init__(self, reply):
        self.reply, self.requests = reply, []

    def generate(self, requests):
        self.requests.extend(requests)
        out = []
        for r in requests:
            got = self.reply(r.message_dicts())
            out.append(got if isinstance(got, ChatResponse) else ChatResponse(got))
        return out


def rankgpt_with(engine: Engine, **options):
    return get_reranker("rankgpt", RerankerSettings(engine_factory=lambda spec: engine, options=options))


# --- the window plan and the parser ----------------------------------------------------------------------------

def test_window_plan_runs_bottom_up_like_rank_llm():
    assert window_plan(30) == [(10, 30), (0, 20)]
    assert window_plan(25) == [(5, 25), (0, 15)]
    assert window_plan(20) == [(0, 20)]
    assert window_plan(7) == [(0, 7)]
    assert window_plan(0) == []
    assert window_plan(100) == [(80, 100), (70, 90), (60, 80), (50, 70), (40, 60), (30, 50), (20, 40), (10, 30),
                                (0, 20)]
    assert window_plan(10, window=4, stride=4) == [(6, 10), (2, 6), (0, 2)]
    with pytest.raises(UserError, match="stride 0"):
        window_plan(30, stride=0)


@pytest.mark.parametrize("reply,order,problems", [
    ("[3] > [1] > [2] > [4]", [2, 0, 1, 3], ()),
    ("[2] > [1]", [1, 0, 2, 3], ("partial",)),
    ("[2] > [2] > [1] > [4] > [3]", [1, 0, 3, 2], ("duplicated",)),
    ("[7] > [4] > [0] > [3] > [2] > [1]", [3, 2, 1, 0], ("out_of_range",)),
    ("[4] > [4] > [9]", [3, 0, 1, 2], ("partial", "duplicated", "out_of_range")),
    ("I cannot rank these passages.", [0, 1, 2, 3], ("unparseable",)),
    ("", [0, 1, 2, 3], ("unparseable",)),
    ("<think>[1] > [2]</think>\n[4] > [3] > [2] > [1]", [3, 2, 1, 0], ()),
    ("[③] > [１] > [2] > [4]", [2, 0, 1, 3], ()),          # look-alike digits, as rank_llm maps them
    ("4 3, 2; 1", [3, 2, 1, 0], ()),                        # any non-digit separates ids
])
def test_parse_permutation_repairs_like_rank_llm(reply, order, problems):
    got = parse_permutation(reply, 4)
    assert got.order == order and got.problems == problems


def test_passages_are_shown_as_rank_llm_shows_them():
    c = Candidate("x", 0.0, Document("x", "  see [3] and [12]  for\tmore " + "word " * 400, title="T"))
    content = passage_content(c, 300)
    assert content.startswith("Title: T Content: see (3) and (12) for more word")
    assert len(content.split()) == 300
    assert passage_content(Candidate("y", 0.0, Document("y", "schÃ¶n")), 300) == "schön"   # ftfy fixes mojibake


# --- sliding window by hand --------------------------------------------------------------------------------------

def test_sliding_window_over_30_candidates_by_hand():
    replies = iter([" > ".join(f"[{i}]" for i in range(20, 0, -1)),   # window 1 reversed
                    "[11] > [1]"])                                     # window 2: partial
    engine = ScriptedEngine(lambda messages: next(replies))
    [ranking] = rankgpt_with(engine).rerank([make_list(30)])
    shown = [window_docids(r.message_dicts()) for r in engine.requests]
    assert shown[0] == [f"d{i}" for i in range(10, 30)]
    assert shown[1] == [f"d{i}" for i in range(10)] + [f"d{i}" for i in range(29, 19, -1)]
    expected = (["d29", "d0"] + [f"d{i}" for i in range(1, 10)] + [f"d{i}" for i in range(28, 19, -1)]
                + [f"d{i}" for i in range(19, 9, -1)])
    assert ranking.docids == expected
    assert ranking.scores == [float(30 - i) for i in range(30)]
    assert ranking.info == {"windows": 2, "malformed_windows": 1, "malformed_unparseable": 0, "malformed_partial": 1,
                            "malformed_duplicated": 0, "malformed_out_of_range": 0, "engine_errors": 0}


def test_windows_of_several_queries_are_batched_per_step_and_counted_per_query():
    batches = []

    class Batching(ScriptedEngine):
        def generate(self, requests):
            batches.append(len(requests))
            return super().generate(requests)

    replies = {"a": "[1] > [1]", "b": "nonsense"}
    engine = Batching(lambda messages: replies[messages[1]["content"].split("query: ")[1][0]])
    lists = [make_list(30, "a"), make_list(12, "b")]
    lists[0].query.text, lists[1].query.text = "a?", "b?"
    a, b = rankgpt_with(engine).rerank(lists)
    assert batches == [2, 1]                   # step 1: both queries; step 2: only the 30-candidate one
    assert a.info["windows"] == 2 and a.info["malformed_duplicated"] == 2 and a.info["malformed_partial"] == 2
    assert b.info["windows"] == 1 and b.info["malformed_unparseable"] == 1 and b.info["malformed_windows"] == 1
    assert b.docids == [f"d{i}" for i in range(12)]    # nothing parsed: the window keeps its order


def test_failed_engine_call_keeps_the_window_and_is_counted():
    engine = ScriptedEngine(lambda messages: ChatResponse("", error="HTTP 500 after 5 retries"))
    [ranking] = rankgpt_with(engine).rerank([make_list(5)])
    assert ranking.docids == [f"d{i}" for i in range(5)]
    assert ranking.info["engine_errors"] == 1 and ranking.info["malformed_windows"] == 0


# --- prompts -------------------------------------------------------------------------------------------------------

def test_rankgpt_prompt_is_multi_turn_and_rankzephyr_single_turn():
    passages = ["alpha", "beta"]
    gpt = ListwisePrompt.load("rank-gpt").render("q [2]?", passages)
    assert [m["role"] for m in gpt] == ["system", "user", "assistant", "user", "assistant", "user", "assistant",
                                        "user"]
    assert gpt[1]["content"] == ("I will provide you with 2 passages, each indicated by number identifier [].\n"
                                 "Rank the passages based on their relevance to query: q (2)?.")
    assert gpt[5]["content"] == "[2] beta" and gpt[6]["content"] == "Received passage [2]."
    zephyr = ListwisePrompt.load("rank-zephyr").render("q", passages)
    assert [m["role"] for m in zephyr] == ["system", "user"]
    assert zephyr[1]["content"].startswith("I will provide you with 2 passages, each indicated by a numerical "
                                           "identifier []. Rank the passages based on their relevance to the search "
                                           "query: q.\n[1] alpha\n[2] beta\nSearch Query: q.\nRank the 2 passages")


def test_listwise_names_are_registered():
    assert resolve("rankzephyr").checkpoint == "castorini/rank_zephyr_7b_v1_full"
    assert resolve("rankzephyr").kind == "listwise" and resolve("rankzephyr").extra == "vllm"
    assert resolve("rankgpt").checkpoint == "gpt-4o-mini"
    with pytest.raises(UserError, match="engine 'llama': expected one of hf, openai, vllm, rankllm"):
        get_reranker("rankgpt", RerankerSettings(options={"engine": "llama"}))


# --- over the real local OpenAI-compatible server ------------------------------------------------------------------

def sort_by_number(body) -> str:
    """A perfect ranker: the window's passages in decreasing 'passage number'."""
    numbers = [int(x) for x in re.findall(r"passage number (\d+)", prompt_text(body))]
    return " > ".join(f"[{i + 1}]" for i in sorted(range(len(numbers)), key=lambda i: -numbers[i]))


@pytest.mark.parametrize("name", ["rankgpt", "rankzephyr"])
def test_listwise_over_openai_compatible_server(name, tmp_path):
    with ScriptedLLMServer(reply=sort_by_number) as srv:
        settings = RerankerSettings(cache_dir=str(tmp_path), options={"base_url": srv.base_url})
        # RankZephyr's tokenizer is not on this machine: it says so and skips the context budget
        with pytest.warns(UserWarning, match="no tokenizer") if name == "rankzephyr" else nullcontext():
            reranker = get_reranker(name, settings)
            [ranking] = reranker.rerank([make_list(30)])
            # the same lists again are answered from the LLM cache
            again = get_reranker(name, settings).rerank([make_list(30)])
        # window 1 sorts d10..d29; window 2 sorts d0..d9 with the best ten of window 1
        assert ranking.docids == ([f"d{i}" for i in range(29, 19, -1)] + [f"d{i}" for i in range(9, -1, -1)]
                                  + [f"d{i}" for i in range(19, 9, -1)])
        assert srv.count == 2 and ranking.info["malformed_windows"] == 0
        body = srv.requests[0]
        assert body["model"] == reranker.checkpoint and body["temperature"] == 0
        assert len(body["messages"]) == (44 if name == "rankgpt" else 2)
        assert again[0].docids == ranking.docids and srv.count == 2


# --- transformers engine and the context budget ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def chat_lm(tmp_path_factory):
    return str(tiny_models.chat_lm(tmp_path_factory.mktemp("chat") / "lm"))


def test_rankzephyr_through_transformers_engine(chat_lm):
    reranker = get_reranker("rankzephyr", RerankerSettings(checkpoint=chat_lm, device="cpu",
                                                           options={"engine": "hf", "max_new_tokens": 12}))
    lists = [make_list(25), make_list(3, "q2")]
    rankings = reranker.rerank(lists)
    for cl, r in zip(lists, rankings):
        assert sorted(r.docids) == sorted(c.docid for c in cl.candidates)
        assert r.scores == sorted(r.scores, reverse=True) and len(set(r.scores)) == len(r.scores)
    assert rankings[0].info["windows"] == 2 and rankings[1].info["windows"] == 1
    # a random model's replies are repaired and counted, never fatal
    for r in rankings:
        kinds = sum(r.info[f"malformed_{k}"] for k in ("unparseable", "partial", "duplicated", "out_of_range"))
        assert r.info["malformed_windows"] <= min(r.info["windows"], kinds)


def test_passages_shrink_until_the_window_fits_the_context(chat_lm):
    seen = []
    engine = ScriptedEngine(lambda messages: seen.append(messages) or "[1]")
    settings = RerankerSettings(checkpoint="castorini/rank_zephyr_7b_v1_full",
                                engine_factory=lambda spec: engine, options={"engine": "hf", "tokenizer": chat_lm,
                                         "context_size": 700})
    reranker = get_reranker("rankzephyr", settings)
    reranker.rerank([make_list(5, text=lambda i: f"passage number {i} " + "more words here " * 100)])
    counter = reranker.token_counter()
    [messages] = seen
    assert counter.prompt_tokens(messages) <= 700 - counter.output_tokens(5)
    words = [len(line.split()) for line in messages[1]["content"].splitlines() if line.startswith("[")]
    assert len(words) == 5 and max(words) < 300 and min(words) > 5
