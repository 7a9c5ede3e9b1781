"""The reference-based judge (through OpenAIEngine and the real local server) and Cohen's kappa."""
from __future__ import annotations

import math
import random

import pytest

from bench.judges import Judge, Verdict, parse_verdict
from bench.stats import cohens_kappa
from bench.llm.openai_engine import OpenAIEngine
from bench.prompts import load_template
from tests.llm_server import llm_server, prompt_text  # noqa: F401 - llm_server is a fixture

# What the scripted judge model replies, keyed by the prediction it is shown.
REPLIES = {
    "Paris": '{"verdict": "correct", "reason": "Same city as a reference."}',
    "Lyon": '{"verdict": "incorrect", "reason": "Lyon is another city."}',
    "City of Paris": '```json\n{"verdict": "correct", "reason": "A paraphrase."}\n```',
    "France": 'Verdict: incorrect',
}


def scripted_judge(body: dict) -> str:
    return REPLIES[prompt_text(body).rsplit("Predicted answer: ", 1)[1]]


def judge_engine(srv, **kw) -> OpenAIEngine:
    return OpenAIEngine("scripted", base_url=srv.base_url, backoff_base=0.001, backoff_max=0.01, **kw)


def test_judge_batch_parses_every_reply_format_and_counts_invalid_ones(llm_server):
    llm_server.reply = scripted_judge
    judge = Judge(judge_engine(llm_server))
    gold = ["Paris", "Paris, France"]
    verdicts = judge.judge([("Capital of France?", gold, p) for p in REPLIES])

    assert [(v.correct, v.valid) for v in verdicts] == [(True, True), (False, True), (True, True), (None, False)]
    assert verdicts[2].reason == "A paraphrase."
    assert verdicts[3].raw == "Verdict: incorrect" and verdicts[3].reason == "reply is not a JSON object"
    assert llm_server.count == 4                       # one request per item, sent as one batch
    shown = prompt_text(llm_server.requests[0])
    assert "Question: Capital of France?" in shown and "- Paris\n- Paris, France\n" in shown
    assert all(r["max_tokens"] == 128 and r["temperature"] == 0.0 for r in llm_server.requests)
    assert judge.stats == {"judged": 4, "invalid": 1, "engine_errors": 0}


def test_engine_error_is_no_verdict_not_an_invalid_one(llm_server):
    llm_server.add_faults("500")
    judge = Judge(judge_engine(llm_server, max_retries=0))
    [verdict] = judge.judge([("q", ["a"], "a")])
    error = "Error code: 500 - internal error (scripted) (after 1 attempt)"
    assert verdict == Verdict(None, f"engine error: {error}", False, "", error=error)
    assert judge.stats == {"judged": 1, "invalid": 0, "engine_errors": 1}


def test_judge_refuses_items_without_gold_answers(llm_server):
    with pytest.raises(ValueError, match="item 1 .'q2'. has no gold answers"):
        Judge(judge_engine(llm_server)).judge([("q1", ["a"], "a"), ("q2", [], "b")])
    assert llm_server.count == 0


@pytest.mark.parametrize("raw,expected", [
    ('{"verdict": "correct", "reason": "ok"}', (True, True, "ok")),
    ('  \n{"reason": "no", "verdict": "incorrect"}\n', (False, True, "no")),
    ('```\n{"verdict": "incorrect", "reason": "r"}\n```', (False, True, "r")),
    ('```JSON {"verdict": "correct", "reason": "r"} ```', (True, True, "r")),
    ('Sure! {"verdict": "correct", "reason": "r"}', (None, False, "reply is not a JSON object")),
    ('{"verdict": "correct", "reason": "r"} extra', (None, False, "reply is not a JSON object")),
    ('{"verdict": "Correct", "reason": "r"}', (None, False, 'verdict is not "correct" or "incorrect", '
                                                          'or reason is not a string')),
    ('{"verdict": "correct", "reason": 3}', (None, False, 'verdict is not "correct" or "incorrect", '
                                                         'or reason is not a string')),
    ('{"verdict": "correct"}', (None, False, "reply is not an object with exactly the keys verdict and reason")),
    ('{"verdict": "correct", "reason": "r", "score": 1}',
     (None, False, "reply is not an object with exactly the keys verdict and reason")),
    ('["correct"]', (None, False, "reply is not an object with exactly the keys verdict and reason")),
    ("", (None, False, "reply is not a JSON object")),
])
def test_parse_verdict_is_strict(raw, expected):
    verdict = parse_verdict(raw)
    assert (verdict.correct, verdict.valid, verdict.reason) == expected
    assert verdict.raw == raw


def test_packaged_template_renders_the_reply_format_literally():
    template = load_template("judge-reference")
    system, user = template.render(question="Q?", gold_answers="- A", prediction="{odd} answer")
    assert '{"verdict": "correct", "reason": "one short sentence"}' in system["content"]
    assert user["content"].endswith("Predicted answer: {odd} answer")


def test_cohens_kappa_hand_computed():
    # observed 4/5; chance 0.8*0.6 + 0.2*0.4 = 0.56; kappa = 0.24 / 0.44 = 6/11
    assert cohens_kappa([True, True, True, True, False], [True, True, True, False, False]) == pytest.approx(6 / 11)
    assert cohens_kappa([True, False, True, False], [False, True, False, True]) == pytest.approx(-1.0)
    assert math.isnan(cohens_kappa([True, True], [True, True]))
    with pytest.raises(ValueError, match="equal length"):
        cohens_kappa([True], [True, False])


def test_cohens_kappa_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(2, 40)
        a = [rng.random() < 0.6 for _ in range(n)]
        b = [x if rng.random() < 0.7 else not x for x in a]
        if len(set(a) | set(b)) == 1:
            continue
        assert cohens_kappa(a, b) == pytest.approx(metrics.cohen_kappa_score(a, b))
