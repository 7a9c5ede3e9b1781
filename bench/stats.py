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
    from scipy import stats  # lazy: scipy only when a test is computed

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
    from scipy import stats  # lazy: scipy only when a test is computed

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
    from scipy import stats  # lazy: scipy only when a test is computed

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


def cohens_kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Cohen's kappa of two binary raters: (p_o - p_e) / (1 - p_e). NaN when chance agreement is 1 (both raters
    gave one and the same label to every item), as in ``sklearn.metrics.cohen_kappa_score``."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"cohens_kappa needs two non-empty label lists of equal length (got {len(a)} and {len(b)})")
    return float(binary_agreement(np.asarray(a, dtype=bool), np.asarray(b, dtype=bool))["kappa"])


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def binary_agreement(rater: np.ndarray, reference: np.ndarray) -> dict[str, np.ndarray]:
    """How a 0/1 rater (a metric, a judge) agrees with a 0/1 reference (the human label), over the last axis (so a
    stack of bootstrap resamples is computed at once): ``agreement`` (share of equal labels), Cohen's ``kappa``,
    ``precision`` (of the items the rater calls 1, the share the reference calls 1), ``recall`` (of the reference's
    1s, the share the rater calls 1). NaN where undefined: kappa when chance agreement is 1, precision when the
    rater never says 1, recall when the reference never does."""
    rater, reference = rater.astype(bool), reference.astype(bool)
    n = rater.shape[-1]
    both = np.sum(rater & reference, axis=-1)
    p_rater, p_reference = rater.sum(axis=-1) / n, reference.sum(axis=-1) / n
    observed = np.sum(rater == reference, axis=-1) / n
    expected = p_rater * p_reference + (1 - p_rater) * (1 - p_reference)
    return {"agreement": observed, "kappa": _ratio(observed - expected, 1 - expected),
            "precision": _ratio(both, rater.sum(axis=-1)), "recall": _ratio(both, reference.sum(axis=-1))}


def binary_agreement_ci(rater: Sequence[bool], reference: Sequence[bool], confidence: float = 0.95,
                        n_resamples: int = 2000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """``binary_agreement`` of the items with a percentile bootstrap CI (items resampled with replacement, seeded):
    name -> (value, low, high). Resamples where a statistic is undefined are left out of its interval."""
    x, y = np.asarray(rater, dtype=bool), np.asarray(reference, dtype=bool)
    if x.shape != y.shape or x.ndim != 1 or not len(x):
        raise ValueError(f"binary_agreement_ci needs two non-empty label lists of equal length (got {x.shape} and "
                         f"{y.shape})")
    point = binary_agreement(x, y)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_resamples, len(x)))
    resampled = binary_agreement(x[idx], y[idx])
    alpha = (1 - confidence) / 2
    out = {}
    for name, value in point.items():
        values = resampled[name][~np.isnan(resampled[name])]
        lo, hi = np.quantile(values, [alpha, 1 - alpha]) if len(values) else (np.nan, np.nan)
        out[name] = (float(value), float(lo), float(hi))
    return out
