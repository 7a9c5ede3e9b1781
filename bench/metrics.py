"""Per-query retrieval metrics (through pytrec_eval, trec_eval semantics) and answer metrics (SQuAD-style).

Retrieval: every query in the qrels counts, and one missing from the run scores 0 on every measure (trec_eval
``-c``; pytrec_eval alone drops such queries). The run handed to pytrec_eval is ``Ranking.run_scores()``, strictly
decreasing by rank, so trec_eval's tie-breaking (by docid) never reorders a ranking. Binary measures (Recall, MRR,
MAP) count a document relevant when its grade is >= ``relevance_level``: 1 by default (trec_eval's default), 2 for
TREC Deep Learning (``Dataset.relevance_level``; trec_eval ``-l 2``); nDCG uses the grades as gains whatever the
level (trec_eval's ndcg ignores ``-l``). MRR@10 is trec_eval's ``recip_rank`` on the run cut at rank 10 (a first
relevant document below rank 10 scores 0).

Answers: SQuAD v1.1's official normalisation, EM and token F1 (``evaluate-v1.1.py``), the maximum over gold aliases;
``accuracy`` is FlashRAG's "acc": some normalised gold answer occurs in the normalised prediction. An answer that
normalises to nothing scores 0 on every metric, and a gold answer that normalises to nothing ("*", "the") matches
nothing: v1.1's F1 already gives 0 there (SQuAD v2.0's gives 1.0 when both sides are empty, which rewarded an empty
answer, also as RRPO's reward); v1.1's EM would call "" equal to "*", ours does not (tests/test_squad_reference.py
holds both against the re-typed reference).

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
from bench.types import Ranking, check_grade, rank_scores

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
    """Names of the per-query retrieval metrics, in report order; ``top_k`` adds Recall@k and P@k for the reader's
    top-k."""
    return ([f"nDCG@{c}" for c in NDCG_CUTOFFS] + [f"Recall@{c}" for c in _recall_cutoffs(top_k)]
            + [f"MRR@{MRR_CUTOFF}", "MAP"] + ([f"P@{top_k}"] if top_k else []))


def retrieval_metrics(rankings: Mapping[str, Ranking], qrels: Mapping[str, Mapping[str, int]],
                      top_k: int | None = None, relevance_level: int = RELEVANCE_LEVEL) -> dict[str, dict[str, float]]:
    """Per-query metrics for every query of ``qrels`` (qid -> docid -> grade); names as
    ``retrieval_metric_names(top_k)``. Rankings of queries without qrels are ignored."""
    import pytrec_eval  # lazy: ~0.4 s to import; only when retrieval metrics are computed

    # checked again here, whatever loaded them: pytrec_eval's C code takes any grade and checks nothing
    qrels = {q: {d: check_grade(g, f"qrels of query {q!r}, document {d!r}") for d, g in judged.items()}
             for q, judged in qrels.items()}
    run = {q: r.run_scores() for q, r in rankings.items() if q in qrels and r.docids}
    recall_cutoffs = _recall_cutoffs(top_k)
    full = pytrec_eval.RelevanceEvaluator(
        qrels, {f"ndcg_cut.{','.join(map(str, NDCG_CUTOFFS))}", f"recall.{','.join(map(str, recall_cutoffs))}",
                "map", *((f"P.{top_k}",) if top_k else ())}, relevance_level=relevance_level).evaluate(run)
    cut_run = {q: dict(list(scores.items())[:MRR_CUTOFF]) for q, scores in run.items()}  # dicts keep rank order
    cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=relevance_level).evaluate(cut_run)
    names = {**{f"ndcg_cut_{c}": f"nDCG@{c}" for c in NDCG_CUTOFFS},
             **{f"recall_{c}": f"Recall@{c}" for c in recall_cutoffs}, "map": "MAP",
             **({f"P_{top_k}": f"P@{top_k}"} if top_k else {})}
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
    """SQuAD v1.1 token F1 of two answers (0.0 when either normalises to nothing)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
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
    """1.0 when the normalised prediction equals a normalised gold answer; an empty one equals nothing."""
    norm_pred = normalize_answer(prediction)
    return float(bool(norm_pred) and any(norm_pred == normalize_answer(g) for g in gold_answers))


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
METRICS.add("F1", Metric("F1", "answer", True, False, "SQuAD v1.1 token F1, max over gold aliases", best_token_f1),
            aliases=("f1",))
METRICS.add("accuracy", Metric("accuracy", "answer", True, True, "a gold answer occurs in the answer (FlashRAG acc)",
                               accuracy))
METRICS.add("judge", Metric("judge", "answer", True, True, "an LLM judge calls the answer correct (--judge)"))
for _family, _description in (("nDCG@k", "trec_eval ndcg_cut.k, graded gains"),
                              ("Recall@k", "trec_eval recall.k at the relevance level"),
                              ("MRR@10", "trec_eval recip_rank on the run cut at rank 10"),
                              ("MAP", "trec_eval map at the relevance level"),
                              ("P@k", "trec_eval P.k at the relevance level: relevant among the top k, over k")):
    METRICS.add(_family, Metric(_family, "retrieval", True, False, _description))


# --- eRAG: retrieval metrics over utility labels ------------------------------------------------------------------
# eRAG (Salemi & Zamani, SIGIR 2024): each passage of a ranking is read alone by the reader and the answer's metric
# against the gold answers is the passage's label; a ranking is then scored over those labels. With 0/1 labels any
# trec_eval measure applies (through pytrec_eval, the qrels holding just the ranked passages, so nDCG's ideal order
# is that of the ranking's own labels); with graded labels (F1) eRAG defines success@k as the largest label of the
# top k and P@k as their sum over k.
UTILITY_LABELS = ("accuracy", "EM", "F1")         # the answer metrics a passage's single-passage answer is scored by
BINARY_ERAG_MEASURES = ("nDCG", "MRR", "P", "success")
GRADED_ERAG_MEASURES = ("P", "success")


def erag_name(label: str, measure: str, cutoff: int | str) -> str:
    """``eRAG-<label>-<measure>@<cutoff>``, e.g. ``eRAG-accuracy-nDCG@10``."""
    return f"eRAG-{label}-{measure}@{cutoff}"


def erag_measures(label: str) -> tuple[str, ...]:
    return BINARY_ERAG_MEASURES if metric(label).binary else GRADED_ERAG_MEASURES


def erag_metrics(rankings: Mapping[str, Sequence[str]], labels: Mapping[str, Mapping[str, float]], label: str,
                 cutoffs: Sequence[int]) -> dict[str, dict[str, float]]:
    """Per-query eRAG scores of ``rankings`` (qid -> docids, best first: the list eRAG scores) over ``labels`` (qid ->
    docid -> the ``label`` metric of the reader's answer from that passage alone), at each cutoff; names as
    ``erag_name``. A query whose ranked passages are not all labelled (a failed read) is left out. 0/1 labels:
    pytrec_eval's ndcg_cut, P and success, and recip_rank on the ranking cut at k; graded labels: success@k = max,
    P@k = sum / k (a ranking shorter than k counts its missing ranks as 0)."""
    import pytrec_eval  # lazy: ~0.4 s to import; only when retrieval metrics are computed

    scored = {q: list(docids) for q, docids in rankings.items()
              if docids and all(d in labels.get(q, {}) for d in docids)}
    if metric(label).binary:
        qrels = {q: {d: int(labels[q][d]) for d in docids} for q, docids in scored.items()}
        cuts = ",".join(map(str, cutoffs))
        full = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{cuts}", f"P.{cuts}", f"success.{cuts}"}).evaluate(
            {q: dict(zip(docids, rank_scores(len(docids)))) for q, docids in scored.items()})
        out = {q: {} for q in scored}
        for k in cutoffs:
            cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(
                {q: dict(zip(docids[:k], rank_scores(len(docids[:k])))) for q, docids in scored.items()})
            for q in scored:
                out[q].update({erag_name(label, "nDCG", k): float(full[q][f"ndcg_cut_{k}"]),
                               erag_name(label, "MRR", k): float(cut[q]["recip_rank"]),
                               erag_name(label, "P", k): float(full[q][f"P_{k}"]),
                               erag_name(label, "success", k): float(full[q][f"success_{k}"])})
        return out
    return {q: {name: value for k in cutoffs
                for name, value in ((erag_name(label, "P", k), sum(labels[q][d] for d in docids[:k]) / k),
                                    (erag_name(label, "success", k), float(max(labels[q][d] for d in docids[:k]))))}
            for q, docids in scored.items()}


for _label in UTILITY_LABELS:
    for _measure in erag_measures(_label):
        _binary = _measure == "success" and metric(_label).binary
        METRICS.add(erag_name(_label, _measure, "k"),
                    Metric(erag_name(_label, _measure, "k"), "retrieval", True, _binary,
                           f"eRAG {_measure}@k over utility labels: the {_label} of the reader's answer from each "
                           f"ranked passage alone"))
