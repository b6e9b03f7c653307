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
    EigenInverse,
    KFACCollector,
    KFACFactors,
    collect_kfac,
    damped_solve,
    conjugate_gradient,
    diagonal_damping,
    diagonal_fisher,
    diagonal_solve,
    kronecker_damping,
    kronecker_solve,
    mean_eigenvalue,
    pi_damping,
    psd_projection,
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
    with pytest.raises(ValueError, match="^no diagonal curvature to solve with$"):
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
    with pytest.raises(ValueError, match=r"^need damping ≥ 0 and mode relative\|absolute, got -1.0, 'relative'"):
        Damping(-1.0)
    with pytest.raises(ValueError, match=r"^need damping ≥ 0 and mode relative\|absolute, got 1.0, 'fixed'"):
        Damping(1.0, "fixed")
    assert Damping(0.0).value == 0.0  # zero damping is allowed (only the floor remains)
    with pytest.raises(ValueError, match=r"^need relative damping ≥ 0 and floor > 0, got -0.1, 1e-08"):
        pi_damping(1.0, 1.0, -0.1)
    with pytest.raises(ValueError, match=r"^need relative damping ≥ 0 and floor > 0, got 0.1, 0.0"):
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
    with pytest.raises(ValueError, match=r"^no sequence kind for layers \['fc2'\]"):
        KFACCollector(layers, {"fc1": "seq"})
    collector = KFACCollector(layers, {"fc1": "seq", "fc2": "out"})
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match=r"^no mask for sequence kinds \['out'\]"):
        collector.step({"seq": torch.ones(2, 5, dtype=torch.bool)}, lambda: net(x).sum())
    with pytest.raises(ValueError, match=r"^fc1: input \(2, 5, 3\) does not match its 'seq' mask \(2, 4\)"):
        collector.step({"seq": torch.ones(2, 4, dtype=torch.bool), "out": torch.ones(2, 5, dtype=torch.bool)},
                       lambda: net(x).sum())
    empty = KFACCollector(layers, {"fc1": "seq", "fc2": "out"})
    with pytest.raises(ValueError, match=r"^no real positions reached layers \['fc1', 'fc2'\]"):
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


def test_collector_sums_batches_in_float64():
    """Three one-row batches whose off-diagonal products are 1, 1e8 and −1e8 (each exact in
    float32): their float64 sum is 1, a float32 running sum would round 1 + 1e8 to 1e8 and end at 0."""
    layer = nn.Linear(2, 1, bias=False)
    collector = KFACCollector({"fc": layer}, {"fc": "t"})
    for row in ([1.0, 1.0], [1e4, 1e4], [1e4, -1e4]):
        x = torch.tensor([row])
        collector.step({"t": torch.ones(1, dtype=torch.bool)}, lambda: layer(x).sum())
    A = collector.factors().A["fc"]
    assert float(A[0, 1]) == pytest.approx(1 / 3, rel=1e-6)
    assert float(A[0, 0]) == pytest.approx((1 + 2e8) / 3, rel=1e-7)


def test_mean_eigenvalue_sums_the_diagonal_in_float64():
    assert mean_eigenvalue(torch.diag(torch.tensor([1e8, 1.0, 1.0]))) == (1e8 + 2) / 3  # float32: 1e8 / 3


def test_integer_masks_select_positions_like_boolean_ones():
    net = TwoLayers().eval()
    x = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[1, 1, 0], [0, 1, 0]])
    layers, kinds = {"fc1": net.fc1, "fc2": net.fc2}, {"fc1": "t", "fc2": "t"}
    with_ints = collect_kfac(net, [x], layers, kinds, lambda _: {"t": mask}, lambda b: net(b).sum())
    with_bools = collect_kfac(net, [x], layers, kinds, lambda _: {"t": mask.bool()}, lambda b: net(b).sum())
    assert with_ints.counts == with_bools.counts == {"fc1": 3, "fc2": 3}
    for name in layers:
        assert torch.equal(with_ints.A[name], with_bools.A[name]) and torch.equal(with_ints.G[name], with_bools.G[name])


def test_factor_file_layout_is_the_documented_format(tmp_path):
    """The stored layout (keys <layer>.A / <layer>.G, metadata format and counts) is what other
    runs' files are read by, so it is checked against safetensors directly."""
    from safetensors import safe_open

    factors = KFACFactors({"fc": torch.eye(2)}, {"fc": 2 * torch.eye(3)}, {"fc": 5})
    factors.save(tmp_path / "f.safetensors")
    with safe_open(tmp_path / "f.safetensors", framework="pt") as f:
        assert f.metadata() == {"format": "clasr.kfac/1", "counts": '{"fc": 5}'}
        assert sorted(f.keys()) == ["fc.A", "fc.G"]
        assert torch.equal(f.get_tensor("fc.G"), 2 * torch.eye(3))


def test_adding_factors_of_other_layers_or_a_number_is_refused():
    f = KFACFactors({"a": torch.eye(2)}, {"a": torch.eye(2)}, {"a": 1})
    with pytest.raises(ValueError, match="^cannot add K-FAC factors of different layer sets$"):
        f + KFACFactors({"b": torch.eye(2)}, {"b": torch.eye(2)}, {"b": 1})
    assert sum([f]) is f  # sum() starts from 0
    with pytest.raises(TypeError):
        1 + f  # only sum()'s 0 is absorbed


def test_non_finite_factors_are_refused_by_name():
    for solve in (lambda A: EigenInverse(A, torch.eye(1)), lambda A: psd_projection(A)):
        with pytest.raises(ValueError, match="^K-FAC factor has non-finite entries$"):
            solve(torch.tensor([[float("inf")]]))


def _two_pairs_and_dense_operator(scale: float):
    """Two (A, G) pairs with different SPD factors (A 3 × 3, G 2 × 2), a ΔW 2 × 3 of size ``scale``,
    and numpy's dense operator Σ_k (A_k + λ_A,k I) ⊗ (G_k + λ_G,k I) at relative damping 0.05."""
    rng = np.random.default_rng(11)
    pairs = []
    for _ in range(2):
        a, g = rng.standard_normal((3, 3)), rng.standard_normal((2, 2))
        pairs.append((torch.from_numpy(a @ a.T), torch.from_numpy(g @ g.T)))
    dW = scale * torch.from_numpy(rng.standard_normal((2, 3)))
    dense = sum(
        np.kron(A.numpy() + la * np.eye(3), G.numpy() + lg * np.eye(2))
        for (A, G), (la, lg) in ((p, kronecker_damping(*p, 0.05)) for p in pairs)
    )
    return pairs, dW, dense


def test_conjugate_gradient_reaches_the_dense_solve_within_n_iterations():
    """Preconditioned CG on an SPD system with n unknowns is exact after n steps (in exact
    arithmetic): two pairs with different factors, ΔW 2 × 3 (n = 6), against numpy's dense
    solve of Σ_k (A_k + λ_A,k I) ⊗ (G_k + λ_G,k I). A wrong step or direction update needs more."""
    pairs, dW, dense = _two_pairs_and_dense_operator(scale=1.0)
    expected = np.linalg.solve(dense, dW.numpy().flatten(order="F")).reshape((2, 3), order="F")
    X, residual = conjugate_gradient(pairs, dW, 0.05, tolerance=0.0, max_iterations=6)
    assert residual < 1e-10
    np.testing.assert_allclose(X.numpy(), expected, rtol=1e-8, atol=1e-12)
    X1, residual1 = conjugate_gradient(pairs, dW, 0.05, tolerance=0.0, max_iterations=1)
    assert residual1 > 1e-6  # one step is not enough: the test can tell iterations apart
    X0, residual0 = kronecker_solve(pairs, torch.zeros(2, 3, dtype=torch.float64), 0.05, tolerance=0.0)
    assert residual0 == 0.0 and not X0.any()  # ΔW = 0 stops at once, even at tolerance 0
    X, residual = kronecker_solve(pairs, dW, 0.05)  # the default tolerance, 1e-6
    assert residual <= 1e-6
    np.testing.assert_allclose(X.numpy(), expected, rtol=1e-5)


def test_conjugate_gradient_stops_at_the_first_relative_residual_under_tolerance():
    """With ‖ΔW‖ ≈ 2400 the relative residual after k steps (k = 0..6, tolerance 0) first falls
    under 1e-2 at some k*; a solve with tolerance 1e-2 must return exactly that iterate and
    its relative residual ‖ΔW − L(X)‖ / ‖ΔW‖, recomputed here from numpy's dense operator."""
    pairs, dW, dense = _two_pairs_and_dense_operator(scale=1e3)
    b = dW.numpy().flatten(order="F")
    steps = [conjugate_gradient(pairs, dW, 0.05, tolerance=0.0, max_iterations=k) for k in range(7)]
    for X, residual in steps:
        relative = np.linalg.norm(dense @ X.numpy().flatten(order="F") - b) / np.linalg.norm(b)
        assert residual == pytest.approx(relative, rel=1e-6, abs=1e-14)
    first = next(k for k, (_, residual) in enumerate(steps) if residual <= 1e-2)
    assert 0 < first < 6
    X, residual = conjugate_gradient(pairs, dW, 0.05, tolerance=1e-2, max_iterations=50)
    assert torch.equal(X, steps[first][0]) and residual == steps[first][1]


def test_eigen_inverse_honours_a_given_floor():
    """Zero relative damping leaves only the floor: with floor 0.5, (A + 0.5 I)⁻¹ and (G + 0.5 I)⁻¹."""
    A, G = torch.diag(torch.tensor([2.0, 0.0], dtype=torch.float64)), torch.eye(1, dtype=torch.float64)
    inverse = EigenInverse(A, G)
    assert inverse.damping(0.0, floor=0.5) == (0.5, 0.5)
    X = inverse.solve(torch.ones(1, 2, dtype=torch.float64), 0.0, floor=0.5)
    np.testing.assert_allclose(X.numpy(), [[1 / (1.5 * 2.5), 1 / (1.5 * 0.5)]], rtol=1e-12)


def _explicit_solve(A, G, dW, lam_a, lam_g):
    """vec-form oracle: ((A + λ_A I) ⊗ (G + λ_G I)) vec(X) = vec(ΔW), column-stacking."""
    n_out, n_in = dW.shape
    damped = np.kron(A.numpy() + lam_a * np.eye(n_in), G.numpy() + lam_g * np.eye(n_out))
    return np.linalg.solve(damped, dW.numpy().flatten(order="F")).reshape((n_out, n_in), order="F")


def test_cholesky_path_alone_equals_the_explicit_kronecker_solve(monkeypatch):
    """Well-conditioned factors must be solved by the Cholesky factors themselves: the eigen
    fallback is disabled here, so a wrongly damped block (A − λI, λ/I) cannot hide behind it."""
    import clasr.curvature.solve as solve

    def no_fallback(*args, **kwargs):
        raise AssertionError("the eigen fallback was taken for positive definite factors")

    monkeypatch.setattr(solve, "EigenInverse", no_fallback)
    rng = np.random.default_rng(21)
    a, g = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    A = torch.from_numpy(a @ a.T + 4 * np.eye(4))
    G = torch.from_numpy(g @ g.T + 4 * np.eye(3))
    dW = torch.from_numpy(rng.standard_normal((3, 4)))
    for damping in (0.3, Damping(0.0, "relative")):
        lam_a, lam_g = kronecker_damping(A, G, damping)
        np.testing.assert_allclose(solve.damped_solve(A, G, dW, damping).numpy(), _explicit_solve(A, G, dW, lam_a, lam_g),
                                   rtol=1e-10)
    X = solve.damped_solve(A, G, dW, 0.0, floor=0.5)  # only the floor damps: λ_A = λ_G = 0.5
    np.testing.assert_allclose(X.numpy(), _explicit_solve(A, G, dW, 0.5, 0.5), rtol=1e-10)


def test_damped_solve_fallback_keeps_the_damping_and_floor():
    """A factor with a clearly negative eigenvalue (−1) fails Cholesky even with floor 0.5; the
    eigen fallback clamps it to 0 and damps both factors by the same floor: X = ΔW ⊘ (1.5 · (2.5, 0.5))."""
    A, G = torch.diag(torch.tensor([2.0, -1.0], dtype=torch.float64)), torch.eye(1, dtype=torch.float64)
    X = damped_solve(A, G, torch.ones(1, 2, dtype=torch.float64), 0.0, floor=0.5)
    np.testing.assert_allclose(X.numpy(), [[1 / (1.5 * 2.5), 1 / (1.5 * 0.5)]], rtol=1e-12)
    with pytest.raises(ValueError, match="^no Kronecker pair to solve with$"):
        kronecker_solve([], torch.ones(1, 2), 0.1)


def test_absolute_damping_adds_the_same_value_to_both_factors_floored():
    """The reference code's rule: λ_A = λ_G = value whatever the factors' scales, at least the floor."""
    A, G = 100 * torch.eye(3, dtype=torch.float64), 0.01 * torch.eye(2, dtype=torch.float64)
    assert kronecker_damping(A, G, Damping(0.2, "absolute")) == (0.2, 0.2)
    assert kronecker_damping(A, G, Damping(0.0, "absolute")) == (DAMPING_FLOOR, DAMPING_FLOOR)
    assert kronecker_damping(A, G, Damping(0.2, "absolute"), floor=0.3) == (0.3, 0.3)
    dW = torch.ones(2, 3, dtype=torch.float64)
    np.testing.assert_allclose(damped_solve(A, G, dW, Damping(0.2, "absolute")).numpy(),
                               _explicit_solve(A, G, dW, 0.2, 0.2), rtol=1e-12)


def test_a_tracked_layer_outside_the_loss_gets_its_inputs_and_no_gradient():
    """A layer that runs but does not reach the loss (its output unused) must not stop the pass:
    its A is still the inputs' average, its G stays 0 (no output gradient reaches it)."""
    main, side = nn.Linear(2, 1, bias=False), nn.Linear(2, 3)
    collector = KFACCollector({"main": main, "side": side}, {"main": "t", "side": "t"})
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])

    def summed_loss():
        side(x)  # runs, output discarded
        return main(x).sum()

    collector.step({"t": torch.ones(2, dtype=torch.bool)}, summed_loss)
    factors = collector.factors()
    torch.testing.assert_close(factors.A["side"], x.T @ x / 2)
    assert not factors.G["side"].any() and factors.G["main"].item() == 1.0  # ∂L/∂s = 1 at both positions
