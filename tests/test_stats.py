"""Bootstrap intervals, paired tests and Holm against brute force and scipy on synthetic data."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from clasr.metrics.continual import continual_metrics
from clasr.metrics.run_stats import RunErrors, SetErrors, intervals, matrices, paired_comparison, VERDICT_NONE
from clasr.metrics.stats import (
    holm,
    percentile_interval,
    resample_counts,
    resampled_rates,
    seed_interval,
    sign_flip_test,
    wilcoxon_signed_rank,
)


def _utterances(rng, n, rows=1, seeds=1, error_rate=0.2):
    """Reference word counts from 1 to 30 (so a mean of per-utterance ratios is far from the
    corpus ratio) and word errors per seed and row."""
    words = rng.integers(1, 31, size=n)
    errors = rng.binomial(words, error_rate, size=(seeds, rows, n))
    errors[..., : n // 5] += rng.integers(0, 3, size=(seeds, rows, n // 5))  # short ones err more
    return errors, words


def test_resample_counts_follow_a_loop_of_draws():
    rng = np.random.default_rng(7)
    counts = resample_counts(9, 50, rng)
    loop = np.random.default_rng(7)
    expected = np.stack([np.bincount(loop.integers(0, 9, 9), minlength=9) for _ in range(50)])
    np.testing.assert_array_equal(counts, expected)
    assert (counts.sum(axis=1) == 9).all()


def test_corpus_wer_interval_matches_a_brute_force_bootstrap():
    """Σ errors / Σ words of each resample, not the mean of per-utterance ratios."""
    errors, words = _utterances(np.random.default_rng(1), 40)
    run = RunErrors([SetErrors("a", tuple(map(str, range(40))), errors[:, :1].repeat(2, axis=1), words)], [], ("foundation", "after a"))
    low, high = intervals(run, n_resamples=400, seed=5)["cells"][1][0]

    rng = np.random.default_rng(5)
    ratios = []
    for _ in range(400):
        index = rng.integers(0, 40, 40)
        ratios.append(errors[0, 0, index].sum() / words[index].sum())
    assert (low, high) == pytest.approx(tuple(np.percentile(ratios, [2.5, 97.5])), rel=1e-12)
    per_utterance_mean = np.mean(errors[0, 0] / words)
    assert abs(per_utterance_mean - errors[0, 0].sum() / words.sum()) > 0.02  # the data tells the two apart


def test_metric_intervals_match_a_brute_force_loop_over_replicates():
    """One resample per set per replicate, shared by every row (and seed); metrics of each
    replicate matrix by the plain continual_metrics; the seed-mean's percentiles."""
    rng = np.random.default_rng(2)
    sets = []
    for name, n in (("a", 12), ("b", 9), ("g", 15)):
        errors, words = _utterances(rng, n, rows=3, seeds=2)
        sets.append(SetErrors(name, tuple(f"{name}{i}" for i in range(n)), errors, words))
    run = RunErrors(sets[:2], sets[2:], ("foundation", "after a", "after b"))
    found = intervals(run, n_resamples=200, seed=3)

    draws = np.random.default_rng(3)
    counts = [resample_counts(len(s.words), 200, draws) for s in sets]
    replicate_values = {key: [] for key in found["metrics"]}
    for b in range(200):
        per_seed = []
        for k in range(2):
            rates = [(counts[i][b] @ s.errors[k].T) / (counts[i][b] @ s.words) for i, s in enumerate(sets)]
            metrics = continual_metrics(np.stack(rates[:2], axis=1), {"g": rates[2]})
            per_seed.append(metrics)
        for key in ("average_wer", "backward_transfer", "forgetting", "learning", "forward_transfer"):
            replicate_values[key].append(np.mean([m[key] for m in per_seed]))
        replicate_values["general/g"].append(np.mean([m["general"]["g"]["change"] for m in per_seed]))
    for key, values in replicate_values.items():
        assert found["metrics"][key] == pytest.approx(list(np.percentile(values, [2.5, 97.5])), rel=1e-10), key
    narrow = intervals(run, n_resamples=200, seed=3, confidence=0.5)
    for key, values in replicate_values.items():
        assert narrow["metrics"][key] == pytest.approx(list(np.percentile(values, [25, 75])), rel=1e-10), key
    cells = np.array(found["cells"]), np.array(narrow["cells"])
    assert np.all(cells[0][..., 0] <= cells[1][..., 0]) and np.all(cells[1][..., 1] <= cells[0][..., 1])
    assert np.any(cells[0] != cells[1])


def test_paired_bootstrap_agrees_with_scipy_bootstrap():
    rng = np.random.default_rng(4)
    words = rng.integers(1, 20, 80)
    e_a = rng.binomial(words, 0.10)
    e_b = rng.binomial(words, 0.18)
    counts = resample_counts(80, 20000, np.random.default_rng(0))
    difference = resampled_rates(np.stack([e_a - e_b]), words, counts)[:, 0]
    low, high = percentile_interval(difference)

    def statistic(a, b, n, axis):
        return (a.sum(axis=axis) - b.sum(axis=axis)) / n.sum(axis=axis)

    reference = scipy_stats.bootstrap((e_a, e_b, words), statistic, paired=True, vectorized=True, n_resamples=20000,
                                      method="percentile", random_state=np.random.default_rng(1)).confidence_interval
    width = reference.high - reference.low
    assert low == pytest.approx(reference.low, abs=0.05 * width)
    assert high == pytest.approx(reference.high, abs=0.05 * width)


@pytest.mark.parametrize("seed", range(4))
def test_wilcoxon_matches_scipy_with_ties_and_zeros(seed):
    rng = np.random.default_rng(seed)
    d = rng.integers(-3, 4, size=50).astype(float) + (seed % 2) * 0.8  # many ties and zeros (seed 0, 2)
    statistic, p = wilcoxon_signed_rank(d)
    reference = scipy_stats.wilcoxon(d, zero_method="wilcox", correction=False, method="approx")
    assert statistic == reference.statistic
    assert p == pytest.approx(reference.pvalue, rel=1e-12)


def test_wilcoxon_known_answers():
    assert wilcoxon_signed_rank(np.zeros(10)) == (0.0, 1.0)
    assert wilcoxon_signed_rank(np.arange(1, 41))[1] < 1e-6  # all differences positive
    assert wilcoxon_signed_rank(np.array([-1.0, 1.0] * 20))[1] == pytest.approx(1.0)


@pytest.mark.parametrize("d", [[0.0, 2.0], [3.0, 3.0, 3.0, 0.0], [-1.0, -1.0]])
def test_wilcoxon_with_every_nonzero_difference_tied_has_the_smallest_variance(d):
    """All m tied: σ² = 3m(m+1)²/48 > 0 (0.25 at m = 1), the normal approximation still defined."""
    statistic, p = wilcoxon_signed_rank(np.array(d))
    m = np.count_nonzero(d)
    z = (statistic - m * (m + 1) / 4) / np.sqrt(3 * m * (m + 1) ** 2 / 48)
    assert p == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-12)
    reference = scipy_stats.wilcoxon(d, zero_method="wilcox", correction=False, method="approx")
    assert p == pytest.approx(reference.pvalue, rel=1e-12)


def _permutation_reference(d, n_resamples):
    return scipy_stats.permutation_test((d,), lambda x, axis: x.sum(axis=axis), permutation_type="samples",
                                        n_resamples=n_resamples, random_state=np.random.default_rng(0)).pvalue


@pytest.mark.parametrize("seed", range(3))
def test_sign_flip_test_is_scipy_s_exact_permutation_test(seed):
    d = np.random.default_rng(seed).normal(0.4, 1.0, size=12)
    assert sign_flip_test(d) == pytest.approx(_permutation_reference(d, 10**6), rel=1e-12)


def test_sign_flip_test_by_monte_carlo_agrees_with_scipy():
    """Both are Monte Carlo estimates of one p (about 0.78 here); scipy's 2·min(one-sided)
    has a standard error of about 0.005 at 40000 resamples, so 0.025 is 4–5 of them."""
    d = np.random.default_rng(5).normal(0.25, 1.0, size=60)
    assert sign_flip_test(d, n_resamples=40000) == pytest.approx(_permutation_reference(d, 40000), abs=0.025)


def test_sign_flip_test_known_answers():
    assert sign_flip_test(np.zeros(5)) == 1.0
    assert sign_flip_test(np.ones(10)) == pytest.approx(2 / 1024)  # all + or all −
    assert sign_flip_test(np.ones(200)) < 1e-3
    assert sign_flip_test(np.array([1.0, -1.0] * 100)) == 1.0


def test_holm_by_hand_and_by_definition():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    p = list(np.random.default_rng(0).uniform(0, 0.2, 7))
    ordered = sorted(p)
    by_definition = {q: max(min(1, (7 - k) * ordered[k]) for k in range(i + 1)) for i, q in enumerate(ordered)}
    assert holm(p) == pytest.approx([by_definition[q] for q in p])


def test_seed_interval_is_student_t():
    values = np.array([0.031, 0.042, 0.036])
    mean, std, low, high = seed_interval(values)
    reference = scipy_stats.t.interval(0.95, 2, loc=values.mean(), scale=scipy_stats.sem(values))
    assert (mean, std) == pytest.approx((values.mean(), values.std(ddof=1)))
    assert (low, high) == pytest.approx(reference)
    assert np.isnan(seed_interval(values[:1])[1])


def _pair(better_cell: bool, seeds: int = 1):
    """Two runs over tasks a, b and general g; B differs from A on every utterance of rows
    1..2 by ±1 error, the same number of each sign (no difference in any cell), and, when
    ``better_cell``, has 1–3 more errors on each utterance of task a's final cell."""
    rng = np.random.default_rng(11)
    a_sets, b_sets = [], []
    for name, n in (("a", 60), ("b", 50), ("g", 40)):
        words = rng.integers(3, 15, n)
        errors = 1 + rng.binomial(words, 0.1, size=(seeds, 3, n))  # ≥ 1, so B's −1 stays a count
        other = errors.copy()
        other[:, 1:] += rng.permuted(np.resize([1, -1], (seeds, 2, n)), axis=-1)
        if better_cell and name == "a":
            other[:, 2] += rng.integers(1, 4, size=(seeds, n))
        ids = tuple(f"{name}{i}" for i in range(n))
        a_sets.append(SetErrors(name, ids, errors, words))
        b_sets.append(SetErrors(name, ids, other, words))
    labels = ("foundation", "after a", "after b")
    return RunErrors(a_sets[:2], a_sets[2:], labels), RunErrors(b_sets[:2], b_sets[2:], labels)


@pytest.mark.parametrize("seeds", [1, 2])
def test_paired_comparison_finds_the_worse_cell_and_nothing_else(seeds):
    a, b = _pair(better_cell=True, seeds=seeds)
    results = {r.quantity: r for r in paired_comparison(a, b, n_resamples=500)}
    # FWT of two tasks and g's change weigh one cell outside the shared row 0: that cell's line tests them
    assert [q for q in results if not q.startswith("after")] == ["average_wer", "backward_transfer", "learning"]
    assert len(results) == 2 * 3 + 3  # rows 1..T × (2 tasks + 1 general set), row 0 shared
    worse = results["after b: a"]
    assert worse.verdict == "A better" and worse.difference < 0 and worse.interval[1] < 0
    assert results["average_wer"].verdict == "A better"
    assert results["backward_transfer"].verdict == "A better"  # B forgot task a
    assert results["learning"].verdict == VERDICT_NONE  # B learned each task as A did
    assert all(r.verdict == VERDICT_NONE for q, r in results.items() if q.startswith("after a"))
    R_a, G_a = matrices(a)
    R_b, _ = matrices(b)
    assert worse.a == pytest.approx(R_a[:, 2, 0].mean()) and worse.b == pytest.approx(R_b[:, 2, 0].mean())
    assert results["average_wer"].difference == pytest.approx(
        np.mean([continual_metrics(R_a[k])["average_wer"] - continual_metrics(R_b[k])["average_wer"] for k in range(seeds)])
    )
    assert worse.p_holm >= worse.p_permutation


def test_identical_runs_show_no_difference():
    a, _ = _pair(better_cell=False)
    results = paired_comparison(a, a, n_resamples=200)
    assert all(r.verdict == VERDICT_NONE and r.difference == 0 and r.p_permutation == 1.0 for r in results)


def test_runs_on_other_utterances_are_refused():
    a, b = _pair(better_cell=False)
    moved = SetErrors("a", ("x",) + a.tasks[0].ids[1:], a.tasks[0].errors, a.tasks[0].words)
    with pytest.raises(ValueError, match="set 'a': the runs did not score the same utterances"):
        paired_comparison(RunErrors([moved, a.tasks[1]], a.general, a.row_labels), b)
    with pytest.raises(ValueError, match="different sets"):
        paired_comparison(RunErrors(a.tasks, [], a.row_labels), b)


def test_exact_flip_enumeration_covers_every_sign_pattern():
    d = np.array([0.5, -1.0, 2.0])
    patterns = np.array(list(itertools.product((1, -1), repeat=3)))
    assert sign_flip_test(d) == pytest.approx(np.mean(np.abs(patterns @ d) >= abs(d.sum())))
