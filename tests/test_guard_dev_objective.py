"""The dev objective J = Average WER + w · mean general change (clasr.report.dev_objective)."""

from __future__ import annotations

import pytest

from clasr.metrics.continual import continual_metrics
from clasr.report.dev_objective import dev_objective, mean_general_change


def _metrics(R, general):
    return {"complete": True, **continual_metrics(R, general)}


def test_objective_adds_the_mean_general_change_to_the_average_wer():
    R = [[0.6, 0.3], [0.1, 0.3], [0.2, 0.05]]  # foundation, after task 1, after task 2
    metrics = _metrics(R, {"read": [0.02, 0.16, 0.32], "other": [0.10, 0.10, 0.06]})
    # Average WER = (0.2 + 0.05) / 2; changes +0.30 and −0.04 → mean +0.13
    assert mean_general_change(metrics) == pytest.approx(0.13)
    assert dev_objective(metrics) == pytest.approx(0.125 + 0.13)
    assert dev_objective(metrics, weight=0.5) == pytest.approx(0.125 + 0.065)


def test_a_setting_that_learns_by_forgetting_loses_to_one_that_keeps_the_general_sets():
    forgets = _metrics([[0.6], [0.0]], {"read": [0.02, 0.32]})
    keeps = _metrics([[0.6], [0.1]], {"read": [0.02, 0.03]})
    assert forgets["average_wer"] < keeps["average_wer"]
    assert dev_objective(keeps) < dev_objective(forgets)


def test_unfinished_runs_and_runs_without_general_sets_are_refused():
    with pytest.raises(ValueError, match="not finished"):
        dev_objective({"complete": False, "rows_done": 2})
    with pytest.raises(ValueError, match="no general set"):
        dev_objective(_metrics([[0.6], [0.1]], {}))
