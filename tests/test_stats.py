import itertools

import numpy as np
import pytest
from scipy import stats

from bench.stats import bootstrap_ci, holm, is_binary, mcnemar_exact, paired_tests

SYSTEM = [0.9, 0.4, 0.7, 1.0, 0.3, 0.8, 0.65, 0.5]
BASE = [0.6, 0.5, 0.2, 0.9, 0.1, 0.3, 0.6, 0.45]


def brute_force_sign_flip_p(x, y):
    """Exact two-sided paired randomization test: enumerate all 2^n sign assignments of the differences."""
    d = np.asarray(x) - np.asarray(y)
    observed = abs(d.mean())
    hits = 0
    for signs in itertools.product((1, -1), repeat=len(d)):
        hits += abs((d * signs).mean()) >= observed - 1e-12
    return hits / 2 ** len(d)


def test_paired_t_matches_scipy():
    t = paired_tests(SYSTEM, BASE)
    assert t.p_ttest == pytest.approx(stats.ttest_rel(SYSTEM, BASE).pvalue, abs=1e-12)
    assert t.mean_diff == pytest.approx(np.mean(SYSTEM) - np.mean(BASE))


def test_randomization_is_exact_for_small_n():
    t = paired_tests(SYSTEM, BASE)
    exact = brute_force_sign_flip_p(SYSTEM, BASE)
    assert t.p_randomization == pytest.approx(exact, abs=1e-12)
    # 2^8 = 256 assignments: the p-value is a multiple of 1/256
    assert (t.p_randomization * 256) == pytest.approx(round(t.p_randomization * 256))


def test_randomization_monte_carlo_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(1)
    x = rng.random(20)
    y = x - 0.05 + rng.normal(0, 0.1, 20)
    a = paired_tests(x, y, n_resamples=20_000, seed=3)
    b = paired_tests(x, y, n_resamples=20_000, seed=3)
    assert a == b
    assert a.p_randomization == pytest.approx(brute_force_sign_flip_p(x, y), abs=0.01)


def test_identical_systems_are_not_significant():
    t = paired_tests(BASE, BASE)
    assert t.p_ttest == 1.0 and t.p_randomization == 1.0 and t.mean_diff == 0.0


def test_holm_hand_computed():
    # sorted p: 0.01 (x3) = 0.03, 0.02 (x2) = 0.04, 0.04 (x1) = 0.04 ; order restored
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # monotone step-down and cap at 1; nan ignored
    out = holm([0.5, float("nan"), 0.3])
    assert out[0] == pytest.approx(0.6) and np.isnan(out[1]) and out[2] == pytest.approx(0.6)
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_bootstrap_ci_brackets_mean_and_is_seeded():
    lo, hi = bootstrap_ci(SYSTEM, seed=0)
    assert lo < np.mean(SYSTEM) < hi
    assert (lo, hi) == bootstrap_ci(SYSTEM, seed=0)
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)


def test_bootstrap_ci_is_a_95_percent_interval():
    """400 fair coin flips: the standard error of the mean is 0.025, so a 95% interval is about ±1.96 × 0.025 wide
    (a 50% one would be ±0.017, a 90% one ±0.041)."""
    flips = np.random.default_rng(4).integers(0, 2, 400).astype(float)
    lo, hi = bootstrap_ci(flips, seed=0)
    assert hi - lo == pytest.approx(2 * 1.96 * 0.025, rel=0.08)
    assert lo < flips.mean() < hi


def test_mcnemar_exact_equals_hand_computed_binomial_p_values():
    # 7 pairs won by the system, 2 by the baseline, 5 ties (ignored): 2 P(X >= 7 | X ~ Bin(9, 1/2))
    # = 2 (C(9,7) + C(9,8) + C(9,9)) / 2^9 = 2 (36 + 9 + 1) / 512 = 0.1796875
    system = [1] * 7 + [0] * 2 + [1] * 3 + [0] * 2
    baseline = [0] * 7 + [1] * 2 + [1] * 3 + [0] * 2
    assert mcnemar_exact(system, baseline) == pytest.approx(92 / 512, abs=1e-12)
    assert mcnemar_exact(baseline, system) == pytest.approx(92 / 512, abs=1e-12)       # symmetric
    assert mcnemar_exact([1] * 4, [0] * 4) == pytest.approx(2 / 16, abs=1e-12)         # 4 vs 0: 2 (1/2)^4
    assert mcnemar_exact([1] * 5 + [0] * 5, [1] * 5 + [0] * 5) == 1.0                  # no discordant pair
    # 10 vs 2: 2 (C(12,10) + C(12,11) + C(12,12)) / 4096 = 2 * 79 / 4096
    assert mcnemar_exact([1] * 10 + [0] * 2, [0] * 10 + [1] * 2) == pytest.approx(158 / 4096, abs=1e-12)


def test_mcnemar_exact_is_the_exact_sign_flip_test_of_binary_differences():
    system = [1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1]
    baseline = [0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0]
    assert mcnemar_exact(system, baseline) == pytest.approx(brute_force_sign_flip_p(system, baseline), abs=1e-12)
    # ... which the paired t-test understates on such data
    assert stats.ttest_rel(system, baseline).pvalue < mcnemar_exact(system, baseline)


def test_mcnemar_exact_rejects_graded_values():
    with pytest.raises(ValueError, match="0/1 outcomes"):
        mcnemar_exact([0.5, 1.0], [0.0, 1.0])
    assert is_binary([0.0, 1.0, 1.0]) and not is_binary([0.0, 0.5]) and not is_binary([])
