"""Damped solves with a sum of Kronecker pairs: closed form for one pair, conjugate gradient for several.

For K-FAC pairs (A_k, G_k) (A in × in, G out × out) and an update ΔW (out × in), the solve is

    Σ_k (G_k + λ_G,k I) X (A_k + λ_A,k I) = ΔW,

in column-stacking vec Σ_k ((A_k + λ_A,k I) ⊗ (G_k + λ_G,k I)) vec(X) = vec(ΔW), with each
pair damped by the one rule of :mod:`clasr.curvature.damping` (``relative``: a bare number ρ,
or a :class:`~clasr.curvature.damping.Damping`, relative or absolute). :func:`kronecker_solve` is the
entry point. One pair has the closed form X = (G + λ_G I)⁻¹ ΔW (A + λ_A I)⁻¹:
:func:`damped_solve` factors the damped blocks by Cholesky, L Lᵀ = A + λ_A I (a third of the
flops of a symmetric eigendecomposition's reduction alone), and falls back to
:class:`EigenInverse` when round-off leaves a damped block not numerically positive
definite. With eigendecompositions A = Q_A diag(e_A) Q_Aᵀ, G = Q_G diag(e_G) Q_Gᵀ,

    X = Q_G [(Q_Gᵀ ΔW Q_A) ⊘ ((e_G + λ_G)(e_A + λ_A)ᵀ)] Q_Aᵀ.

Several pairs have no closed form: :func:`conjugate_gradient` solves them, preconditioned by
the inverse of the summed pair. K-FAC factors are positive semi-definite by construction,
so round-off's negative eigenvalues are clamped to 0 (eigen path) or projected away (CG)
before damping is added. Everything runs in float64.
"""

from __future__ import annotations

import torch

from clasr.curvature.damping import DAMPING_FLOOR, Damping, diagonal_damping, factor_damping, kronecker_damping, mean_eigenvalue

KroneckerPair = tuple[torch.Tensor, torch.Tensor]  # (A, G): input factor, output-gradient factor


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
    """(G + λ_G I)⁻¹ · (A + λ_A I)⁻¹ for one pair, any damping, from one eigendecomposition each."""

    def __init__(self, A: torch.Tensor, G: torch.Tensor):
        self.e_a, self.q_a = _eigh(A)
        self.e_g, self.q_g = _eigh(G)
        self.mean_a, self.mean_g = mean_eigenvalue(A), mean_eigenvalue(G)  # the damping rule's traces

    def damping(self, relative: float | Damping, floor: float = DAMPING_FLOOR) -> tuple[float, float]:
        """(λ_A, λ_G) for the damping (a bare number: relative ρ; :func:`clasr.curvature.damping.kronecker_damping`)."""
        return factor_damping(self.mean_a, self.mean_g, relative, floor)

    def solve(self, dW: torch.Tensor, relative: float | Damping, floor: float = DAMPING_FLOOR) -> torch.Tensor:
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


def damped_solve(A: torch.Tensor, G: torch.Tensor, dW: torch.Tensor, relative: float | Damping,
                 floor: float = DAMPING_FLOOR) -> torch.Tensor:
    """X = (G + λ_G I)⁻¹ dW (A + λ_A I)⁻¹ through float64 Cholesky factors of the damped
    blocks, in dW's dtype and device. Falls back to :class:`EigenInverse` (negative
    eigenvalues clamped, the same damping) when a damped block is not numerically positive
    definite."""
    a, g = A.double(), G.double()
    if not (torch.isfinite(a).all() and torch.isfinite(g).all()):
        raise ValueError("K-FAC factor has non-finite entries")
    lam_a, lam_g = kronecker_damping(a, g, relative, floor)
    chol_a, failed_a = _damped_cholesky(a, lam_a)
    chol_g, failed_g = _damped_cholesky(g, lam_g)
    if failed_a or failed_g:
        return EigenInverse(A, G).solve(dW, relative, floor)
    d = dW.to(a.device, torch.float64)
    left = torch.cholesky_solve(d, chol_g)  # (G + λ_G I)⁻¹ dW
    X = torch.cholesky_solve(left.T, chol_a).T  # … (A + λ_A I)⁻¹, A symmetric
    return X.to(dW.device, dW.dtype)


def _damped_pair(A: torch.Tensor, G: torch.Tensor, relative: float | Damping) -> KroneckerPair:
    """(P(A) + λ_A I, P(G) + λ_G I): each factor projected onto the PSD cone, damped by the one rule."""
    lam_a, lam_g = kronecker_damping(A, G, relative)
    A, G = psd_projection(A), psd_projection(G)
    return (A + lam_a * torch.eye(A.shape[0], dtype=A.dtype, device=A.device),
            G + lam_g * torch.eye(G.shape[0], dtype=G.dtype, device=G.device))


def conjugate_gradient(
    pairs: list[KroneckerPair], dW: torch.Tensor, relative: float | Damping, tolerance: float, max_iterations: int,
) -> tuple[torch.Tensor, float]:
    """X with Σ_k (G_k + λ_G,k I) X (A_k + λ_A,k I) = dW by preconditioned CG, in float64.

    The operator is symmetric positive definite (a sum of Kronecker products of SPD matrices)
    in the Frobenius inner product; the damped inverse of the summed pair (Σ A_k, Σ G_k)
    preconditions it. Stops when the relative residual ‖L(X) − dW‖_F / ‖dW‖_F reaches
    ``tolerance`` or after ``max_iterations``; returns X and that residual.
    """
    damped = [_damped_pair(A, G, relative) for A, G in pairs]
    preconditioner = EigenInverse(sum(A for A, _ in pairs), sum(G for _, G in pairs))

    def operator(X: torch.Tensor) -> torch.Tensor:
        return sum(G @ X @ A for A, G in damped)

    b = dW.double()
    norm_b = float(b.norm()) or 1.0
    X = preconditioner.solve(b, relative)
    r = b - operator(X)
    z = preconditioner.solve(r, relative)
    p = z.clone()
    rz = float((r * z).sum())
    for _ in range(max_iterations):
        if float(r.norm()) / norm_b <= tolerance:
            break
        Ap = operator(p)
        step = rz / float((p * Ap).sum())
        X = X + step * p
        r = r - step * Ap
        z = preconditioner.solve(r, relative)
        rz_next = float((r * z).sum())
        p = z + (rz_next / rz) * p
        rz = rz_next
    return X, float((b - operator(X)).norm()) / norm_b


def kronecker_solve(
    pairs: list[KroneckerPair], dW: torch.Tensor, relative: float | Damping, tolerance: float = 1e-6,
    max_iterations: int = 200,
) -> tuple[torch.Tensor, float]:
    """X with Σ_k (G_k + λ_G,k I) X (A_k + λ_A,k I) = dW, and its relative residual: the closed
    form (:func:`damped_solve`, residual reported as 0) for one pair, :func:`conjugate_gradient`
    for several. X has dW's dtype for one pair, float64 for several."""
    if not pairs:
        raise ValueError("no Kronecker pair to solve with")
    if len(pairs) == 1:
        return damped_solve(*pairs[0], dW, relative), 0.0
    return conjugate_gradient(pairs, dW, relative, tolerance, max_iterations)


def diagonal_solve(diagonals: list[torch.Tensor], dW: torch.Tensor, damping: float | Damping) -> torch.Tensor:
    """X with Σ_k (F_k + λ_k) ⊙ X = dW for diagonal curvatures F_k (stored as tensors shaped like
    dW, λ_k by :func:`clasr.curvature.damping.diagonal_damping`): X = dW ⊘ Σ_k (F_k + λ_k),
    closed form for any number of terms, in float64 (returned in dW's dtype). Negative
    round-off entries are clamped to 0 first, as the factors' eigenvalues are."""
    if not diagonals:
        raise ValueError("no diagonal curvature to solve with")
    total = sum(F.double().clamp_min(0) + diagonal_damping(F, damping) for F in diagonals)
    return (dW.double() / total.to(dW.device)).to(dW.dtype)
