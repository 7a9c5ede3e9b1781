"""Paired significance tests and confidence intervals over per-query scores.

Each test compares the per-query values of a system against a baseline on the same queries (paired). The
randomization test flips the sign of each paired difference (scipy's ``permutation_type="samples"``): exact
enumeration when 2^n is at most ``n_resamples``, seeded Monte Carlo otherwise. For 0/1 outcomes (EM, accuracy, a
judge's verdict) ``mcnemar_exact`` gives the exact p-value: the t-test is optimistic on such data and the Monte Carlo
sign flip only approximates it. p-values of several tests are Holm-corrected.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class PairedTest:
    mean_diff: float
    p_ttest: float
    p_randomization: float


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def paired_tests(system: Sequence[float], baseline: Sequence[float], n_resamples: int = 10_000,
                 seed: int = 0) -> PairedTest:
    """Two-sided paired t-test and paired randomization test of mean(system) vs mean(baseline)."""
    from scipy import stats

    x, y = np.asarray(system, dtype=float), np.asarray(baseline, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired test needs equal lengths, got {x.shape} and {y.shape}")
    diff = x - y
    if len(diff) < 2 or np.all(diff == diff[0]):
        # No variation of the differences: identical systems give p = 1; a constant non-zero shift is as
        # significant as the sample allows, which scipy reports as nan for the t-test.
        same = bool(np.all(diff == 0))
        return PairedTest(float(diff.mean()) if len(diff) else 0.0, 1.0 if same else float("nan"),
                          1.0 if same else _randomization(x, y, n_resamples, seed))
    p_t = float(stats.ttest_rel(x, y).pvalue)
    return PairedTest(float(diff.mean()), p_t, _randomization(x, y, n_resamples, seed))


def _randomization(x: np.ndarray, y: np.ndarray, n_resamples: int, seed: int) -> float:
    from scipy import stats

    res = stats.permutation_test((x, y), _mean_diff, permutation_type="samples", vectorized=True,
                                 n_resamples=n_resamples, alternative="two-sided", rng=np.random.default_rng(seed))
    return float(res.pvalue)


def is_binary(values: Sequence[float]) -> bool:
    """Whether every value is 0 or 1 (and there is at least one): the outcomes ``mcnemar_exact`` is for."""
    v = np.asarray(values, dtype=float)
    return v.size > 0 and bool(np.all((v == 0) | (v == 1)))


def mcnemar_exact(system: Sequence[float], baseline: Sequence[float]) -> float:
    """Exact two-sided McNemar test of paired 0/1 outcomes. Only discordant pairs carry information: under H0 each
    is equally likely to favour either side, so the b pairs the system wins of the b + c discordant ones are
    Binomial(b + c, 1/2) (``scipy.stats.binomtest``). This is also the exact sign-flip test of 0/1 differences.
    No discordant pair: p = 1."""
    from scipy import stats

    x, y = np.asarray(system, dtype=float), np.asarray(baseline, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired test needs equal lengths, got {x.shape} and {y.shape}")
    if not (is_binary(x) and is_binary(y)):
        raise ValueError("mcnemar_exact needs 0/1 outcomes")
    wins, losses = int(np.sum((x == 1) & (y == 0))), int(np.sum((x == 0) & (y == 1)))
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5, alternative="two-sided").pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1); nan stays nan."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    running = 0.0
    for rank, idx in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out.tolist()


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (seeded)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    if np.all(v == v[0]):
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_resamples, len(v)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)
