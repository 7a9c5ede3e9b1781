"""FIRST (rerankers/first.py) on a tiny random Llama chat LM: each window's order is the descending order of the
identifier logits at the first decoding step, computed here independently from the model: the Zephyr-style chat
prompt written out by hand with letter identifiers, ``[`` appended, one unbatched forward pass, the logits of the
tokens ``A``, ``B``, ... read from the vocabulary. rank-llm's first-token path ran through vLLM (a GPU), and 0.26.0
no longer calls it; its parts are compared with in ``test_prompt_and_order_equal_rank_llms_first_token_path``:
rank-llm's own prompt builder and ``_evaluate_logits`` (tests/reference_libraries.py, skipped without
``RERANK_BENCH_REFERENCE_PATH``)."""
from __future__ import annotations

import re

import pytest
import torch

from bench.errors import UserError
from benchmarks import tiny_models
from rerankers.listwise import window_plan
from rerankers.registry import RerankerSettings, get_reranker, resolve
from tests.reference_libraries import reference_output
from tests.test_listwise import make_list

SYSTEM = "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query"


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return str(tiny_models.llama_chat_lm(tmp_path_factory.mktemp("first") / "llama"))


def first(path, **options):
    return get_reranker("first", RerankerSettings(checkpoint=path, device="cpu", dtype="float32", batch_size=3,
                                                  options=options or None))


def alpha_prompt(query: str, passages: list[str]) -> str:
    """rank_zephyr_alpha_template as rank_llm assembles it, through the tiny model's Zephyr-style chat template."""
    n = len(passages)
    body = "".join(f"[{chr(ord('A') + i)}] {p}\n" for i, p in enumerate(passages))
    user = (f"I will provide you with {n} passages, each indicated by an alphabetical identifier []. Rank the "
            f"passages based on their relevance to the search query: {query}.\n{body}Search Query: {query}.\nRank "
            f"the {n} passages above based on their relevance to the search query. All the passages should be "
            f"included and listed using identifiers, in descending order of relevance. The output format should be "
            f"[] > [], e.g., [B] > [A], Answer concisely and directly and only respond with the ranking results, do "
            f"not say any word or explain.")
    return f"<|system|>\n{SYSTEM}<|im_end|>\n<|user|>\n{user}<|im_end|>\n<|assistant|>\n["


def reference_window_order(reranker, query, texts):
    tok, model = reranker.lm
    ids = tok(alpha_prompt(query, texts), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    vocab = tok.get_vocab()
    scores = {i: logits[vocab[chr(ord("A") + i)]].item() for i in range(len(texts))}
    return sorted(scores, key=lambda i: -scores[i]), scores


def test_one_window_is_ordered_by_the_descending_identifier_logits(llama):
    reranker = first(llama)
    lists = [make_list(6), make_list(4, "q2", text=lambda i: f"the river {i} of the city")]
    rankings = reranker.rerank(lists)
    for cl, ranking in zip(lists, rankings):
        order, scores = reference_window_order(reranker, cl.query.text, [c.doc.text for c in cl.candidates])
        assert ranking.docids == [cl.candidates[i].docid for i in order]
        assert len(set(scores.values())) == len(scores)      # no ties: the order is the logits' alone
        assert ranking.info["windows"] == 1 and ranking.info["malformed_windows"] == 0
    assert order != list(range(4))                           # the model moved something


def test_sliding_windows_reorder_bottom_up_with_the_reference_order(llama):
    reranker = first(llama, window=4, stride=2)
    cl = make_list(7)
    [ranking] = reranker.rerank([cl])
    current = list(cl.candidates)
    for start, end in window_plan(7, 4, 2):
        assert (start, end) in [(3, 7), (1, 5), (0, 3)]
        window = current[start:end]
        order, _ = reference_window_order(reranker, cl.query.text, [c.doc.text for c in window])
        current[start:end] = [window[j] for j in order]
    assert ranking.docids == [c.docid for c in current] and ranking.info["windows"] == 3


def test_prompt_identifies_passages_by_letters(llama):
    reranker = first(llama)
    messages = reranker.window_messages("q", make_list(2).candidates)
    assert messages[0] == {"role": "system", "content": SYSTEM}
    assert "[A] passage number 0\n[B] passage number 1\nSearch Query: q." in messages[1]["content"]
    text = reranker.lm[0].decode(reranker.prompt_ids(reranker.window_request("q", make_list(2).candidates)))
    assert text == alpha_prompt("q", ["passage number 0", "passage number 1"])


def test_registered_and_refuses_other_engines_and_windows_beyond_the_alphabet(llama):
    assert resolve("First_Model").name == "first" and resolve("first").checkpoint == "rryisthebest/First_Model"
    with pytest.raises(UserError, match="engine 'vllm': expected one of hf"):
        first(llama, engine="vllm")
    with pytest.raises(UserError, match="FIRST window 27 with letters identifiers: expected letters and a window of "
                                        "1 to 26 passages"):
        first(llama, window=27)



def test_prompt_and_order_equal_rank_llms_first_token_path(llama, tmp_path):
    """rank_llm 0.26.0's own prompt builder and ``_evaluate_logits`` (tests/reference_libraries.py; skipped without
    ``RERANK_BENCH_REFERENCE_PATH``), given every token's log-probability where vLLM gives the top 30."""
    cl = make_list(6, text=lambda i: f"the river [{i}] of paris city")
    expected = reference_output({"library": "first", "checkpoint": llama, "request": cl.to_request_json(),
                                 "window": 20}, tmp_path)
    reranker = first(llama)
    assert reranker.window_messages(cl.query.text, cl.candidates) == expected["messages"]
    letters = re.findall(r"\[([A-Z])\]", expected["ranking"])
    assert sorted(letters) == list("ABCDEF")
    [ranking] = reranker.rerank([cl])
    assert ranking.docids == [cl.candidates[ord(letter) - ord("A")].docid for letter in letters]
