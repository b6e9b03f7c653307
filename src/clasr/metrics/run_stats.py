"""Intervals and paired tests of whole error-rate matrices, from their per-utterance errors.

A run (or a sweep of seeds) is held as :class:`RunErrors`: for each evaluated set, the
errors of every utterance in every row of the matrix (and every seed), and the utterances'
reference counts, both in the units of the set's own metric (words for WER, characters for
CER, mixed units for MER; see :mod:`clasr.metrics.wer`), so each cell is that set's error
rate Σ errors / Σ units and the matrices are the error-rate matrices of matrix.json. Rows
and seeds score the same utterances, so one
bootstrap replicate resamples each set's utterances once and applies that resample to
every row and seed (:func:`replicate_matrices`); the continual metrics of the replicate
matrices (:mod:`clasr.metrics.continual`) give their intervals. For several seeds, the
figure is the mean over seeds, and its interval is that of the mean.

Paired comparisons (:func:`paired_comparisons` over pairs of several runs,
:func:`paired_comparison` for two) split the difference between two runs of each cell and
each linear metric into per-utterance contributions (see :mod:`clasr.metrics.stats`); seeds
pair with seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from clasr.metrics.continual import forgetting, linear_weights
from clasr.metrics.stats import holm, percentile_interval, resample_counts, resampled_rates, sign_flip_test, wilcoxon_signed_rank

# The scalar figures of a matrix with intervals: the continual metrics, then per general set.
SCALAR_METRICS = ("average_wer", "backward_transfer", "forgetting", "learning", "forward_transfer")
# Linear metrics compared by the paired tests, with whether a higher value is better (each
# general set's change G[T] − G[0] is compared too; lower is better).
PAIRED_METRICS = {"average_wer": False, "backward_transfer": True, "learning": True, "forward_transfer": True}
VERDICT_NONE = "no detectable difference at 95 %"
# Sign flips of every permutation test; more where a large family needs them (sign_flips).
FIRST_FLIPS = 10000


@dataclass(frozen=True)
class SetErrors:
    """One evaluated set: ``errors[seed, row, u]`` errors, ``words[u]`` reference units (words
    for a WER set, characters or mixed units for a set scored by CER or MER)."""

    name: str
    ids: tuple[str, ...]
    errors: np.ndarray
    words: np.ndarray


@dataclass(frozen=True)
class RunErrors:
    """Every task's test set (in task order) and every general set of a run or a sweep."""

    tasks: list[SetErrors]
    general: list[SetErrors]
    row_labels: tuple[str, ...]

    @property
    def sets(self) -> list[SetErrors]:
        return [*self.tasks, *self.general]

    @property
    def seeds(self) -> int:
        return self.sets[0].errors.shape[0]

    @property
    def rows(self) -> int:
        return self.sets[0].errors.shape[1]


def _rates(errors: np.ndarray, words: np.ndarray) -> np.ndarray:
    total = words.sum()
    return errors.sum(axis=-1) / total if total else np.full(errors.shape[:-1], np.nan)


def matrices(run: RunErrors) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Corpus error rates: R (seeds, rows, T) and each general set's column (seeds, rows)."""
    tasks = np.stack([_rates(s.errors, s.words) for s in run.tasks], axis=-1)
    return tasks, {s.name: _rates(s.errors, s.words) for s in run.general}


def replicate_matrices(
    run: RunErrors, n_resamples: int = 1000, seed: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Bootstrap replicates: R* (B, seeds, rows, T) and each general set's (B, seeds, rows).

    Each set's utterances are resampled once per replicate (counts drawn set after set,
    tasks then general sets, from ``default_rng(seed)``) and every row and seed is scored
    on that resample. Two runs over the same sets get the same resamples for the same seed.
    """
    rng = np.random.default_rng(seed)
    replicated = [resampled_rates(s.errors, s.words, resample_counts(len(s.words), n_resamples, rng)) for s in run.sets]
    tasks = np.stack(replicated[: len(run.tasks)], axis=-1)
    return tasks, {s.name: r for s, r in zip(run.general, replicated[len(run.tasks) :])}


def stacked_metrics(R: np.ndarray, general: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The scalar metrics of a stack of matrices R (..., rows, T) and general columns
    (..., rows): each an array of shape (...), nan where undefined (T = 1) or where a cell
    is nan (a replicate that drew no reference words); ``general/<name>`` = G[T] − G[0].

    The linear metrics are Σ W ∘ R with :func:`~clasr.metrics.continual.linear_weights`;
    forgetting (a minimum) calls :func:`~clasr.metrics.continual.forgetting` per matrix.
    """
    T = R.shape[-1]
    values = {}
    for key in SCALAR_METRICS:
        if key == "forgetting":
            values[key] = np.reshape([_forgetting_or_nan(m) for m in R.reshape(-1, *R.shape[-2:])], R.shape[:-2])
        else:
            weights = linear_weights(key, T)
            values[key] = np.full(R.shape[:-2], np.nan) if weights is None else np.einsum("rt,...rt->...", weights, R)
    values.update({f"general/{name}": G[..., -1] - G[..., 0] for name, G in general.items()})
    return values


def _forgetting_or_nan(matrix: np.ndarray) -> float:
    if np.isnan(matrix).any():
        return float("nan")
    value = forgetting(matrix)
    return float("nan") if value is None else value


def intervals(run: RunErrors, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Percentile bootstrap intervals (over utterances) of the seed-mean of every scalar
    metric (``metrics``: name → [low, high], None where undefined) and of every cell
    (``cells``: rows × (tasks + general sets), each [low, high])."""
    R, general = replicate_matrices(run, n_resamples, seed)
    metrics = {}
    for key, values in stacked_metrics(R, general).items():
        seed_mean = values.mean(axis=1)
        metrics[key] = None if np.isnan(seed_mean).all() else percentile_interval(seed_mean, confidence).tolist()
    cells = np.concatenate([R, *(G[..., None] for G in general.values())], axis=-1).mean(axis=1)
    low, high = percentile_interval(cells, confidence)
    return {"metrics": metrics, "cells": np.stack([low, high], axis=-1).tolist()}


@dataclass(frozen=True)
class PairedResult:
    """One compared quantity of runs A and B: their values (seed-means), the difference
    A − B with its paired bootstrap interval, the sign-flip permutation and Wilcoxon
    p-values, the Holm-adjusted permutation p-value over the family, and the verdict."""

    quantity: str
    a: float
    b: float
    difference: float
    interval: tuple[float, float]
    p_permutation: float
    p_wilcoxon: float
    p_holm: float
    verdict: str


def check_comparable(a: RunErrors, b: RunErrors) -> None:
    """ValueError unless A and B scored the same sets, rows, seeds and utterances."""
    names_a, names_b = ([[s.name for s in r.tasks], [s.name for s in r.general]] for r in (a, b))
    if names_a != names_b:
        raise ValueError(f"the runs score different sets: {names_a} vs {names_b}")
    if (a.seeds, a.rows) != (b.seeds, b.rows):
        raise ValueError(f"the runs differ in seeds × rows: {a.seeds}×{a.rows} vs {b.seeds}×{b.rows}")
    for x, y in zip(a.sets, b.sets):
        if x.ids != y.ids or not np.array_equal(x.words, y.words):
            raise ValueError(f"set {x.name!r}: the runs did not score the same utterances (ids or references differ)")


def _quantities(run: RunErrors, rows: list[int]) -> list[tuple[str, list[np.ndarray], bool]]:
    """(label, per-set row weights, higher is better) of every compared quantity: each cell
    of ``rows``, then the linear metrics and each general set's change ``general/<name>``.

    A metric that weighs a single cell of ``rows`` (the others it weighs lie in the shared
    row 0: a general set's change, learning with one task, FWT with two) has that cell's
    difference and test, so it is left out: the family holds no test twice.
    """
    T, names = len(run.tasks), [s.name for s in run.sets]
    quantities = []
    for row in rows:
        for column, name in enumerate(names):
            weights = [np.zeros(run.rows) for _ in names]
            weights[column][row] = 1.0
            quantities.append((f"{run.row_labels[row]}: {name}", weights, False))
    metrics = []
    for metric, higher_better in PAIRED_METRICS.items():
        W = linear_weights(metric, T)
        if W is not None:
            metrics.append((metric, [*W.T, *(np.zeros(run.rows) for _ in run.general)], higher_better))
    for index, general in enumerate(run.general):
        weights = [np.zeros(run.rows) for _ in names]
        weights[T + index][[0, -1]] = (-1.0, 1.0)
        metrics.append((f"general/{general.name}", weights, False))
    return quantities + [
        (label, weights, higher_better) for label, weights, higher_better in metrics
        if sum(np.count_nonzero(w[rows]) for w in weights) > 1
    ]


def paired_comparisons(
    runs: list[RunErrors], pairs: list[tuple[int, int]], n_resamples: int = 2000, seed: int = 0,
    confidence: float = 0.95, only: tuple[str, ...] | None = None,
) -> list[list[PairedResult]]:
    """Each pair (i, j) of ``runs`` compared with run i as A and run j as B: one list of
    :class:`PairedResult` per pair, the same quantities in the same order for every pair —
    every cell of rows 1..T (and of row 0 when some pair scored it differently) and the
    linear metrics (:func:`_quantities`).

    A quantity Q is Σ_sets Σ_rows w · WER (a cell: one weight 1); with D = e_A − e_B its
    difference splits into per-utterance contributions d_u = Σ_k Σ_rows w · D[k, row, u] /
    (K Σ n) over the K paired seeds k, whose sum is Q_A − Q_B (mean over seeds). The tests
    flip and rank each utterance's d_u (all its seeds together): an utterance's seeds are not
    independent samples, and the utterance is the unit the bootstrap resamples too.
    Its interval is the percentile interval of Q*_A − Q*_B over bootstrap replicates that
    resample the same utterances for every run. Holm's correction runs over the permutation
    p-values of every quantity of every pair (the family is the whole set of tests); the
    verdict names the better run where the adjusted p < 1 − confidence; a permutation test
    whose p may matter draws :func:`sign_flips` flips for the family's size
    (:func:`_permutation_p`). ``only``: the labels of a pre-specified family (e.g.
    ``("backward_transfer",)``): only those quantities are tested, and Holm runs over them.
    """
    if not pairs:
        raise ValueError("no pair of runs to compare")
    compared = sorted({k for pair in pairs for k in pair})
    first = runs[compared[0]]
    for k in compared[1:]:
        check_comparable(first, runs[k])
    row0_differs = any(
        not np.array_equal(x.errors[:, 0], y.errors[:, 0]) for i, j in pairs for x, y in zip(runs[i].sets, runs[j].sets)
    )
    quantities = _quantities(first, [*([0] if row0_differs else []), *range(1, first.rows)])
    if only is not None:
        missing = set(only) - {q[0] for q in quantities}
        if missing:
            raise ValueError(f"no paired quantity named {', '.join(sorted(missing))} in these runs "
                             f"(they have: {', '.join(q[0] for q in quantities)})")
        quantities = [q for q in quantities if q[0] in only]
    replicated = {k: _per_set(replicate_matrices(runs[k], n_resamples, seed)) for k in compared}
    flips = sign_flips(len(pairs) * len(quantities), 1 - confidence)
    tested = [
        [_paired_test(runs[i], runs[j], replicated[i], replicated[j], weights, label, flips, seed, confidence)
         for label, weights, _ in quantities]
        for i, j in pairs
    ]
    adjusted = np.reshape(holm([result.p_permutation for results in tested for result in results]), (len(pairs), -1))
    return [
        [replace(result, p_holm=p_holm, verdict=_verdict(result.difference, p_holm, higher_better, 1 - confidence))
         for result, p_holm, (_, _, higher_better) in zip(results, row, quantities)]
        for results, row in zip(tested, adjusted.tolist())
    ]


def sign_flips(tests: int, alpha: float) -> int:
    """Monte Carlo sign flips for a permutation test in a family of ``tests``: n = max(10000,
    ⌈20 m / α⌉). A Monte Carlo p is at least 1/(n + 1) and Holm multiplies the smallest p by
    m, so the smallest corrected p, m/(n + 1), stays below α/20: a large family can reject."""
    return max(FIRST_FLIPS, math.ceil(20 * tests / alpha))


def _permutation_p(contributions: np.ndarray, flips: int, alpha: float, seed: int) -> float:
    """The sign-flip p after :data:`FIRST_FLIPS` flips, and only where that p₁ < α (no test
    with p ≥ α is rejected, whatever the family) after ``flips`` flips: p₂. Still a valid p:
    for t < α, p ≤ t needs p₂ ≤ t, and for t ≥ α, p ≤ t implies p₁ ≤ t; so P(p ≤ t) ≤ t
    under H0, and the many clearly null lines of a large table cost no more than before."""
    p = sign_flip_test(contributions, FIRST_FLIPS, seed)
    return sign_flip_test(contributions, flips, seed) if p < alpha and flips > FIRST_FLIPS else p


def paired_comparison(
    a: RunErrors, b: RunErrors, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> list[PairedResult]:
    """A vs B: :func:`paired_comparisons` of the one pair (Holm over its quantities)."""
    return paired_comparisons([a, b], [(0, 1)], n_resamples, seed, confidence)[0]


def _paired_test(
    a: RunErrors, b: RunErrors, replicated_a: list[np.ndarray], replicated_b: list[np.ndarray],
    weights: list[np.ndarray], label: str, flips: int, seed: int, confidence: float,
) -> PairedResult:
    """One quantity of A vs B before Holm's correction (``p_holm`` nan, no verdict)."""
    contributions = np.concatenate([
        np.einsum("r,kru->u", w, x.errors - y.errors) / (a.seeds * x.words.sum())
        for w, x, y in zip(weights, a.sets, b.sets)
    ])
    differences = sum(np.einsum("r,bkr->b", w, ra - rb) / a.seeds for w, ra, rb in zip(weights, replicated_a, replicated_b))
    low, high = percentile_interval(differences, confidence)
    return PairedResult(
        label, _weighted_wer(weights, a), _weighted_wer(weights, b), float(contributions.sum()),
        (float(low), float(high)), _permutation_p(contributions, flips, 1 - confidence, seed),
        wilcoxon_signed_rank(contributions)[1], p_holm=float("nan"), verdict="",
    )


def _per_set(replicates: tuple[np.ndarray, dict[str, np.ndarray]]) -> list[np.ndarray]:
    """:func:`replicate_matrices`' output as one (B, seeds, rows) array per set, tasks first."""
    tasks, general = replicates
    return [*np.moveaxis(tasks, -1, 0), *general.values()]


def _weighted_wer(weights: list[np.ndarray], run: RunErrors) -> float:
    """Σ_sets Σ_rows w · WER, averaged over the run's seeds."""
    return sum(float(np.einsum("r,kru->", w, s.errors)) / (run.seeds * s.words.sum()) for w, s in zip(weights, run.sets))


def _verdict(difference: float, p_holm: float, higher_better: bool, alpha: float) -> str:
    if p_holm >= alpha or difference == 0:
        return VERDICT_NONE
    a_better = difference > 0 if higher_better else difference < 0
    return "A better" if a_better else "B better"
