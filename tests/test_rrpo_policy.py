"""Plackett–Luce policy math: exact log-probabilities, Gumbel-top-k sampling, greedy decoding, trainable layers."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy import stats

from bench.errors import UserError
from rrpo.policy import RerankPolicy, greedy_top_k, gumbel_top_k, step_log_probs
from tests.rrpo_standins import TableReranker, candidate_list


def product_formula(scores: list[float], ordering: tuple[int, ...]) -> float:
    """Π_t exp(s_{c_t}) / Σ_{j not yet picked} exp(s_j), computed independently of rrpo.policy."""
    p, remaining = 1.0, set(range(len(scores)))
    for c in ordering:
        p *= math.exp(scores[c]) / sum(math.exp(scores[j]) for j in remaining)
        remaining.remove(c)
    return p


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize("full", [True, False])
def test_log_probs_equal_brute_force_enumeration(n, full):
    scores = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64) * 2
    k = n if full else n - 1
    orderings = list(itertools.permutations(range(n), k))
    logp = step_log_probs(scores, torch.tensor(orderings)).sum(-1)
    expected = [product_formula(scores.tolist(), o) for o in orderings]
    assert torch.allclose(logp.exp(), torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-12)   # a distribution over all k-prefixes


def test_step_log_probs_first_step_is_softmax_and_last_full_step_is_certain():
    scores = torch.tensor([0.5, -1.0, 2.0, 0.0])
    steps = step_log_probs(scores, torch.tensor([[2, 0, 3, 1]]))[0]
    assert steps[0].item() == pytest.approx(torch.log_softmax(scores, -1)[2].item(), abs=1e-6)
    assert steps[1].item() == pytest.approx(0.5 - math.log(math.exp(0.5) + math.exp(-1.0) + 1.0), abs=1e-6)
    assert steps[3].item() == pytest.approx(0.0, abs=1e-6)           # one candidate left: probability 1


def test_gumbel_top_k_first_pick_frequencies_match_plackett_luce():
    scores = torch.tensor([1.0, 0.2, -0.5, 0.7, -1.5])
    samples = gumbel_top_k(scores, 3, 20000, torch.Generator().manual_seed(0))
    observed = torch.bincount(samples[:, 0], minlength=5).numpy()
    expected = torch.softmax(scores.double(), -1).numpy() * len(samples)
    assert stats.chisquare(observed, expected).pvalue > 0.01


def test_gumbel_top_k_orderings_match_plackett_luce():
    """The whole ordering, not just the first pick: all 6 orderings of 3 candidates."""
    scores = torch.tensor([0.8, 0.0, -0.6])
    samples = gumbel_top_k(scores, 3, 12000, torch.Generator().manual_seed(1))
    orderings = list(itertools.permutations(range(3)))
    observed = [sum(tuple(row) == o for row in samples.tolist()) for o in orderings]
    expected = [product_formula(scores.tolist(), o) * len(samples) for o in orderings]
    assert stats.chisquare(observed, expected).pvalue > 0.01


def test_gumbel_top_k_is_seeded_and_samples_without_replacement():
    scores = torch.zeros(6)
    a = gumbel_top_k(scores, 4, 50, torch.Generator().manual_seed(7))
    b = gumbel_top_k(scores, 4, 50, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert all(len(set(row)) == 4 for row in a.tolist())
    with pytest.raises(ValueError, match="k=7"):
        gumbel_top_k(scores, 7, 1, torch.Generator())


def test_greedy_is_a_stable_sort():
    assert greedy_top_k(torch.tensor([0.1, 0.9, 0.1, 0.5]), 3).tolist() == [1, 3, 0]


def test_policy_scores_divide_by_temperature_and_reference_is_frozen():
    reranker = TableReranker()
    policy = RerankPolicy(reranker, temperature=0.5, trainable="all")
    cl = candidate_list("q")
    raw = reranker.score([cl.query.text] * 8, [c.doc.as_passage() for c in cl.candidates]).detach()
    assert torch.allclose(policy.scores(cl).detach(), raw / 0.5, atol=1e-6)
    ref = policy.frozen_copy()
    with torch.no_grad():
        for p in policy.backbone.parameters():
            p.add_(1.0)
    assert torch.allclose(ref.scores(cl), raw / 0.5, atol=1e-6)      # π_ref does not move with π_θ
    assert not any(p.requires_grad for p in ref.parameters())


def test_trainable_top_layers_only():
    policy = RerankPolicy(TableReranker(), trainable="top:1")
    assert set(policy.trainable_parameters()) == {"backbone.layer.1.weight", "backbone.layer.1.bias"}
    assert set(RerankPolicy(TableReranker(), learn_temperature=True, trainable="none").trainable_parameters()) \
        == {"log_temperature"}
    with pytest.raises(UserError, match="--trainable 'bottom'"):
        RerankPolicy(TableReranker(), trainable="bottom")
