"""Per-query retrieval metrics (through pytrec_eval, trec_eval semantics) and answer metrics (SQuAD-style).

Retrieval: every query in the qrels counts, and one missing from the run scores 0 on every measure (trec_eval
``-c``; pytrec_eval alone drops such queries). The run handed to pytrec_eval is ``Ranking.run_scores()``, strictly
decreasing by rank, so trec_eval's tie-breaking (by docid) never reorders a ranking. Binary measures (Recall, MRR,
MAP) count a document relevant when its grade is >= ``relevance_level``: 1 by default (trec_eval's default), 2 for
TREC Deep Learning (``Dataset.relevance_level``; trec_eval ``-l 2``); nDCG uses the grades as gains whatever the
level (trec_eval's ndcg ignores ``-l``). MRR@10 is trec_eval's ``recip_rank`` on the run cut at rank 10 (a first
relevant document below rank 10 scores 0).

Answers: SQuAD v2.0's official normalisation and token F1 (``evaluate-v2.0.py``), the maximum over gold aliases;
``accuracy`` is FlashRAG's "acc": some normalised gold answer occurs as a substring of the normalised prediction.

Every metric is one registered ``Metric`` (``METRICS``, a ``bench.registry.Registry``; plugins: entry-point group
``rerank_bench.metrics``, each a ``Metric`` instance): its kind (``answer``: scores the reader's answer; ``retrieval``:
scores the ranking), direction, whether it is 0/1 (the report's exact McNemar test) and how it is computed. The
runner, the report, ``--primary-metric`` and RRPO's ``--metric`` all read it. A metric with a cutoff is registered
once as a family (``nDCG@k``) and looked up by any cutoff (``nDCG@10``) through ``metric``.
"""
from __future__ import annotations

import collections
import re
import string
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from bench.registry import Registry
from bench.types import Ranking, check_grade

NDCG_CUTOFFS = (1, 3, 5, 10)
RECALL_CUTOFFS = (10, 100)
MRR_CUTOFF = 10
RELEVANCE_LEVEL = 1


@dataclass(frozen=True)
class Metric:
    """A per-query metric. ``compute(prediction, gold_answers) -> float`` for an answer metric that is a function of
    the answer alone (the runner applies every such one to each answer); None for the LLM judge (``bench.judges``)
    and for the retrieval metrics, which ``retrieval_metrics`` computes together through pytrec_eval."""

    name: str
    kind: str                          # answer | retrieval
    higher_is_better: bool
    binary: bool                       # every value is 0 or 1
    description: str
    compute: Callable[[str, Sequence[str]], float] | None = None


METRICS = Registry("metric", base=Metric)
_CUTOFF = re.compile(r"@\d+$")


def metric(name: str) -> Metric:
    """The registered metric of ``name``; a name with a cutoff (``Recall@7``) is an instance of its family
    (``Recall@k``) unless registered itself."""
    family = _CUTOFF.sub("@k", name)
    return METRICS.load(name if name in METRICS or family not in METRICS else family)


def answer_metric_names() -> list[str]:
    """The registered answer metrics (the judge's included): what ``--primary-metric`` may name."""
    return [e.name for e in METRICS.entries() if metric(e.name).kind == "answer"]


def is_answer_metric(name: str) -> bool:
    """Whether ``name`` scores the reader's answer; a name no registered metric covers (a plugin since uninstalled)
    counts as a ranking metric."""
    return name in METRICS and metric(name).kind == "answer"


def is_binary_metric(name: str) -> bool:
    return (name in METRICS or _CUTOFF.sub("@k", name) in METRICS) and metric(name).binary


def _recall_cutoffs(top_k: int | None) -> tuple[int, ...]:
    return tuple(sorted({*RECALL_CUTOFFS, *((top_k,) if top_k else ())}))


def retrieval_metric_names(top_k: int | None = None) -> list[str]:
    """Names of the per-query retrieval metrics, in report order; ``top_k`` adds Recall@k for the reader's
    top-k."""
    return ([f"nDCG@{c}" for c in NDCG_CUTOFFS] + [f"Recall@{c}" for c in _recall_cutoffs(top_k)]
            + [f"MRR@{MRR_CUTOFF}", "MAP"])


def retrieval_metrics(rankings: Mapping[str, Ranking], qrels: Mapping[str, Mapping[str, int]],
                      top_k: int | None = None, relevance_level: int = RELEVANCE_LEVEL) -> dict[str, dict[str, float]]:
    """Per-query metrics for every query of ``qrels`` (qid -> docid -> grade); names as
    ``retrieval_metric_names(top_k)``. Rankings of queries without qrels are ignored."""
    import pytrec_eval

    # checked again here, whatever loaded them: pytrec_eval's C code takes any grade and checks nothing
    qrels = {q: {d: check_grade(g, f"qrels of query {q!r}, document {d!r}") for d, g in judged.items()}
             for q, judged in qrels.items()}
    run = {q: r.run_scores() for q, r in rankings.items() if q in qrels and r.docids}
    recall_cutoffs = _recall_cutoffs(top_k)
    full = pytrec_eval.RelevanceEvaluator(
        qrels, {f"ndcg_cut.{','.join(map(str, NDCG_CUTOFFS))}", f"recall.{','.join(map(str, recall_cutoffs))}",
                "map"}, relevance_level=relevance_level).evaluate(run)
    cut_run = {q: dict(list(scores.items())[:MRR_CUTOFF]) for q, scores in run.items()}  # dicts keep rank order
    cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=relevance_level).evaluate(cut_run)
    names = {**{f"ndcg_cut_{c}": f"nDCG@{c}" for c in NDCG_CUTOFFS},
             **{f"recall_{c}": f"Recall@{c}" for c in recall_cutoffs}, "map": "MAP"}
    out = {}
    for qid in qrels:
        row = {name: float(full.get(qid, {}).get(key, 0.0)) for key, name in names.items()}
        row[f"MRR@{MRR_CUTOFF}"] = float(cut.get(qid, {}).get("recip_rank", 0.0))
        out[qid] = {name: row[name] for name in retrieval_metric_names(top_k)}
    return out


# --- answers -------------------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, drop punctuation, drop the articles a/an/the, fold whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD v2.0 token F1 of two answers (1.0 when both normalise to nothing, 0.0 when only one does)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def contains_answer(text: str, gold_answers: Sequence[str]) -> bool:
    """Whether some gold answer, normalised, occurs in the normalised text as whole tokens (FlashRAG's containment,
    on token boundaries: a plain substring test would find the gold "1801" in "2018-01-01", normalised "20180101";
    gold answers that normalise to nothing never match)."""
    norm_text = f" {normalize_answer(text)} "
    return any(g and f" {g} " in norm_text for g in map(normalize_answer, gold_answers))


def exact_match(prediction: str, gold_answers: Sequence[str]) -> float:
    norm_pred = normalize_answer(prediction)
    return float(any(norm_pred == normalize_answer(g) for g in gold_answers))


def best_token_f1(prediction: str, gold_answers: Sequence[str]) -> float:
    return max(token_f1(prediction, g) for g in gold_answers)


def accuracy(prediction: str, gold_answers: Sequence[str]) -> float:
    return float(contains_answer(prediction, gold_answers))


def answer_metrics(prediction: str, gold_answers: Sequence[str]) -> dict[str, float]:
    """Every registered answer metric computed from the answer alone (EM, F1 as the max over gold aliases, accuracy
    as containment, and plugins'); nothing ({}) for a query without gold answers, which has no answer metrics (like a
    query without qrels has no retrieval metrics)."""
    if not gold_answers:
        return {}
    scored = [metric(e.name) for e in METRICS.entries()]
    return {m.name: float(m.compute(prediction, gold_answers)) for m in scored if m.kind == "answer" and m.compute}


METRICS.add("EM", Metric("EM", "answer", True, True, "exact match after SQuAD normalisation", exact_match),
            aliases=("em",))
METRICS.add("F1", Metric("F1", "answer", True, False, "SQuAD token F1, max over gold aliases", best_token_f1),
            aliases=("f1",))
METRICS.add("accuracy", Metric("accuracy", "answer", True, True, "a gold answer occurs in the answer (FlashRAG acc)",
                               accuracy))
METRICS.add("judge", Metric("judge", "answer", True, True, "an LLM judge calls the answer correct (--judge)"))
for _family, _description in (("nDCG@k", "trec_eval ndcg_cut.k, graded gains"),
                              ("Recall@k", "trec_eval recall.k at the relevance level"),
                              ("MRR@10", "trec_eval recip_rank on the run cut at rank 10"),
                              ("MAP", "trec_eval map at the relevance level")):
    METRICS.add(_family, Metric(_family, "retrieval", True, False, _description))
