"""The objective that chooses defaults on dev: what the tasks reach, and what the general sets lose.

Average WER alone rewards a setting that learns the tasks by unlearning everything else
(sequential LoRA on one-word commands: tasks at 0 %, read speech 2 % → 32 %). So a setting is
scored by

    J = Average WER + w · (1/|G|) Σ_g (G_g[T] − G_g[0])

the tasks' Average WER after the last task, plus the mean change of the held-out general sets
from the foundation row to the last row (in each set's metric; positive = ability lost),
weighted by ``w`` (1: a point lost on the general sets costs as much as a point on the tasks).
A general set that improves lowers J. Lower is better. Both terms come from the run's
``metrics.json`` (:func:`clasr.metrics.continual.continual_metrics`).
"""

from __future__ import annotations


def mean_general_change(metrics: dict) -> float | None:
    """(1/|G|) Σ_g (G_g[T] − G_g[0]); None for a run without general sets."""
    changes = [g["change"] for g in (metrics.get("general") or {}).values()]
    return sum(changes) / len(changes) if changes else None


def dev_objective(metrics: dict, weight: float = 1.0) -> float:
    """J of a finished run's metrics (ValueError naming what is missing)."""
    if not metrics.get("complete") or metrics.get("average_wer") is None:
        raise ValueError("the run is not finished: no Average WER to score")
    change = mean_general_change(metrics)
    if change is None:
        raise ValueError("the run has no general set: the objective needs one")
    return metrics["average_wer"] + weight * change
