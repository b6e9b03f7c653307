"""Continual-learning metrics of a WER matrix.

Conventions, used by every function here:

- Tasks are numbered 1..T and trained in that order.
- ``R`` is a (T+1)×T matrix (list of rows or ``np.ndarray``) with T ≥ 1. Row i holds the
  WERs after training through task i; row 0 is the foundation model before any task.
  Column j−1 is task j's test set, so ``R[j][j-1]`` is task j's WER just after training
  on it (1-based formulas below write it R[j][j]).
- Lower WER is better. Every metric is in WER units (fractions, like R).
- Only complete matrices are accepted: a NaN cell (a run not finished) raises ValueError.
  Metrics of an unfinished run are those of its finished prefix, which is not a matrix
  of this shape (it lacks the later tasks' columns), so they are not computed here.
- A metric that needs a past task (BWT, forgetting) or a later one (FWT) is None when T = 1.
- Every metric but forgetting is a linear combination of the cells of R (and of a general
  set's column): :func:`linear_weights` gives its coefficients, which the paired tests use
  to split a difference between two runs into per-utterance contributions.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

WerMatrix = Sequence[Sequence[float]] | np.ndarray

METRIC_DEFINITIONS: dict[str, str] = {
    "average_wer": "mean over tasks j of R[T][j], the final model's WER; lower is better",
    "backward_transfer": (
        "BWT = mean over j<T of (R[j][j] - R[T][j]); negative = forgetting "
        "(WER rose after later tasks), positive = later tasks helped; None when T=1"
    ),
    "forgetting": (
        "mean over j<T of (R[T][j] - min over rows 1<=t<T of R[t][j]): final WER above the "
        "best WER seen since training started; positive = forgotten, negative = final is "
        "best; None when T=1"
    ),
    "learning": (
        "plasticity = mean over j of (R[j-1][j] - R[j][j]), the WER drop while training "
        "on task j; positive = learned"
    ),
    "forward_transfer": (
        "FWT = mean over j>=2 of (R[0][j] - R[j-1][j]): how much the tasks before j lowered "
        "task j's WER before it was trained on (Lopez-Paz & Ranzato 2017, foundation model as "
        "the baseline, sign flipped for an error rate); positive = earlier tasks helped, "
        "negative = they hurt; None when T=1"
    ),
    "general": (
        "per held-out general set G: initial G[0], final G[T], change G[T] - G[0]; "
        "positive change = general ability lost"
    ),
}


def _validated_matrix(R: WerMatrix) -> np.ndarray:
    """R as a float (T+1)×T array; ValueError for another shape or a NaN cell."""
    try:
        matrix = np.asarray(R, dtype=float)
    except ValueError as error:
        raise ValueError(
            f"WER matrix must be (T+1)×T with T >= 1, got ragged rows: {error}"
        ) from error
    if matrix.ndim != 2 or matrix.shape[1] < 1 or matrix.shape[0] != matrix.shape[1] + 1:
        raise ValueError(f"WER matrix must be (T+1)×T with T >= 1, got shape {matrix.shape}")
    if np.isnan(matrix).any():
        missing = [(int(i), int(j)) for i, j in np.argwhere(np.isnan(matrix))]
        raise ValueError(f"WER matrix is incomplete (NaN at (row, column) {missing})")
    return matrix


def _validated_general(G: Sequence[float] | np.ndarray) -> np.ndarray:
    """G as a float vector of at least two entries (rows 0..T) without NaN."""
    vector = np.asarray(G, dtype=float)
    if vector.ndim != 1 or len(vector) < 2:
        raise ValueError(f"general WERs must be a (T+1)-vector with T >= 1, got {vector.shape}")
    if np.isnan(vector).any():
        raise ValueError("general WERs are incomplete (NaN entry)")
    return vector


def _tasks(matrix: np.ndarray) -> int:
    return matrix.shape[1]


def average_wer(R: WerMatrix) -> float:
    """Average WER = (1/T) Σ_j R[T][j]: the final model's mean WER over all tasks."""
    matrix = _validated_matrix(R)
    return float(matrix[-1].mean())


def backward_transfer(R: WerMatrix) -> float | None:
    """BWT = (1/(T−1)) Σ_{j<T} (R[j][j] − R[T][j]); None when T = 1.

    Negative = forgetting (a task's WER rose after later tasks); positive = later tasks
    improved earlier ones.
    """
    matrix = _validated_matrix(R)
    tasks = _tasks(matrix)
    if tasks < 2:
        return None
    past = np.arange(tasks - 1)
    return float((matrix[past + 1, past] - matrix[-1, past]).mean())


def forgetting(R: WerMatrix) -> float | None:
    """Forgetting = (1/(T−1)) Σ_{j<T} (R[T][j] − min_{1≤t<T} R[t][j]); None when T = 1.

    Chaudhry et al.'s forgetting for an error metric: how far the final WER on task j is
    above the best WER seen on it after training started. The minimum runs over rows
    1..T−1 — the foundation row 0 is excluded, rows before task j was trained are
    included. Positive = forgotten; negative when the final model is the best yet.
    Always ≥ −BWT.
    """
    matrix = _validated_matrix(R)
    tasks = _tasks(matrix)
    if tasks < 2:
        return None
    best_before_final = matrix[1:tasks, : tasks - 1].min(axis=0)
    return float((matrix[-1, : tasks - 1] - best_before_final).mean())


def learning(R: WerMatrix) -> float:
    """Learning (plasticity) = (1/T) Σ_j (R[j−1][j] − R[j][j]).

    The WER drop on task j while training on it; positive = the task was learned.
    """
    matrix = _validated_matrix(R)
    tasks = np.arange(_tasks(matrix))
    return float((matrix[tasks, tasks] - matrix[tasks + 1, tasks]).mean())


def forward_transfer(R: WerMatrix) -> float | None:
    """FWT = (1/(T−1)) Σ_{j=2}^{T} (R[0][j] − R[j−1][j]); None when T = 1.

    Lopez-Paz & Ranzato (2017) define FWT = (1/(T−1)) Σ_{i=2}^{T} (a_{i−1,i} − b̄_i) for an
    accuracy a, b̄_i being the accuracy of a model that never trained (here the foundation
    model, row 0). WER is an error, so the difference is taken the other way round:
    positive = training on the earlier tasks lowered task j's WER before task j was
    trained (positive transfer); negative = it raised it.
    """
    matrix = _validated_matrix(R)
    tasks = _tasks(matrix)
    if tasks < 2:
        return None
    later = np.arange(1, tasks)
    return float((matrix[0, later] - matrix[later, later]).mean())


def linear_weights(metric: str, tasks: int) -> np.ndarray | None:
    """Coefficients W ((T+1)×T) with metric(R) = Σ W ∘ R, for the linear metrics
    ``average_wer``, ``backward_transfer``, ``learning`` and ``forward_transfer``; None
    where the metric is undefined (T = 1). Forgetting (a minimum) is not linear."""
    weights = np.zeros((tasks + 1, tasks))
    columns = np.arange(tasks)
    if metric == "average_wer":
        weights[tasks] = 1 / tasks
    elif metric == "learning":
        weights[columns, columns] += 1 / tasks
        weights[columns + 1, columns] -= 1 / tasks
    elif metric in ("backward_transfer", "forward_transfer"):
        if tasks < 2:
            return None
        past = np.arange(tasks - 1)
        if metric == "backward_transfer":
            weights[past + 1, past] += 1 / (tasks - 1)
            weights[tasks, past] -= 1 / (tasks - 1)
        else:
            weights[0, past + 1] += 1 / (tasks - 1)
            weights[past + 1, past + 1] -= 1 / (tasks - 1)
    else:
        raise ValueError(f"{metric!r} is not a linear metric of the WER matrix")
    return weights


def general_change(G: Sequence[float] | np.ndarray) -> dict[str, float]:
    """One held-out general set's WER per row G[0..T]: initial G[0], final G[T], change.

    change = G[T] − G[0]; positive = general ability lost.
    """
    vector = _validated_general(G)
    initial, final = float(vector[0]), float(vector[-1])
    return {"initial": initial, "final": final, "change": final - initial}


def continual_metrics(
    R: WerMatrix, general: dict[str, Sequence[float]] | None = None
) -> dict[str, Any]:
    """All metrics of a complete WER matrix, JSON-able (None where undefined).

    ``general`` maps a held-out set's name to its WER per row (length T+1).
    Keys are those of :data:`METRIC_DEFINITIONS`, plus ``tasks`` (T).
    """
    matrix = _validated_matrix(R)
    rows = matrix.shape[0]
    for name, values in (general or {}).items():
        if len(values) != rows:
            raise ValueError(f"general set {name!r} has {len(values)} WERs, expected {rows}")
    return {
        "tasks": _tasks(matrix),
        "average_wer": average_wer(matrix),
        "backward_transfer": backward_transfer(matrix),
        "forgetting": forgetting(matrix),
        "learning": learning(matrix),
        "forward_transfer": forward_transfer(matrix),
        "general": {name: general_change(values) for name, values in (general or {}).items()},
    }
