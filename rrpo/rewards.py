"""Rewards from the reader's answers, and the reference-anchored baseline.

r_t = R(reader(q, d_{c_1..c_t}), gold): the reader answers from every prefix of a sampled ranking. ``PrefixRewarder``
sends all prefixes of a whole batch in ONE ``Reader.answer`` call (identical prefixes asked once), through the
reader's LLM cache, and counts how many answers were generated vs served from the cache or the batch.

``ReferenceBaseline`` holds R_ref(q, t) = the reward of the frozen reference reranker's greedy top-t list: it depends
only on (q, t), so it is computed once per (query, depth) for the whole of training, in memory and in a JSONL file
(which a resumed run reloads).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from bench.errors import UserError
from bench.hashing import stable_hash
from bench.metrics import METRICS, metric
from bench.registry import did_you_mean
from bench.store import append_jsonl, read_jsonl
from bench.types import Answer, Document, Query

# A batched reward function: (queries, predictions) -> one score in [0, 1] per prediction. The answer metrics and
# any LLM judge fit it.
RewardMetric = Callable[[Sequence[Query], Sequence[str]], list[float]]


class ReaderLike(Protocol):
    def answer(self, queries: Sequence[Query], docs_lists: Sequence[Sequence[Document]]) -> list[Answer]: ...


def answer_metric(name: str) -> RewardMetric:
    """A registered answer metric of ``bench.metrics`` computed from the answer alone (F1 or ``f1``, EM or ``em``,
    accuracy, a plugin's) against the gold answers."""
    rewards = [e.name for e in METRICS.entries() if metric(e.name).kind == "answer" and metric(e.name).compute]
    if name not in METRICS or METRICS.entry(name).name not in rewards:
        raise UserError(f"--metric {name!r}: {did_you_mean(name, rewards)}expected one of {', '.join(rewards)} (or "
                        f"their aliases f1, em) or judge:<engine>")
    registered = metric(name)

    def score(queries: Sequence[Query], predictions: Sequence[str]) -> list[float]:
        return [float(registered.compute(p, q.answers)) for q, p in zip(queries, predictions)]

    return score


def judge_metric(judge) -> RewardMetric:
    """1 when a ``bench.judges.Judge`` calls the answer correct, else 0 (an invalid verdict counts as incorrect)."""

    def metric(queries: Sequence[Query], predictions: Sequence[str]) -> list[float]:
        verdicts = judge.judge([(q.text, q.answers, p) for q, p in zip(queries, predictions)])
        return [1.0 if v.correct else 0.0 for v in verdicts]

    return metric


@dataclass(frozen=True)
class RewardNoise:
    """A noisy supervisor: with probability ``p`` a reward is flipped (r -> 1 - r) or perturbed (r + N(0, sigma),
    clipped to [0, 1]). The draw is seeded by (seed, query, prefix), so the same prefix always gets the same noisy
    reward, like a deterministic but unreliable reader would give."""

    kind: str = "none"      # none | flip | gaussian
    p: float = 0.0
    sigma: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("none", "flip", "gaussian"):
            raise UserError(f"--reward-noise {self.kind!r}: expected none, flip or gaussian")
        if not 0.0 <= self.p <= 1.0:
            raise UserError(f"--noise-p {self.p}: expected a probability in [0, 1]")

    def apply(self, qid: str, docids: Sequence[str], reward: float) -> float:
        if self.kind == "none" or self.p == 0.0:
            return reward
        rng = random.Random(stable_hash([self.seed, qid, list(docids)]))
        if rng.random() >= self.p:
            return reward
        if self.kind == "flip":
            return 1.0 - reward
        return min(1.0, max(0.0, reward + rng.gauss(0.0, self.sigma)))


@dataclass
class ReaderCounts:
    """``requested``: prefix answers asked for; ``generated``: answers the reader really generated; the rest were
    served from the LLM cache or were duplicates within the batch."""

    requested: int = 0
    generated: int = 0

    @property
    def from_cache(self) -> int:
        return self.requested - self.generated

    def to_json(self) -> dict[str, int]:
        return {"requested": self.requested, "generated": self.generated, "from_cache": self.from_cache}


class PrefixRewarder:
    """Rewards of (query, document prefix) pairs from one batched reader call."""

    def __init__(self, reader: ReaderLike, metric: RewardMetric, noise: RewardNoise = RewardNoise()):
        self.reader, self.metric, self.noise = reader, metric, noise
        self.counts = ReaderCounts()

    def rewards(self, items: Sequence[tuple[Query, Sequence[Document]]]) -> list[float]:
        unique: dict[tuple[str, tuple[str, ...]], int] = {}
        queries: list[Query] = []
        docs_lists: list[list[Document]] = []
        for q, docs in items:
            key = (q.qid, tuple(d.docid for d in docs))
            if key not in unique:
                unique[key] = len(queries)
                queries.append(q)
                docs_lists.append(list(docs))
        answers = self.reader.answer(queries, docs_lists) if queries else []
        scores = self.metric(queries, [a.text for a in answers])
        self.counts.requested += len(items)
        self.counts.generated += sum(not a.cached for a in answers)
        noisy = [self.noise.apply(q.qid, [d.docid for d in docs], s) for q, docs, s in zip(queries, docs_lists, scores)]
        return [noisy[unique[(q.qid, tuple(d.docid for d in docs))]] for q, docs in items]


class ReferenceBaseline:
    """R_ref(q, t) for t = 1..k, each computed exactly once for a run (across all processes).

    ``computed`` counts the (query, depth) rewards this object asked the reader for; values loaded from ``path``
    (a resumed run) or computed by another process are not recomputed. Under several processes ``share`` gathers
    every process's new rows (all processes call ``record`` once per step, so it is a collective) and only the
    ``writer`` appends them to ``path``: one row per (query, depth)."""

    def __init__(self, rewarder: PrefixRewarder, k: int, path: Path | None = None,
                 share: Callable[[list[dict]], list[list[dict]]] = lambda rows: [rows], writer: bool = True):
        self.rewarder, self.k, self.path, self.share, self.writer = rewarder, k, path, share, writer
        self.values: dict[tuple[str, int], float] = {}
        self.computed = 0
        for row in read_jsonl(path) if path is not None else []:
            self.values[(row["qid"], int(row["t"]))] = float(row["reward"])

    def missing(self, reference_lists: Sequence[tuple[Query, Sequence[Document]]]) -> list[tuple[Query, int, list[Document]]]:
        """The (query, depth, reference top-t documents) not known yet, for each (query, reference top-k)."""
        todo = {(q.qid, t): (q, t, list(docs[:t])) for q, docs in reference_lists for t in range(1, self.k + 1)
                if (q.qid, t) not in self.values}
        return list(todo.values())

    def record(self, computed: Sequence[tuple[Query, int, list[Document]]], rewards: Sequence[float]) -> None:
        """Store the rewards of ``missing``'s items and those every other process computed in the same step (in
        memory, and appended to the file by the writer)."""
        mine = [{"qid": q.qid, "t": t, "reward": r} for (q, t, _), r in zip(computed, rewards, strict=True)]
        self.computed += len(mine)
        rows = [row for part in self.share(mine) for row in part]
        for row in rows:
            self.values[(row["qid"], row["t"])] = row["reward"]
        if self.path is not None and self.writer and rows:
            append_jsonl(self.path, rows)

    def rewards(self, qid: str) -> list[float]:
        """[R_ref(q, 1), ..., R_ref(q, k)]."""
        return [self.values[(qid, t)] for t in range(1, self.k + 1)]
