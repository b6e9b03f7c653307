"""Curvature: masked K-FAC factors of Linear layers, diagonal Fisher, damping and the solves.

Standalone: knows nothing about strategies or Whisper — only linear layers, masks and a
loss. :func:`collect_kfac` measures the factors of the given layers on batches,
:class:`KFACFactors` stores them (safetensors), :func:`diagonal_fisher` squares per-example
gradients, :func:`kronecker_damping` is the one damping rule (relative, or the reference code's absolute
:class:`Damping`), :func:`kronecker_solve`
solves Σ_k (G_k + λ_G,k I) X (A_k + λ_A,k I) = ΔW (closed form for one pair, CG for several) and
:func:`diagonal_solve` its diagonal counterpart Σ_k (F_k + λ_k) ⊙ X = ΔW.
"""

from clasr.curvature.damping import (
    DAMPING_FLOOR,
    Damping,
    DampingMode,
    diagonal_damping,
    factor_damping,
    kronecker_damping,
    mean_eigenvalue,
    pi_damping,
)
from clasr.curvature.fisher import ExampleLoss, diagonal_fisher
from clasr.curvature.kfac import KFACCollector, KFACFactors, Masks, collect_kfac, eval_mode, requiring_grad
from clasr.curvature.solve import (
    EigenInverse,
    KroneckerPair,
    conjugate_gradient,
    damped_solve,
    diagonal_solve,
    kronecker_solve,
    psd_projection,
)

__all__ = [
    "DAMPING_FLOOR",
    "Damping",
    "DampingMode",
    "EigenInverse",
    "ExampleLoss",
    "KFACCollector",
    "KFACFactors",
    "KroneckerPair",
    "Masks",
    "collect_kfac",
    "conjugate_gradient",
    "damped_solve",
    "diagonal_damping",
    "diagonal_fisher",
    "diagonal_solve",
    "eval_mode",
    "factor_damping",
    "kronecker_damping",
    "kronecker_solve",
    "mean_eigenvalue",
    "pi_damping",
    "psd_projection",
    "requiring_grad",
]
