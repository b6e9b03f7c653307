"""Curvature checks written against mutmut's survivors (issue 18, ``make mutate MODULES=curvature``):
the diagonal damping, solve and Fisher and a two-layer K-FAC against hand-computed values, and
bad input refused with messages that name it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from clasr.curvature import (
    DAMPING_FLOOR,
    Damping,
    KFACCollector,
    collect_kfac,
    diagonal_damping,
    diagonal_fisher,
    diagonal_solve,
    pi_damping,
)

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


# ---------------------------------------------------------------- bad input is named


def test_bad_damping_is_refused_by_value():
    with pytest.raises(ValueError, match=r"need damping ≥ 0 and mode relative\|absolute, got -1.0, 'relative'"):
        Damping(-1.0)
    with pytest.raises(ValueError, match=r"need damping ≥ 0 and mode relative\|absolute, got 1.0, 'fixed'"):
        Damping(1.0, "fixed")
    assert Damping(0.0).value == 0.0  # zero damping is allowed (only the floor remains)
    with pytest.raises(ValueError, match=r"need relative damping ≥ 0 and floor > 0, got -0.1, 1e-08"):
        pi_damping(1.0, 1.0, -0.1)
    with pytest.raises(ValueError, match=r"need relative damping ≥ 0 and floor > 0, got 0.1, 0.0"):
        pi_damping(1.0, 1.0, 0.1, floor=0.0)
    assert pi_damping(4.0, 9.0, 0.0, floor=1e-3) == (1e-3, 1e-3)


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(3, 4), nn.Linear(4, 2)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        return self.fc2(self.dropout(torch.tanh(self.fc1(input=x))))  # fc1 called with a keyword input


def test_collector_names_the_layer_kind_and_mask_that_are_missing_or_misshaped():
    net = TwoLayers()
    layers = {"fc1": net.fc1, "fc2": net.fc2}
    with pytest.raises(ValueError, match=r"no sequence kind for layers \['fc2'\]"):
        KFACCollector(layers, {"fc1": "seq"})
    collector = KFACCollector(layers, {"fc1": "seq", "fc2": "out"})
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match=r"no mask for sequence kinds \['out'\]"):
        collector.step({"seq": torch.ones(2, 5, dtype=torch.bool)}, lambda: net(x).sum())
    with pytest.raises(ValueError, match=r"fc1: input \(2, 5, 3\) does not match its 'seq' mask \(2, 4\)"):
        collector.step({"seq": torch.ones(2, 4, dtype=torch.bool), "out": torch.ones(2, 5, dtype=torch.bool)},
                       lambda: net(x).sum())
    empty = KFACCollector(layers, {"fc1": "seq", "fc2": "out"})
    with pytest.raises(ValueError, match=r"no real positions reached layers \['fc1', 'fc2'\]"):
        empty.factors()


def test_collect_kfac_reads_at_most_max_batches_in_eval_mode_and_restores_the_model():
    """Factors of the first batch only, against the hand-built products of that batch
    (dropout off: with it on, the second layer's inputs would be random)."""
    net = TwoLayers()
    net.train()
    net.fc2.weight.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(2, 3, 3, generator=g) for _ in range(3)]
    mask = torch.tensor([[True, True, False], [True, False, False]])

    def summed_loss(x):
        assert not net.training and net.fc2.weight.requires_grad
        return (net(x)[mask] ** 2).sum()

    factors = collect_kfac(net, batches, {"fc1": net.fc1, "fc2": net.fc2}, {"fc1": "t", "fc2": "t"},
                           lambda x: {"t": mask}, summed_loss, max_batches=1)
    assert net.training and net.dropout.training and not net.fc2.weight.requires_grad
    net.eval()
    x = batches[0]
    hidden = torch.tanh(net.fc1(x))
    out = net.fc2(hidden)
    # output gradients by hand: ∂L/∂out = 2 out; ∂L/∂s1 = (W2ᵀ ∂L/∂out) ⊙ (1 − tanh²)
    d_out = 2 * out.detach()[mask]
    d_s1 = (d_out @ net.fc2.weight.detach()) * (1 - hidden.detach()[mask] ** 2)
    n = int(mask.sum())
    torch.testing.assert_close(factors.A["fc1"], (x.detach()[mask].T @ x.detach()[mask]) / n)
    torch.testing.assert_close(factors.A["fc2"], (hidden.detach()[mask].T @ hidden.detach()[mask]) / n)
    torch.testing.assert_close(factors.G["fc2"], d_out.T @ d_out / n)
    torch.testing.assert_close(factors.G["fc1"], d_s1.T @ d_s1 / n)
    assert factors.counts == {"fc1": n, "fc2": n}
