"""PiSSA (Meng et al., 2024): LoRA initialised from the principal singular triplets of W.

With the top-r singular triplets W ≈ U_r diag(S_r) V_rᵀ and the LoRA scale s:

    B₀ = U_r diag(√(S_r / s)),   A₀ = diag(√(S_r / s)) V_rᵀ       (so s·B₀A₀ = U_r S_r V_rᵀ)
    W_res = W − s · B₀ A₀                                          (frozen residual)
    W' = W_res + s · B A = W + s · (B A − B₀ A₀),   ΔW = s · (B A − B₀ A₀)
    y  = x W_resᵀ + b + s · (drop(x) Aᵀ) Bᵀ

Dividing S_r by s (as peft does) keeps s·B₀A₀ the principal part and W_res the true
residual for any α; with the paper's α = r, s = 1. At the start B A = B₀ A₀, so W' = W.

The SVD is exact (``torch.linalg.svd``) or randomized (``torch.svd_lowrank`` with
``niter`` subspace iterations and ``oversample`` extra columns, Halko et al. 2011), which
only changes how well s·B₀A₀ captures the principal part: W_res is always computed from
the factors actually used, so W_res + s·B₀A₀ = W either way.

The frozen residual is not stored as a separate weight: the wrapped layer keeps the
original W in ``base.weight`` and the adapter computes

    y = x Wᵀ + b + [s · (drop(x) Aᵀ) Bᵀ − s · (x A₀ᵀ) B₀ᵀ],

which is x W_resᵀ + b + s·(drop(x) Aᵀ) Bᵀ regrouped (x W_resᵀ = x Wᵀ − s·(x A₀ᵀ) B₀ᵀ),
with the same gradients in A and B. At the start the bracket subtracts two identical
computations, so the output equals the pretrained layer's bit for bit; no W-sized buffer is
needed; and disabling, unmerging or removing the adapter gives back the untouched
pretrained layer. B₀ and A₀ are persistent buffers, saved with the adapter.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

from clasr.adapters.base import AdapterSettings
from clasr.adapters.lora import LoRALinear

SVDMethod = Literal["exact", "randomized"]


def principal_triplets(weight: Tensor, r: int, method: SVDMethod, niter: int, oversample: int
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """U_r (out×r), S_r (r), V_r (in×r) of ``weight``, exactly or by randomized SVD."""
    if method == "exact":
        u, s, vh = torch.linalg.svd(weight, full_matrices=False)
        return u[:, :r], s[:r], vh[:r].T
    q = min(r + oversample, *weight.shape)
    u, s, v = torch.svd_lowrank(weight, q=q, niter=niter)
    return u[:, :r], s[:r], v[:, :r]


class PiSSALinear(LoRALinear):
    """W' = W_res + s·BA with (B, A) starting at the principal factors (B₀, A₀) of W."""

    kind = "pissa"
    peft_exportable = False  # its frozen residual W − s·B₀A₀ is not peft's LoRA layer

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float | None = None, dropout: float = 0.0,
                 rslora: bool = False, svd: SVDMethod = "exact", niter: int = 4, oversample: int = 8):
        super().__init__(base, r=r, alpha=float(r) if alpha is None else alpha, dropout=dropout, rslora=rslora)
        self.svd = svd
        u, s, v = principal_triplets(base.weight.detach().float(), r, svd, niter, oversample)
        root = (s / self.scaling).sqrt()
        dtype = base.weight.dtype
        self.register_buffer("pissa_B0", (u * root).to(dtype))
        self.register_buffer("pissa_A0", (root[:, None] * v.T).to(dtype))
        with torch.no_grad():
            self.lora_B.copy_(self.pissa_B0)
            self.lora_A.copy_(self.pissa_A0)

    def principal_forward(self, x: Tensor) -> Tensor:
        """s · (x A₀ᵀ) B₀ᵀ, the principal part that W_res leaves out."""
        return F.linear(F.linear(x, self.pissa_A0), self.pissa_B0) * self.scaling

    def adapted_forward(self, x: Tensor) -> Tensor:
        return self.base(x) + (self.lora_forward(x) - self.principal_forward(x))

    def delta_weight(self) -> Tensor:
        return self.lora_product() - (self.pissa_B0 @ self.pissa_A0) * self.scaling

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "svd": self.svd}


class PiSSAConfig(AdapterSettings):
    """PiSSA: rank, α (default α = r, s = 1), dropout, rsLoRA scaling, SVD method."""

    type: Literal["pissa"] = "pissa"
    r: int = Field(8, ge=1)
    alpha: float | None = Field(None, gt=0, description="LoRA α; default: r (s = 1, as in the paper)")
    dropout: float = Field(0.0, ge=0, lt=1)
    rslora: bool = False
    svd: SVDMethod = "exact"
    niter: int = Field(4, ge=0, description="subspace iterations of the randomized SVD")
    oversample: int = Field(8, ge=0, description="extra columns of the randomized SVD's sketch")
    module = PiSSALinear

    def build(self, linear: nn.Linear) -> PiSSALinear:
        return PiSSALinear(linear, r=self.r, alpha=self.alpha, dropout=self.dropout,
                           rslora=self.rslora, svd=self.svd, niter=self.niter, oversample=self.oversample)
