"""Continual-learning metrics against a WER matrix computed by hand."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clasr.metrics.continual import (
    METRIC_DEFINITIONS,
    average_wer,
    backward_transfer,
    continual_metrics,
    forgetting,
    forward_transfer,
    general_change,
    learning,
    linear_weights,
)

# Three tasks. Row 0 = foundation model, row i = after training through task i;
# column j-1 = task j's test set.
R = [
    [0.40, 0.30, 0.20],  # foundation
    [0.10, 0.35, 0.25],  # after task 1: task 1 learned (0.40 -> 0.10)
    [0.08, 0.12, 0.22],  # after task 2: task 2 learned, and it improved task 1 (0.10 -> 0.08)
    [0.25, 0.08, 0.05],  # after task 3: task 1 forgotten (0.25), task 2 improved (0.12 -> 0.08)
]
# average WER = (0.25 + 0.08 + 0.05) / 3                      = 0.38 / 3
# BWT         = mean(0.10 - 0.25, 0.12 - 0.08) = mean(-0.15, 0.04)          = -0.055
# forgetting  = mean(0.25 - min(0.10, 0.08), 0.08 - min(0.35, 0.12))
#             = mean(0.17, -0.04)                                           = 0.065
# learning    = mean(0.40 - 0.10, 0.35 - 0.12, 0.22 - 0.05) = 0.70 / 3
# FWT         = mean(R[0][2] - R[1][2], R[0][3] - R[2][3]) = mean(0.30 - 0.35, 0.20 - 0.22) = -0.035
GENERAL = [0.05, 0.07, 0.09, 0.11]  # general change = 0.11 - 0.05 = 0.06


def test_average_wer():
    assert average_wer(R) == pytest.approx(0.38 / 3)


def test_backward_transfer_is_negative_under_forgetting():
    assert backward_transfer(R) == pytest.approx(-0.055)


def test_backward_transfer_is_positive_when_a_later_task_helps():
    improved = np.array(R)
    improved[3, 0] = 0.10  # task 1 back at its just-trained WER; task 2 still improved
    assert backward_transfer(improved) == pytest.approx(0.02)


def test_forgetting_is_relative_to_the_best_row_after_training_started():
    assert forgetting(R) == pytest.approx(0.065)


def test_forgetting_ignores_the_foundation_row():
    better_foundation = np.array(R)
    better_foundation[0] = [0.0, 0.0, 0.0]
    assert forgetting(better_foundation) == pytest.approx(0.065)


def test_learning():
    assert learning(R) == pytest.approx(0.70 / 3)


def test_forward_transfer_is_negative_when_earlier_tasks_raised_the_wer():
    assert forward_transfer(R) == pytest.approx(-0.035)


def test_forward_transfer_is_positive_when_earlier_tasks_helped():
    helped = np.array(R)
    helped[1, 1], helped[2, 2] = 0.20, 0.10  # task 2 at 0.20 (was 0.30), task 3 at 0.10 (was 0.20) before training
    assert forward_transfer(helped) == pytest.approx(0.10)
    assert forward_transfer([[0.4], [0.1]]) is None


def test_forward_transfer_ignores_the_diagonal_and_later_rows():
    changed = np.array(R)
    changed[[1, 2, 3], [0, 1, 2]] = 0.9  # the diagonal (just trained)
    changed[3] = 0.5  # the final row
    assert forward_transfer(changed) == pytest.approx(-0.035)


@pytest.mark.parametrize("metric", ["average_wer", "backward_transfer", "learning", "forward_transfer"])
@pytest.mark.parametrize("tasks", [1, 2, 4])
def test_linear_weights_reproduce_each_linear_metric(metric, tasks):
    matrix = np.random.default_rng(tasks).uniform(0, 1, size=(tasks + 1, tasks))
    weights = linear_weights(metric, tasks)
    function = {"average_wer": average_wer, "backward_transfer": backward_transfer, "learning": learning,
                "forward_transfer": forward_transfer}[metric]
    if function(matrix) is None:
        assert weights is None
    else:
        assert float((weights * matrix).sum()) == pytest.approx(function(matrix))


def test_forgetting_has_no_linear_weights():
    with pytest.raises(ValueError, match="not a linear metric"):
        linear_weights("forgetting", 3)


def test_general_change():
    change = general_change(GENERAL)
    assert change["initial"] == 0.05 and change["final"] == 0.11
    assert change["change"] == pytest.approx(0.06)


def test_single_task_has_no_backward_metrics():
    one_task = [[0.4], [0.1]]
    assert average_wer(one_task) == pytest.approx(0.1)
    assert learning(one_task) == pytest.approx(0.3)
    assert backward_transfer(one_task) is None
    assert forgetting(one_task) is None


def test_continual_metrics_bundle_is_json_able():
    metrics = continual_metrics(np.array(R), general={"arctic": GENERAL})
    assert json.loads(json.dumps(metrics)) == metrics
    assert metrics["tasks"] == 3
    assert metrics["average_wer"] == pytest.approx(0.38 / 3)
    assert metrics["backward_transfer"] == pytest.approx(-0.055)
    assert metrics["forgetting"] == pytest.approx(0.065)
    assert metrics["learning"] == pytest.approx(0.70 / 3)
    assert metrics["general"]["arctic"]["change"] == pytest.approx(0.06)
    assert set(metrics) - {"tasks"} == set(METRIC_DEFINITIONS)


def test_continual_metrics_single_task_uses_none():
    metrics = continual_metrics([[0.4], [0.1]])
    assert metrics["backward_transfer"] is None and metrics["forgetting"] is None
    assert metrics["general"] == {}


def test_every_definition_states_a_direction():
    for name, definition in METRIC_DEFINITIONS.items():
        assert "\n" not in definition
        assert any(word in definition for word in ("better", "positive", "negative")), name


@pytest.mark.parametrize(
    "bad",
    [
        [[0.1, 0.2], [0.1, 0.2]],  # T×T
        [[0.1], [0.2], [0.3]],  # (T+2)×T
        [0.1, 0.2],  # a vector
        np.zeros((1, 0)),  # T = 0
        [[0.1, 0.2], [0.3]],  # ragged
    ],
)
@pytest.mark.parametrize("metric", [average_wer, backward_transfer, forgetting, learning])
def test_shape_errors_name_the_expected_shape(metric, bad):
    with pytest.raises(ValueError, match=r"\(T\+1\)×T"):
        metric(bad)


def test_shape_error_reports_the_shape_received():
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        continual_metrics([[0.1, 0.2], [0.1, 0.2]])


def test_incomplete_matrix_is_rejected():
    partial = np.array(R)
    partial[3, 2] = math.nan
    with pytest.raises(ValueError, match=r"incomplete.*\(3, 2\)"):
        continual_metrics(partial)


def test_general_set_length_must_match_rows():
    with pytest.raises(ValueError, match="arctic"):
        continual_metrics(R, general={"arctic": [0.05, 0.11]})


@pytest.mark.parametrize("bad", [[0.1], [[0.1, 0.2]], [0.1, math.nan]])
def test_general_change_rejects_bad_vectors(bad):
    with pytest.raises(ValueError):
        general_change(bad)


matrices = st.integers(1, 4).flatmap(
    lambda tasks: arrays(np.float64, (tasks + 1, tasks), elements=st.floats(0, 2))
)


@settings(max_examples=50, deadline=None)
@given(matrices)
def test_forgetting_is_at_least_minus_bwt(matrix):
    if matrix.shape[1] > 1:
        assert forgetting(matrix) >= -backward_transfer(matrix) - 1e-12


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.floats(0, 2))
def test_a_model_that_never_changes_scores_zero(tasks, wer):
    frozen = np.full((tasks + 1, tasks), wer)
    assert learning(frozen) == 0
    assert average_wer(frozen) == pytest.approx(wer)
    if tasks > 1:
        assert backward_transfer(frozen) == 0 and forgetting(frozen) == 0
