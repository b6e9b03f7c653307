"""π-damped inverse of a K-FAC block, through cached float64 eigendecompositions.

Damping is relative: with the factors' mean eigenvalues m_A = tr(A)/d_A and
m_G = tr(G)/d_G, a relative damping ρ ≥ 0 asks for a total damping λ = ρ · m_A · m_G of
A ⊗ G (ρ times the mean eigenvalue of the Kronecker product), split between the factors
as in Martens & Grosse (2015, §6.3) with π = √(m_A / m_G)::

    λ_A = π √λ = √ρ · m_A,        λ_G = √λ / π = √ρ · m_G,

each raised to an absolute ``floor`` (1e-8) so that an all-zero or rank-deficient factor
still has an invertible damped version. The correction of a weight update ΔW (out × in) is

    X = (G + λ_G I)⁻¹ ΔW (A + λ_A I)⁻¹
      = Q_G [(Q_Gᵀ ΔW Q_A) ⊘ ((e_G + λ_G)(e_A + λ_A)ᵀ)] Q_Aᵀ

with A = Q_A diag(e_A) Q_Aᵀ, G = Q_G diag(e_G) Q_Gᵀ; in column-stacking vec this is
vec(X) = ((A + λ_A I) ⊗ (G + λ_G I))⁻¹ vec(ΔW). The factors are positive semi-definite by
construction, so their (round-off) negative eigenvalues are clamped to 0.

A single solve does not need the eigendecompositions: :func:`damped_solve` factors the
damped blocks by Cholesky, L Lᵀ = A + λ_A I (a third of the flops of a symmetric
eigendecomposition's reduction alone), and falls back to :class:`EigenInverse` only when
round-off leaves a damped block not numerically positive definite.
"""

from __future__ import annotations

import math

import torch

DAMPING_FLOOR = 1e-8


def mean_eigenvalue(factor: torch.Tensor) -> float:
    """tr(M) / dim(M)."""
    return float(torch.diagonal(factor).double().sum()) / factor.shape[0]


def pi_damping(mean_a: float, mean_g: float, relative: float, floor: float = DAMPING_FLOOR) -> tuple[float, float]:
    """(λ_A, λ_G) = (max(√ρ · m_A, floor), max(√ρ · m_G, floor)) for relative damping ρ."""
    if relative < 0 or floor <= 0:
        raise ValueError(f"need relative damping ≥ 0 and floor > 0, got {relative}, {floor}")
    scale = math.sqrt(relative)
    return max(scale * mean_a, floor), max(scale * mean_g, floor)


def _eigh(factor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (clamped at 0) and eigenvectors of a symmetric factor, in float64."""
    m = factor.double()
    if not torch.isfinite(m).all():
        raise ValueError("K-FAC factor has non-finite entries")
    values, vectors = torch.linalg.eigh((m + m.T) / 2)
    return values.clamp_min(0), vectors


def psd_projection(factor: torch.Tensor) -> torch.Tensor:
    """Q diag(max(e, 0)) Qᵀ in float64: the nearest positive semi-definite matrix in Frobenius
    norm. K-FAC factors are PSD by construction, so this removes only round-off, which would
    otherwise make a damped factor indefinite when a negative eigenvalue exceeds its damping."""
    values, vectors = _eigh(factor)
    return (vectors * values) @ vectors.T


class EigenInverse:
    """(G + λ_G I)⁻¹ · (A + λ_A I)⁻¹ for one layer, any damping, from one eigendecomposition each."""

    def __init__(self, A: torch.Tensor, G: torch.Tensor):
        self.e_a, self.q_a = _eigh(A)
        self.e_g, self.q_g = _eigh(G)
        self.mean_a, self.mean_g = float(self.e_a.mean()), float(self.e_g.mean())  # of the PSD part

    def damping(self, relative: float, floor: float = DAMPING_FLOOR) -> tuple[float, float]:
        """(λ_A, λ_G) for relative damping ρ (see :func:`pi_damping`)."""
        return pi_damping(self.mean_a, self.mean_g, relative, floor)

    def solve(self, dW: torch.Tensor, relative: float, floor: float = DAMPING_FLOOR) -> torch.Tensor:
        """X = (G + λ_G I)⁻¹ dW (A + λ_A I)⁻¹, computed in float64 and returned in dW's dtype
        and device (pass a float64 dW to keep float64's range)."""
        lam_a, lam_g = self.damping(relative, floor)
        d = dW.to(self.q_a.device, torch.float64)
        rotated = self.q_g.T @ d @ self.q_a
        scaled = rotated / ((self.e_g + lam_g)[:, None] * (self.e_a + lam_a)[None, :])
        return (self.q_g @ scaled @ self.q_a.T).to(dW.device, dW.dtype)


def _damped_cholesky(m: torch.Tensor, damping: float) -> tuple[torch.Tensor, bool]:
    """(L, failed): L Lᵀ = sym(m) + damping·I, failed when that is not numerically positive definite."""
    eye = torch.eye(len(m), dtype=m.dtype, device=m.device)
    factor, info = torch.linalg.cholesky_ex((m + m.T) / 2 + damping * eye)
    return factor, bool(info)


def damped_solve(A: torch.Tensor, G: torch.Tensor, dW: torch.Tensor, relative: float,
                 floor: float = DAMPING_FLOOR) -> torch.Tensor:
    """X = (G + λ_G I)⁻¹ dW (A + λ_A I)⁻¹ through float64 Cholesky factors of the damped
    blocks (damping from the factors' traces, :func:`pi_damping`), in dW's dtype and device.
    Falls back to :class:`EigenInverse` (negative eigenvalues clamped) when a damped block
    is not numerically positive definite."""
    a, g = A.double(), G.double()
    if not (torch.isfinite(a).all() and torch.isfinite(g).all()):
        raise ValueError("K-FAC factor has non-finite entries")
    lam_a, lam_g = pi_damping(mean_eigenvalue(a), mean_eigenvalue(g), relative, floor)
    chol_a, failed_a = _damped_cholesky(a, lam_a)
    chol_g, failed_g = _damped_cholesky(g, lam_g)
    if failed_a or failed_g:
        return EigenInverse(A, G).solve(dW, relative, floor)
    d = dW.to(a.device, torch.float64)
    left = torch.cholesky_solve(d, chol_g)  # (G + λ_G I)⁻¹ dW
    X = torch.cholesky_solve(left.T, chol_a).T  # … (A + λ_A I)⁻¹, A symmetric
    return X.to(dW.device, dW.dtype)
