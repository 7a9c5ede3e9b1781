"""Rollouts: M Plackett–Luce rankings of k documents per query, sampled from π_θ, with the reader's per-step rewards.

``collect`` does the whole non-differentiable half of an RRPO step for a batch of queries: score the pools with π_θ
and π_ref (no gradients; π_ref's scores are memoised per query since it never changes), sample, make sure the
reference baseline exists for every query, and reward every prefix of every rollout, with the baseline's missing prefixes, in one reader call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from bench.types import CandidateList, Document
from rrpo.policy import RerankPolicy, greedy_top_k, gumbel_top_k, step_log_probs
from rrpo.rewards import PrefixRewarder, ReferenceBaseline


@dataclass
class QueryRollouts:
    """One query's M rollouts. ``actions`` [M, k] are candidate indices in pick order; ``rewards`` [M, k] the reward
    after each pick; ``logp_behaviour`` / ``logp_ref`` [M, k] the step log-probabilities under π_θ at sampling time
    (π_old) and under π_ref; ``reference_rewards`` [k] R_ref(q, 1..k)."""

    cl: CandidateList
    actions: Tensor
    rewards: Tensor
    logp_behaviour: Tensor
    logp_ref: Tensor
    reference_rewards: Tensor


def prefix_docs(cl: CandidateList, picks: Sequence[int]) -> list[Document]:
    return [cl.candidates[i].doc for i in picks]


class RolloutCollector:
    def __init__(self, policy: RerankPolicy, reference: RerankPolicy, rewarder: PrefixRewarder,
                 baseline: ReferenceBaseline, k: int, rollouts_per_query: int, generator: torch.Generator):
        self.policy, self.reference = policy, reference
        self.rewarder, self.baseline = rewarder, baseline
        self.k, self.m, self.generator = k, rollouts_per_query, generator
        self._reference_scores: dict[str, Tensor] = {}

    def reference_scores(self, cl: CandidateList) -> Tensor:
        qid = cl.query.qid
        if qid not in self._reference_scores:
            with torch.no_grad():
                self._reference_scores[qid] = self.reference.scores(cl)
        return self._reference_scores[qid]

    def collect(self, batch: Sequence[CandidateList]) -> list[QueryRollouts]:
        with torch.no_grad():
            scores = [self.policy.scores(cl) for cl in batch]
        ref_scores = [self.reference_scores(cl) for cl in batch]
        k = [min(self.k, len(cl.candidates)) for cl in batch]
        todo = self.baseline.missing([(cl.query, prefix_docs(cl, greedy_top_k(rs, kq).tolist()))
                                      for cl, rs, kq in zip(batch, ref_scores, k)])
        actions = [gumbel_top_k(s, kq, self.m, self.generator) for s, kq in zip(scores, k)]
        items = [(cl.query, prefix_docs(cl, row[:t + 1].tolist()))
                 for cl, acts in zip(batch, actions) for row in acts for t in range(row.shape[0])]
        # One reader call for the whole batch: the reference's missing prefixes, then every rollout prefix.
        rewards = self.rewarder.rewards([(q, docs) for q, _, docs in todo] + items)
        self.baseline.record(todo, rewards[:len(todo)])
        flat = iter(rewards[len(todo):])
        out = []
        for cl, s, rs, acts in zip(batch, scores, ref_scores, actions):
            rewards = torch.tensor([[next(flat) for _ in range(acts.shape[1])] for _ in range(acts.shape[0])])
            out.append(QueryRollouts(cl, acts, rewards, step_log_probs(s, acts), step_log_probs(rs, acts),
                                     torch.tensor(self.baseline.rewards(cl.query.qid))[:acts.shape[1]]))
        return out
