"""Boundary cases that mutation testing (``make mutate``) showed no other test reaches."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from clasr.metrics.continual import general_change
from clasr.metrics.run_stats import RunErrors, SetErrors, paired_comparison
from clasr.metrics.stats import seed_interval


def test_seed_interval_of_two_seeds_is_the_t_interval():
    """k = 2 is the smallest sweep with a spread: t with one degree of freedom (scipy's interval)."""
    values = np.array([0.21, 0.26])
    mean, std, low, high = seed_interval(values, confidence=0.9)
    expected = scipy_stats.t.interval(0.9, df=1, loc=values.mean(), scale=scipy_stats.sem(values))
    assert mean == pytest.approx(0.235) and std == pytest.approx(np.std(values, ddof=1))
    assert (low, high) == pytest.approx(expected, rel=1e-12)
    one = seed_interval(np.array([0.3]))
    assert one[0] == 0.3 and all(math.isnan(v) for v in one[1:])


def test_general_change_of_a_single_task_run():
    """Rows 0..T with T = 1: two entries, the smallest valid vector."""
    assert general_change([0.4, 0.5]) == pytest.approx({"initial": 0.4, "final": 0.5, "change": 0.1})
    for bad in ([0.4], [[0.4, 0.5]]):
        with pytest.raises(ValueError, match=r"\(T\+1\)-vector"):
            general_change(bad)
    with pytest.raises(ValueError, match="NaN entry"):
        general_change([0.4, float("nan")])


def _runs(shift_row0: bool):
    rng = np.random.default_rng(4)
    words = rng.integers(3, 12, 30)
    errors = rng.binomial(words, 0.2, size=(1, 2, 30))
    other = errors + rng.integers(0, 2, size=errors.shape) * np.array([int(shift_row0), 1])[None, :, None]
    labels = ("foundation", "after a")
    ids = tuple(map(str, range(30)))
    return RunErrors([SetErrors("a", ids, errors, words)], [], labels), RunErrors([SetErrors("a", ids, other, words)], [], labels)


@pytest.mark.parametrize("shift_row0", [False, True])
def test_paired_comparison_tests_row_0_only_when_the_runs_scored_it_differently(shift_row0):
    a, b = _runs(shift_row0)
    results = paired_comparison(a, b, n_resamples=200, seed=3)
    assert [r.quantity for r in results if r.quantity.startswith("foundation")] == (["foundation: a"] if shift_row0 else [])
    again = paired_comparison(a, b, n_resamples=200, seed=3)
    assert [r.interval for r in again] == [r.interval for r in results]  # seeded: the same resamples


# ------------------------------------------------ boundaries the first mutmut run left unpinned


def test_a_replicate_with_one_reference_word_has_a_rate_and_one_with_none_is_nan():
    from clasr.metrics.stats import resampled_rates

    rates = resampled_rates(np.array([1.0, 0.0]), np.array([1, 0]), np.array([[1, 0], [0, 2]]))
    assert rates[0] == 1.0 and np.isnan(rates[1])


def test_resampling_one_utterance_draws_it_every_time_and_none_is_refused():
    from clasr.metrics.stats import resample_counts

    assert resample_counts(1, 3, np.random.default_rng(0)).tolist() == [[1], [1], [1]]
    with pytest.raises(ValueError, match="cannot resample an empty set of utterances"):
        resample_counts(0, 3, np.random.default_rng(0))


def test_percentile_interval_takes_confidence_strictly_inside_0_1():
    from clasr.metrics.stats import percentile_interval

    values = np.arange(101.0)
    assert percentile_interval(values, 0.5).tolist() == [25.0, 75.0]
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got"):
            percentile_interval(values, bad)


def test_sign_flip_test_enumerates_every_flip_up_to_16_contributions():
    """16 non-zero contributions: the p-value is the exact share over all 2^16 sign patterns
    (a brute-force loop here), not a Monte Carlo estimate."""
    from clasr.metrics.stats import EXACT_FLIP_LIMIT, sign_flip_test

    d = np.random.default_rng(5).normal(0.3, 1.0, EXACT_FLIP_LIMIT)
    observed = abs(d.sum())
    hits = sum(abs(np.dot(signs, d)) >= observed - 1e-9 * np.abs(d).sum()
               for signs in itertools.product((1.0, -1.0), repeat=d.size))
    assert EXACT_FLIP_LIMIT == 16
    assert sign_flip_test(d) == hits / 2**16


def test_sign_flip_test_defaults_are_10000_flips_from_seed_0():
    """Beyond 16 contributions: p = (1 + hits) / (1 + 10000) over the flips of default_rng(0)."""
    from clasr.metrics.stats import sign_flip_test

    d = np.random.default_rng(6).normal(0.2, 1.0, 20)
    signs = np.random.default_rng(0).choice((-1.0, 1.0), size=(10000, 20))
    hits = int(np.sum(np.abs(signs @ d) >= abs(d.sum()) - 1e-9 * np.abs(d).sum()))
    assert sign_flip_test(d) == (1 + hits) / 10001
    assert sign_flip_test(d) == sign_flip_test(d, n_resamples=10000, seed=0) != sign_flip_test(d, seed=1)


def test_bootstrap_ci_edges_one_resample_one_reference_word_and_named_refusals():
    from clasr.metrics.wer import UtteranceScore, bootstrap_ci

    def score(words, errors):
        return UtteranceScore(words, errors, errors, 0, 0, 4 * words, errors, 3 * words, errors)

    assert bootstrap_ci([score(1, 1)]) == (1.0, 1.0)  # Σ references = 1: a rate, not nan
    two = [score(2, 1), score(1, 0)]
    low, high = bootstrap_ci(two, n_resamples=1)  # one resample: its ratio twice
    assert low == high and 0.0 <= low <= 1.0
    with pytest.raises(ValueError, match="unknown metric 'ter'; valid: "):
        bootstrap_ci(two, metric="ter")
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 1"):
        bootstrap_ci(two, confidence=1)
    with pytest.raises(ValueError, match="n_resamples must be at least 1, got 0"):
        bootstrap_ci(two, n_resamples=0)


def test_a_set_without_reference_words_has_nan_rates_of_the_right_shape():
    """matrices(): Σ errors / Σ words per (seed, row); a general set whose utterances have no
    reference words gives NaN for every seed and row, not an error or a wrongly shaped column."""
    from clasr.metrics.run_stats import matrices

    errors = np.array([[[1, 2], [0, 1]], [[2, 2], [1, 1]], [[0, 0], [3, 0]]])  # 3 seeds, 2 rows, 2 utterances
    task = SetErrors("a", ("u1", "u2"), errors, np.array([4, 6]))
    empty = SetErrors("g", ("u1", "u2"), errors, np.array([0, 0]))
    R, general = matrices(RunErrors([task], [empty], ("foundation", "after a")))
    np.testing.assert_allclose(R[..., 0], errors.sum(axis=-1) / 10)
    assert R.shape == (3, 2, 1) and general["g"].shape == (3, 2) and np.isnan(general["g"]).all()
