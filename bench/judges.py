"""A reference-based LLM judge: is a predicted answer correct given ALL gold answers of the question?

The judge model replies in the strict format of ``bench/prompts/judge-reference.json``: one JSON object
``{"verdict": "correct" | "incorrect", "reason": "..."}`` with exactly those two keys. Only whitespace and one
surrounding Markdown code fence are tolerated; any other reply is an invalid verdict (``correct=None``), counted in
``Judge.stats`` and never guessed. A failure of the judge's engine is no verdict at all (``Verdict.error``): the
runner records the query as failed, to be judged again on the next run. ``bench.stats.cohens_kappa`` measures how far the judge agrees with lexical accuracy.

How far a judge agrees with human verdicts is measured by ``python -m bench judge-eval`` (``bench.judge_eval``),
which keeps its summary per labelled set in ``<cache dir>/judge-eval/<hash of judge spec and prompt tag>.json``
(``save_measurement``); the leaderboard of a run with the same judge spec and prompt version names it
(``measurements``). A changed prompt has another tag, so an old measurement is never shown for it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from bench.environment import cache_dir as bench_cache_dir
from bench.files import atomic_write
from bench.hashing import stable_hash
from bench.llm.base import Engine
from bench.prompts import PromptTemplate, load_template

MEASUREMENTS_DIR = "judge-eval"

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


# --- measured agreement with human verdicts (written by `bench judge-eval`) ----------------------------------------

def measurement_path(cache_dir: str | None, spec: str, template: PromptTemplate) -> Path:
    """Where the judge-eval summaries of judge ``spec`` with prompt ``template`` (its id, version and hash) live."""
    return bench_cache_dir(cache_dir) / MEASUREMENTS_DIR / f"{stable_hash({'judge': spec, 'prompt': template.tag})}.json"


def measurements(cache_dir: str | None, spec: str, template: PromptTemplate) -> dict[str, dict[str, Any]]:
    """Labelled-set name -> the summary ``bench judge-eval`` saved for this judge and prompt ({} when none)."""
    path = measurement_path(cache_dir, spec, template)
    return json.loads(path.read_text(encoding="utf-8"))["measurements"] if path.is_file() else {}


def save_measurement(cache_dir: str | None, spec: str, template: PromptTemplate, data_name: str,
                     summary: dict[str, Any]) -> Path:
    """Keep ``summary`` as this judge's measurement on ``data_name`` (replacing an earlier one on the same set)."""
    path = measurement_path(cache_dir, spec, template)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = {**measurements(cache_dir, spec, template), data_name: summary}
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(
        {"judge": spec, "prompt": template.tag, "measurements": kept}, indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8"))
    return path
