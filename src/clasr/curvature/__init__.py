"""Curvature: masked K-FAC factors of Linear layers and their damped inverses.

Standalone: knows nothing about strategies. :func:`collect_kfac` measures the factors of a
Whisper model on speech batches, :class:`KFACFactors` stores them (safetensors), and
:class:`EigenInverse` applies (G + λ_G I)⁻¹ · (A + λ_A I)⁻¹ with π-split relative damping
(:func:`damped_solve`: the same for one update, by Cholesky).
"""

from clasr.curvature.damping import DAMPING_FLOOR, EigenInverse, damped_solve, mean_eigenvalue, pi_damping
from clasr.curvature.kfac import (
    KFACCollector,
    KFACFactors,
    Masks,
    collect_kfac,
    encoder_positions,
    sample_labels,
    summed_token_cross_entropy,
    whisper_kind,
    whisper_linear_layers,
    whisper_masks,
)

__all__ = [
    "DAMPING_FLOOR",
    "EigenInverse",
    "KFACCollector",
    "KFACFactors",
    "Masks",
    "collect_kfac",
    "damped_solve",
    "encoder_positions",
    "mean_eigenvalue",
    "pi_damping",
    "sample_labels",
    "summed_token_cross_entropy",
    "whisper_kind",
    "whisper_linear_layers",
    "whisper_masks",
]
