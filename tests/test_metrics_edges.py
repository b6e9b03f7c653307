"""Boundary cases that mutation testing (``make mutate``) showed no other test reaches."""

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
