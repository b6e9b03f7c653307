"""Which singular directions SSVD / SSVD-O rotate, checked by hand against the papers' text.

SSVD (arXiv 2509.02830, abstract): the *right* singular vectors (input / acoustic side) of the
leading singular values are rotated, the left ones (output / semantic side) stay fixed; SSVD-O
(arXiv 2601.12600) adds an outer rotation of the left singular vectors. The weight below has
its singular values in scrambled order, so an implementation that rotated the first columns of
W, the smallest singular values, or the wrong side would fail.

W = diag(1, 4, 2, 3): singular values 4, 3, 2, 1 with left = right vectors e1, e3, e2, e0 (up to
a shared sign per pair). The Cayley map of K = [[0, p], [−p, 0]] at p = 1 is
G = (I + K)⁻¹(I − K) = [[0, −1], [1, 0]], a quarter turn of the top-2 block. Then, by hand:

- inner (SSVD, k = 2): W' = U₂ diag(4, 3) Gᵀ V₂ᵀ + rest. Output row e1 keeps singular value 4
  and now reads input e3, row e3 (value 3) reads input e1: |W'[1, 3]| = 4, |W'[3, 1]| = 3,
  W'[1, 1] = W'[3, 3] = 0, opposite signs; rows and columns 0 and 2 (singular values 1, 2)
  untouched.
- outer (k' = 2, k = 0): W' = U₂ G diag(4, 3) V₂ᵀ + rest. Input column e1 keeps 4 and now writes
  output e3: |W'[3, 1]| = 4, |W'[1, 3]| = 3.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clasr.adapters.ssvd import SSVDLinear


def diagonal_linear() -> nn.Linear:
    linear = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.diag(torch.tensor([1.0, 4.0, 2.0, 3.0])))
    return linear


def quarter_turn(upper: nn.Parameter) -> None:
    with torch.no_grad():
        upper.fill_(1.0)  # p = 1: Cayley map = [[0, −1], [1, 0]]


def test_inner_rotation_turns_the_input_vectors_of_the_top_singular_values():
    adapter = SSVDLinear(diagonal_linear(), k_in=2, k_out=0)
    quarter_turn(adapter.inner)
    w = adapter.adapted_weight().detach()
    assert torch.allclose(w[[0, 2]][:, [0, 2]], torch.diag(torch.tensor([1.0, 2.0])), atol=1e-6)
    assert torch.allclose(w[[0, 2]][:, [1, 3]], torch.zeros(2, 2), atol=1e-6)
    assert torch.allclose(w[[1, 3]][:, [0, 2]], torch.zeros(2, 2), atol=1e-6)
    assert abs(w[1, 1]) < 1e-6 and abs(w[3, 3]) < 1e-6
    assert abs(w[1, 3].item()) == pytest.approx(4.0, abs=1e-5) and abs(w[3, 1].item()) == pytest.approx(3.0, abs=1e-5)
    assert w[1, 3] * w[3, 1] < 0
    # left vectors fixed: every output row keeps its singular value
    assert torch.allclose(w.norm(dim=1), torch.tensor([1.0, 4.0, 2.0, 3.0]), atol=1e-6)


def test_outer_rotation_turns_the_output_vectors_of_the_top_singular_values():
    adapter = SSVDLinear(diagonal_linear(), k_in=0, k_out=2)
    quarter_turn(adapter.outer)
    w = adapter.adapted_weight().detach()
    assert abs(w[3, 1].item()) == pytest.approx(4.0, abs=1e-5) and abs(w[1, 3].item()) == pytest.approx(3.0, abs=1e-5)
    assert abs(w[1, 1]) < 1e-6 and abs(w[3, 3]) < 1e-6
    # right vectors fixed: every input column keeps its singular value
    assert torch.allclose(w.norm(dim=0), torch.tensor([1.0, 4.0, 2.0, 3.0]), atol=1e-6)


def test_shift_moves_only_the_top_singular_values():
    adapter = SSVDLinear(diagonal_linear(), k_in=2, k_out=0)
    with torch.no_grad():
        adapter.shift.copy_(torch.tensor([0.5, -1.0]))  # σ = 4 → 4.5, σ = 3 → 2
    w = adapter.adapted_weight().detach()
    assert torch.allclose(w, torch.diag(torch.tensor([1.0, 4.5, 2.0, 2.0])), atol=1e-6)

