"""LiT5-Distill (rerankers/lit5.py) on a tiny random T5, against rank_llm's FiD twice.

1. Re-typed (always runs): ``RankFiDDistill._run_llm_by_length_unified`` tokenises every passage input with
   ``padding="max_length"`` to 150 tokens, and ``FiDStack`` runs the encoder on the (windows x passages) rows and
   views the outputs back as one row per window; here each passage is encoded alone, unbatched, the outputs
   concatenated by hand, and the decoder run greedily step by step for rank_llm's answer length.
2. rank_llm 0.26.0's own ``RankFiDDistill`` (its FiD decoder needs transformers <= 5.3, so it runs in a subprocess on
   its pinned versions: tests/reference_libraries.py, ``RERANK_BENCH_REFERENCE_PATH``; skipped without it): the same
   replies window by window and the same ranking.
"""
from __future__ import annotations

import re

import pytest
import torch

from bench.errors import UserError
from bench.llm.base import Engine
from benchmarks import tiny_models
from rerankers.registry import RerankerSettings, get_reranker, resolve
from tests.reference_libraries import reference_output
from tests.test_listwise import ScriptedEngine, make_list

ANSWER_LENGTH = len(" > ".join(f"[{i}]" for i in range(1, 21)))     # rank_llm's _answer_maxlength, window 20


@pytest.fixture(scope="module")
def lit5(tmp_path_factory):
    path = str(tiny_models.lit5(tmp_path_factory.mktemp("lit5") / "t5"))
    return get_reranker("lit5", RerankerSettings(checkpoint=path, device="cpu", dtype="float32", batch_size=2))


def inputs(query, texts):
    return [f"Search Query: {query} Passage: [{i + 1}] {t} Relevance Ranking: " for i, t in enumerate(texts)]


def fid_reference(engine, query, texts):
    """(concatenated encoder states, mask, greedy reply) of one window, each passage encoded alone."""
    tok, t5 = engine.tokenizer, engine.t5
    states, masks = [], []
    with torch.no_grad():
        for text in inputs(query, texts):
            enc = tok([text], padding="max_length", truncation=True, max_length=150, return_tensors="pt")
            states.append(t5.encoder(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state)
            masks.append(enc.attention_mask)
        hidden, mask = torch.cat(states, dim=1), torch.cat(masks, dim=1)
        decoded = [t5.config.decoder_start_token_id]
        while len(decoded) < ANSWER_LENGTH:
            logits = t5(encoder_outputs=(hidden,), attention_mask=mask,
                        decoder_input_ids=torch.tensor([decoded])).logits[0, -1]
            decoded.append(int(logits.argmax()))
            if decoded[-1] == t5.config.eos_token_id:
                break
    return hidden, mask, tok.decode(decoded, skip_special_tokens=True)


WINDOWS = [("which passage", 3), ("the capital of france", 3), ("a river", 5)]


def window(query, n):
    return make_list(n, text=lambda i: f"the river {i} of paris city {'and the capital ' * i}").candidates


def test_encoder_outputs_of_a_window_are_its_passages_encoded_apart_and_concatenated(lit5):
    engine = lit5.engine
    requests = [lit5.window_request(q, window(q, n)) for q, n in WINDOWS[:2]]
    hidden, mask = engine.encode(requests)
    assert hidden.shape == (2, 3 * 150, 32) and mask.shape == (2, 3 * 150)
    for row, (q, n) in enumerate(WINDOWS[:2]):
        ref_hidden, ref_mask, _ = fid_reference(engine, q, [c.doc.text for c in window(q, n)])
        assert torch.equal(mask[row], ref_mask[0])
        assert torch.allclose(hidden[row], ref_hidden[0], atol=1e-5)


def test_replies_equal_a_greedy_fid_decode_and_are_parsed_into_the_window_order(lit5):
    requests = [lit5.window_request(q, window(q, n)) for q, n in WINDOWS]
    assert {r.max_tokens for r in requests} == {ANSWER_LENGTH - 1}
    replies = lit5.engine.generate(requests)       # batches of 2, windows of 3 and of 5 apart
    for reply, (q, n) in zip(replies, WINDOWS):
        *_, expected = fid_reference(lit5.engine, q, [c.doc.text for c in window(q, n)])
        assert reply.text == expected and re.search(r"\d", reply.text)
    [ranking] = lit5.rerank([make_list(5, text=lambda i: f"the river {i} of paris city {'and the capital ' * i}")])
    from rerankers.listwise import parse_permutation

    *_, reply = fid_reference(lit5.engine, "which passage is best",
                              [f"the river {i} of paris city {'and the capital ' * i}" for i in range(5)])
    assert ranking.docids == [f"d{i}" for i in parse_permutation(reply, 5).order]


def test_windows_run_bottom_up_with_one_encoder_input_per_passage(lit5):
    def by_number(messages):
        numbers = [int(re.search(r"passage number (\d+)", m["content"]).group(1)) for m in messages]
        return " > ".join(f"[{i + 1}]" for i in sorted(range(len(numbers)), key=lambda i: -numbers[i]))

    scripted = ScriptedEngine(by_number)
    reranker = get_reranker("lit5", RerankerSettings(checkpoint=lit5.checkpoint, device="cpu"))
    reranker._engine = scripted
    [ranking] = reranker.rerank([make_list(30)])
    assert ranking.docids == ([f"d{i}" for i in range(29, 19, -1)] + [f"d{i}" for i in range(9, -1, -1)]
                              + [f"d{i}" for i in range(19, 9, -1)])
    first, second = scripted.requests
    assert len(first.messages) == 20 and first.messages[0] == (
        "user", "Search Query: which passage is best Passage: [1] passage number 10 Relevance Ranking: ")
    assert second.messages[19][1].startswith("Search Query: which passage is best Passage: [20] passage number ")


def test_registered_names_and_only_the_fid_engine(lit5):
    assert resolve("lit5").name == "lit5-distill" and resolve("lit5").checkpoint == "castorini/LiT5-Distill-base"
    assert resolve("lit5-distill-large").extra == "t5"
    assert lit5.identity()["context_size"] == 150 and lit5.identity()["max_passage_words"] == 150
    assert lit5.engine.identity()["passage_tokens"] == 150
    with pytest.raises(UserError, match="engine 'hf': expected one of fid"):
        get_reranker("lit5", RerankerSettings(checkpoint=lit5.checkpoint, options={"engine": "hf"}))


class Recording(Engine):
    """An engine passing requests through, keeping each reply's text."""

    kind, model = "recording", "recording"

    def __init__(self, inner):
        self.inner, self.replies = inner, []

    def generate(self, requests):
        out = self.inner.generate(requests)
        self.replies.extend(r.text for r in out)
        return out


def test_rankings_and_replies_equal_rank_llms_own_rank_fid_distill(lit5, tmp_path):
    """rank_llm's ``RankFiDDistill`` itself on the same checkpoint (tests/reference_libraries.py)."""
    cl = make_list(25, text=lambda i: f"the river {i} of paris city " + "and the capital " * (i % 4))
    expected = reference_output({"library": "lit5", "checkpoint": lit5.checkpoint, "request": cl.to_request_json()},
                                tmp_path)
    reranker = get_reranker("lit5", RerankerSettings(checkpoint=lit5.checkpoint, device="cpu", dtype="float32"))
    reranker._engine = Recording(lit5.engine)
    [ranking] = reranker.rerank([cl])
    assert len(expected["replies"]) == 2 and reranker._engine.replies == expected["replies"]
    assert ranking.docids == expected["docids"]
