"""The one damping rule for a Kronecker pair (A, G): relative to the factors' mean eigenvalues, π-split.

With the factors' mean eigenvalues m_A = tr(A)/d_A and m_G = tr(G)/d_G, a relative damping
ρ ≥ 0 asks for a total damping λ = ρ · m_A · m_G of A ⊗ G (ρ times the mean eigenvalue of
the Kronecker product), split between the factors as in Martens & Grosse (2015, §6.3) with
π = √(m_A / m_G)::

    λ_A = π √λ = √ρ · m_A,        λ_G = √λ / π = √ρ · m_G,

each raised to an absolute ``floor`` (1e-8) so that an all-zero or rank-deficient factor
still has an invertible damped version. The traces are those of the factors as stored
(round-off's tiny negative eigenvalues included), so every solve of
:mod:`clasr.curvature.solve` — Cholesky, eigendecomposition, conjugate gradient — damps a
pair with exactly the same (λ_A, λ_G).
"""

from __future__ import annotations

import math

import torch

DAMPING_FLOOR = 1e-8


def mean_eigenvalue(factor: torch.Tensor) -> float:
    """tr(M) / dim(M), summed in float64."""
    return float(torch.diagonal(factor).double().sum()) / factor.shape[0]


def pi_damping(mean_a: float, mean_g: float, relative: float, floor: float = DAMPING_FLOOR) -> tuple[float, float]:
    """(λ_A, λ_G) = (max(√ρ · m_A, floor), max(√ρ · m_G, floor)) for relative damping ρ."""
    if relative < 0 or floor <= 0:
        raise ValueError(f"need relative damping ≥ 0 and floor > 0, got {relative}, {floor}")
    scale = math.sqrt(relative)
    return max(scale * mean_a, floor), max(scale * mean_g, floor)


def kronecker_damping(
    A: torch.Tensor, G: torch.Tensor, relative: float, floor: float = DAMPING_FLOOR
) -> tuple[float, float]:
    """(λ_A, λ_G) of the pair (A, G) for relative damping ρ: :func:`pi_damping` of their traces."""
    return pi_damping(mean_eigenvalue(A), mean_eigenvalue(G), relative, floor)
