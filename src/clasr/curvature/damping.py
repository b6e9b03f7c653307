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

A :class:`Damping` with ``mode="absolute"`` is the reference code's rule instead: the same
fixed value added to both factors, λ_A = λ_G = value (floored the same way). A diagonal
curvature F (e.g. an embedding's empirical Fisher) is damped by the same two rules,
λ = ρ · mean(F) (ρ times its mean eigenvalue) or λ = value (:func:`diagonal_damping`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

DAMPING_FLOOR = 1e-8

DampingMode = Literal["relative", "absolute"]


@dataclass(frozen=True)
class Damping:
    """A damping value and how it is read: ``relative`` (ρ, × the factors' mean eigenvalues,
    π-split) or ``absolute`` (the value itself, added to every factor)."""

    value: float
    mode: DampingMode = "relative"

    def __post_init__(self) -> None:
        if self.value < 0 or self.mode not in ("relative", "absolute"):
            raise ValueError(f"need damping ≥ 0 and mode relative|absolute, got {self.value}, {self.mode!r}")


def as_damping(damping: float | Damping) -> Damping:
    """A bare number is a relative damping ρ."""
    return damping if isinstance(damping, Damping) else Damping(damping)


def mean_eigenvalue(factor: torch.Tensor) -> float:
    """tr(M) / dim(M), summed in float64."""
    return float(torch.diagonal(factor).double().sum()) / factor.shape[0]


def pi_damping(mean_a: float, mean_g: float, relative: float, floor: float = DAMPING_FLOOR) -> tuple[float, float]:
    """(λ_A, λ_G) = (max(√ρ · m_A, floor), max(√ρ · m_G, floor)) for relative damping ρ."""
    if relative < 0 or floor <= 0:
        raise ValueError(f"need relative damping ≥ 0 and floor > 0, got {relative}, {floor}")
    scale = math.sqrt(relative)
    return max(scale * mean_a, floor), max(scale * mean_g, floor)


def factor_damping(
    mean_a: float, mean_g: float, damping: float | Damping, floor: float = DAMPING_FLOOR
) -> tuple[float, float]:
    """(λ_A, λ_G) of a pair with mean eigenvalues (m_A, m_G): :func:`pi_damping` for a relative
    damping (a bare number is one), (max(value, floor), max(value, floor)) for an absolute one."""
    damping = as_damping(damping)
    if damping.mode == "absolute":
        return max(damping.value, floor), max(damping.value, floor)
    return pi_damping(mean_a, mean_g, damping.value, floor)


def kronecker_damping(
    A: torch.Tensor, G: torch.Tensor, damping: float | Damping, floor: float = DAMPING_FLOOR
) -> tuple[float, float]:
    """(λ_A, λ_G) of the pair (A, G): :func:`factor_damping` of their traces (a bare number is a
    relative damping ρ)."""
    return factor_damping(mean_eigenvalue(A), mean_eigenvalue(G), damping, floor)


def diagonal_damping(F: torch.Tensor, damping: float | Damping, floor: float = DAMPING_FLOOR) -> float:
    """λ of a diagonal curvature F (stored as its diagonal): max(ρ · mean(F), floor) for a
    relative damping ρ, max(value, floor) for an absolute one."""
    damping = as_damping(damping)
    scale = float(F.double().mean()) if damping.mode == "relative" else 1.0
    return max(damping.value * scale, floor)
