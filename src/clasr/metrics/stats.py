"""Statistics over utterances: bootstrap replicates of corpus rates, paired tests, Holm.

Every corpus rate is Σ errors / Σ reference words over a set's utterances. A bootstrap
replicate draws the set's utterances with replacement (n draws from n) and recomputes that
ratio — never the mean of per-utterance ratios. A replicate is kept as *counts*: how many
times each utterance was drawn, so one draw applies at once to every row of a WER matrix,
to every seed of a sweep and to both runs of a paired comparison, all of which score the
same utterances.

Paired tests compare two runs through per-utterance contributions d_u whose sum is the
difference of the compared quantity (for one cell d_u = (e_A,u − e_B,u) / Σ_u n_u):

- sign-flip permutation test: under H0 (the two runs are exchangeable on each utterance)
  each d_u is as likely to be −d_u; p = P(|Σ ± d_u| ≥ |Σ d_u|), exact by enumeration for
  few non-zero d_u, Monte Carlo otherwise;
- Wilcoxon signed-rank test over the non-zero d_u (normal approximation with the tie
  correction, no continuity correction);
- Holm's step-down correction of a family of p-values.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.stats import rankdata
from scipy.stats import t as student_t

# Resample counts and sign flips are drawn in chunks of about this many entries.
_CHUNK_ENTRIES = 1 << 22
# Up to this many non-zero contributions the sign-flip test enumerates every flip.
EXACT_FLIP_LIMIT = 16


def resample_counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, n) int array: how often each of n utterances is drawn in each replicate.

    Replicate b draws ``rng.integers(0, n, n)`` — the same stream as a loop drawing one
    replicate after another.
    """
    if n < 1:
        raise ValueError("cannot resample an empty set of utterances")
    counts = np.zeros((n_resamples, n), dtype=np.int64)
    chunk = max(1, _CHUNK_ENTRIES // n)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        index = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        counts[start : start + size] = np.bincount(index.ravel(), minlength=size * n).reshape(size, n)
    return counts


def resampled_rates(errors: np.ndarray, words: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Σ_u c_bu e_u / Σ_u c_bu n_u for each replicate b of ``counts`` (B, n).

    ``errors`` has shape (..., n) (e.g. seeds × rows × utterances), ``words`` (n,); the
    result has shape (B, ...). nan where a replicate drew no reference words.
    """
    errors = np.asarray(errors, dtype=float)
    shape = errors.shape[:-1]
    numerators = counts @ errors.reshape(-1, errors.shape[-1]).T
    denominators = (counts @ np.asarray(words, dtype=float)).astype(float)
    denominators[denominators == 0] = np.nan
    return (numerators / denominators[:, None]).reshape((len(counts), *shape))


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """The (1 − confidence)/2 and (1 + confidence)/2 percentiles along axis 0, ignoring nan
    replicates: shape (2, ...) — [low, high]."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = 100 * (1 - confidence) / 2
    return np.nanpercentile(replicates, [tail, 100 - tail], axis=0)


def sign_flip_test(contributions: np.ndarray, n_resamples: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value of H0: each contribution d_u is symmetric around 0 (paired runs
    exchangeable), statistic Σ d_u.

    p = P(|Σ s_u d_u| ≥ |Σ d_u|) over independent signs s_u = ±1: every flip enumerated
    when at most :data:`EXACT_FLIP_LIMIT` contributions are non-zero, otherwise
    ``n_resamples`` random flips with p = (1 + #{|stat*| ≥ |stat|}) / (1 + n_resamples).
    """
    d = np.asarray(contributions, dtype=float).ravel()
    d = d[d != 0]
    if d.size == 0:
        return 1.0
    observed = abs(d.sum())
    tolerance = 1e-9 * np.abs(d).sum()
    if d.size <= EXACT_FLIP_LIMIT:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        return float(np.mean(np.abs(signs @ d) >= observed - tolerance))
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, _CHUNK_ENTRIES // d.size)
    for start in range(0, n_resamples, chunk):
        signs = rng.choice((-1.0, 1.0), size=(min(chunk, n_resamples - start), d.size))
        hits += int(np.sum(np.abs(signs @ d) >= observed - tolerance))
    return (1 + hits) / (1 + n_resamples)


def wilcoxon_signed_rank(contributions: np.ndarray) -> tuple[float, float]:
    """Wilcoxon signed-rank test of H0: the paired differences d_u are symmetric around 0.

    Zeros are dropped; the |d_u| are ranked (ties get their average rank);
    W = min(W+, W−), the smaller of the rank sums of positive and negative d_u. Normal
    approximation: z = (W − m(m+1)/4) / σ, σ² = m(m+1)(2m+1)/24 − Σ_t (t³ − t)/48 over
    groups of t tied |d_u|; p = 2 Φ(−|z|). Returns (W, p); (0, 1) when every d_u is 0.
    With m ≥ 1 the variance is positive: all m tied is its smallest, 3m(m+1)²/48 ≥ 0.25.
    """
    d = np.asarray(contributions, dtype=float).ravel()
    d = d[d != 0]
    m = d.size
    if m == 0:
        return 0.0, 1.0
    ranks = rankdata(np.abs(d))
    statistic = min(ranks[d > 0].sum(), ranks[d < 0].sum())
    _, ties = np.unique(np.abs(d), return_counts=True)
    variance = m * (m + 1) * (2 * m + 1) / 24 - np.sum(ties.astype(float) ** 3 - ties) / 48
    z = (statistic - m * (m + 1) / 4) / math.sqrt(variance)
    return float(statistic), float(math.erfc(abs(z) / math.sqrt(2)))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    With p_(1) ≤ … ≤ p_(m) sorted: p̃_(i) = max_{k ≤ i} min(1, (m − k + 1) p_(k)).
    Rejecting where p̃ < α controls the family-wise error rate at α.
    """
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (m - position) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()


def seed_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, sample std, low, high) of per-seed values: the t interval of the mean over
    seeds, mean ± t_{(1+confidence)/2, k−1} · std / √k; std and interval nan for one seed."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return mean, float("nan"), float("nan"), float("nan")
    std = float(values.std(ddof=1))
    half = float(student_t.ppf((1 + confidence) / 2, values.size - 1)) * std / math.sqrt(values.size)
    return mean, std, mean - half, mean + half
