"""A reference-based LLM judge: is a predicted answer correct given ALL gold answers of the question?

The judge model replies in the strict format of ``bench/prompts/judge-reference.json``: one JSON object
``{"verdict": "correct" | "incorrect", "reason": "..."}`` with exactly those two keys. Only whitespace and one
surrounding Markdown code fence are tolerated; any other reply is an invalid verdict (``correct=None``), counted in
``Judge.stats`` and never guessed. A failure of the judge's engine is no verdict at all (``Verdict.error``): the
runner records the query as failed, to be judged again on the next run. ``bench.stats.cohens_kappa`` measures how far the judge agrees with lexical accuracy.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Sequence

from bench.llm.base import Engine
from bench.prompts import PromptTemplate, load_template

VERDICTS = {"correct": True, "incorrect": False}
_FENCE = re.compile(r"\A```(?:json)?\s*(?P<body>.*?)\s*```\Z", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    correct: bool | None      # None when the reply was invalid
    reason: str               # the judge's reason, or why the reply was invalid
    valid: bool
    raw: str                  # the judge's reply as received ("" when the engine failed)
    error: str | None = None  # set when the judge's engine failed: no verdict was given (not an invalid one)
    cache_key: str | None = None  # the LLM cache's key of the judge call (when its reply is stored there)


def parse_verdict(raw: str) -> Verdict:
    text = raw.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group("body").strip()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return Verdict(None, "reply is not a JSON object", False, raw)
    if not isinstance(obj, dict) or set(obj) != {"verdict", "reason"}:
        return Verdict(None, "reply is not an object with exactly the keys verdict and reason", False, raw)
    if obj["verdict"] not in VERDICTS or not isinstance(obj["reason"], str):
        return Verdict(None, 'verdict is not "correct" or "incorrect", or reason is not a string', False, raw)
    return Verdict(VERDICTS[obj["verdict"]], obj["reason"], True, raw)


class Judge:
    """Judges (question, gold answers, prediction) triples with one batched ``generate`` call on any Engine (wrap
    it in a CachedEngine to reuse verdicts)."""

    def __init__(self, engine: Engine, template: PromptTemplate | None = None, max_tokens: int = 128):
        self.engine = engine
        self.template = template or load_template("judge-reference")
        self.max_tokens = max_tokens
        self.stats = {"judged": 0, "invalid": 0, "engine_errors": 0}

    def judge(self, items: Sequence[tuple[str, Sequence[str], str]]) -> list[Verdict]:
        for i, (question, gold, _) in enumerate(items):
            if not gold:
                raise ValueError(f"judge item {i} ({question!r}) has no gold answers to judge against")
        requests = [self.template.request(max_tokens=self.max_tokens, question=question,
                                          gold_answers="\n".join(f"- {g}" for g in gold), prediction=prediction)
                    for question, gold, prediction in items]
        responses = self.engine.generate(requests)
        verdicts = [Verdict(None, f"engine error: {r.error}", False, "", error=r.error) if r.error is not None
                    else replace(parse_verdict(r.text), cache_key=r.cache_key) for r in responses]
        self.stats["judged"] += len(verdicts)
        self.stats["invalid"] += sum(not v.valid and v.error is None for v in verdicts)
        self.stats["engine_errors"] += sum(r.error is not None for r in responses)
        return verdicts
