"""Curvature checks written against mutmut's survivors (issue 18, ``make mutate MODULES=curvature``):
the diagonal damping, solve and Fisher against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clasr.curvature import DAMPING_FLOOR, Damping, diagonal_damping, diagonal_fisher, diagonal_solve

pytestmark = pytest.mark.usefixtures("one_thread")


def test_diagonal_damping_is_rho_times_the_mean_or_the_absolute_value_floored():
    F = torch.tensor([1.0, 2.0, 3.0, 6.0])  # mean 3
    assert diagonal_damping(F, 0.5) == pytest.approx(1.5)
    assert diagonal_damping(F, Damping(0.5, "relative")) == pytest.approx(1.5)
    assert diagonal_damping(F, Damping(0.25, "absolute")) == 0.25
    assert diagonal_damping(torch.zeros(3), 0.5) == DAMPING_FLOOR
    assert diagonal_damping(F, Damping(0.0, "absolute")) == DAMPING_FLOOR


def test_diagonal_solve_divides_by_the_summed_clamped_damped_diagonals():
    F1 = torch.tensor([[4.0, -1.0], [0.0, 2.0]])  # mean 1.25; the -1 is round-off, clamped to 0
    F2 = torch.tensor([[1.0, 1.0], [3.0, 3.0]])  # mean 2
    dW = torch.tensor([[1.0, 2.0], [3.0, -4.0]])
    lam1, lam2 = 0.1 * 1.25, 0.1 * 2.0  # ρ = 0.1 times each term's mean (taken before clamping)
    total = np.array([[4 + lam1 + 1 + lam2, 0 + lam1 + 1 + lam2], [0 + lam1 + 3 + lam2, 2 + lam1 + 3 + lam2]])
    X = diagonal_solve([F1, F2], dW, 0.1)
    assert X.dtype == torch.float32
    np.testing.assert_allclose(X.numpy(), dW.numpy() / total, rtol=1e-6)
    with pytest.raises(ValueError, match="no diagonal curvature"):
        diagonal_solve([], dW, 0.1)


def test_diagonal_fisher_sums_squared_per_example_gradients_over_all_terms():
    """ℓ_n = (w·x_n − y_n)² has ∂ℓ_n/∂w = 2 (w·x_n − y_n) x_n; F = Σ_n g_n² / Σ_n M_n."""
    w = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    b = torch.tensor([0.3], requires_grad=True)  # not in the loss: no gradient, F stays 0
    xs = [np.array([1.0, 2.0, 0.0]), np.array([-1.0, 0.5, 3.0])]
    ys, terms = [1.0, -2.0], [2, 3]

    def example(x, y, m):
        return lambda: (((w * torch.tensor(x, dtype=torch.float32)).sum() - y) ** 2, m)

    F = diagonal_fisher({"w": w, "b": b}, [example(x, y, m) for x, y, m in zip(xs, ys, terms)])
    w0 = np.array([0.5, -1.0, 2.0])
    expected = sum((2 * (w0 @ x - y) * x) ** 2 for x, y in zip(xs, ys)) / sum(terms)
    np.testing.assert_allclose(F["w"].numpy(), expected, rtol=1e-6)
    assert F["b"].tolist() == [0.0]
    assert w.grad is None
