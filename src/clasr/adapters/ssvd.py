"""SSVD and SSVD-O (Wang, Watanabe & Van hamme; arXiv 2509.02830, 2601.12600).

The thin SVD W = U diag(s) Vᵀ of the pretrained weight is computed once and kept fixed.
SSVD-O rotates the top-k right singular vectors (input / acoustic space) by G_in ∈ SO(k),
the top-k' left singular vectors (output / semantic space) by G_out ∈ SO(k') and shifts the
leading singular values by δ. For k = k' the paper's update is

    W' = W + U_k [G_out diag(s_k + δ) G_inᵀ − diag(s_k)] V_kᵀ.

Generalisation to k ≠ k'. Let m = max(k, k') and split W = U_m diag(s_m) V_mᵀ + W_⊥, where
W_⊥ holds the remaining singular triplets. Embed the rotations in SO(m) as
Ĝ_in = blockdiag(G_in, I_{m−k}) and Ĝ_out = blockdiag(G_out, I_{m−k'}), so G_in acts on
the first k right vectors and G_out on the first k' left vectors of the shared top-m block,
and replace that block's bases and singular values:

    W' = (U_m Ĝ_out) diag(s_m + δ) (V_m Ĝ_in)ᵀ + W_⊥
       = W + U_m [Ĝ_out diag(s_m + δ) Ĝ_inᵀ − diag(s_m)] V_mᵀ,      δ ∈ ℝ^m.

U_m Ĝ_out and V_m Ĝ_in are again orthonormal and orthogonal to W_⊥'s singular vectors,
so this is an SVD of W' with the top-m block re-oriented and re-scaled; for k = k' it is the
paper's formula, and SSVD (inner only) is k' = 0, i.e. Ĝ_out = I. With G = I and δ = 0 the
bracket is exactly zero, so W' = W at initialisation.

Each rotation is the Cayley map G = (I − K)(I + K)⁻¹ (or exp(K)) of a skew-symmetric
K = P − Pᵀ, P strictly upper-triangular with k(k−1)/2 free entries, zero at init (G = I).
Both maps give exactly orthogonal matrices (the published code's first-order I − 2K does
not); they are evaluated in float64 and rounded to the weight's precision.

Trainable parameters: k(k−1)/2 + k'(k'−1)/2 + m. The forward pass never forms W':
y = x Wᵀ + b + ((x V_m) Mᵀ) U_mᵀ with the m × m core M = Ĝ_out diag(s_m + δ) Ĝ_inᵀ − diag(s_m).
U_m, s_m, V_m are stored with the adapter (persistent buffers), since an SVD is only
unique up to signs and a recomputed one could disagree with the trained rotations.

Budget split (:func:`split_budget`): a budget of P trainable parameters per layer (for
example LoRA rank r's r·(in + out)) and a ratio ρ ∈ [0, 1]. The inner subspace gets
⌊ρP⌋: k is the largest with k(k−1)/2 + k ≤ ρP (its rotation and its shifts); the outer
subspace gets the rest, P − ρP: k' is the largest with k'(k'−1)/2 + max(0, k' − k) ≤ P − ρP
(its rotation and the shifts it adds beyond the inner block). A one-vector "rotation" is
the identity, so k' < 2 means no outer transformation. k and k' never exceed min(in, out).

Against the authors' released SSVD code (ESPnet ``espnet2/layers/lora/layers.py``,
``SSVDLinear``; docs/benchmarks.md, "Method fidelity against the papers"): the same top-k
singular directions and the same order (shift, then rotation of the right vectors), but there
k = ⌊rotation_ratio · min(in, out)⌋ (their MyST recipe: 0.4, on nearly every Linear); the shift
is sigmoid(g) · s with s Kaiming-uniform and g = 0 at init, so the layer does not start at W
(here δ = 0; ESPnet PR #6425 zero-initialises s too); the rotation is the linearised Cayley map
(the SSVD paper's default; its exact-Cayley "strict" variant is the one used here); and a layer
with out < in is decomposed as Wᵀ, which rotates its left (output) vectors. Here the right
(input) vectors are rotated for every shape, as the papers describe.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn
from torch.nn import functional as F

from clasr.adapters.base import AdapterLinear, AdapterSettings

RotationMap = Literal["cayley", "expm"]


def rotation_params(k: int) -> int:
    """Free parameters of a rotation in SO(k): k(k−1)/2."""
    return k * (k - 1) // 2


def ssvd_params(k_in: int, k_out: int) -> int:
    """Trainable parameters of an SSVD-O layer: two rotations and max(k, k') shifts."""
    return rotation_params(k_in) + rotation_params(k_out) + max(k_in, k_out)


def split_budget(budget: int, ratio: float, max_k: int) -> tuple[int, int]:
    """(k, k') spending a share ``ratio`` of ``budget`` on the inner subspace, the rest on the outer
    (k = 0 always fits, and a k' of 1 rotates nothing, so it becomes 0)."""
    inner_share = int(ratio * budget)
    k_in = max(k for k in range(max_k + 1) if ssvd_params(k, 0) <= inner_share)
    outer_share = budget - inner_share
    k_out = max(k for k in range(max_k + 1) if ssvd_params(k_in, k) - ssvd_params(k_in, 0) <= outer_share)
    return k_in, (k_out if k_out >= 2 else 0)


def skew(upper: Tensor, k: int) -> Tensor:
    """K = P − Pᵀ from the strictly upper-triangular entries of P (row-major)."""
    rows, cols = torch.triu_indices(k, k, offset=1, device=upper.device)
    p = upper.new_zeros(k, k).index_put((rows, cols), upper)
    return p - p.T


def rotation(upper: Tensor, k: int, how: RotationMap) -> Tensor:
    """G ∈ SO(k): Cayley map (I + K)⁻¹(I − K) = (I − K)(I + K)⁻¹, or exp(K); in float64."""
    skew_matrix = skew(upper.double(), k)
    if how == "expm":
        return torch.linalg.matrix_exp(skew_matrix)
    eye = torch.eye(k, dtype=torch.float64, device=upper.device)
    return torch.linalg.solve(eye + skew_matrix, eye - skew_matrix)


class SSVDLinear(AdapterLinear):
    """W' = W + U_m [Ĝ_out diag(s_m + δ) Ĝ_inᵀ − diag(s_m)] V_mᵀ (k' = 0: SSVD)."""

    def __init__(self, base: nn.Linear, k_in: int, k_out: int = 0, rotation: RotationMap = "cayley",
                 budget: int | None = None):
        super().__init__(base)
        m, rank = max(k_in, k_out), min(base.in_features, base.out_features)
        if min(k_in, k_out) < 0 or not 1 <= m <= rank:
            raise ValueError(f"need 0 <= k_in, k_out and 1 <= max(k_in, k_out) <= {rank}; got {k_in}, {k_out}")
        self.kind = "ssvd_o" if k_out else "ssvd"
        self.k_in, self.k_out, self.rotation_map, self.budget = k_in, k_out, rotation, budget
        weight = base.weight.detach()
        u, s, vh = torch.linalg.svd(weight.float(), full_matrices=False)
        self.register_buffer("svd_U", u[:, :m].to(weight.dtype).contiguous())
        self.register_buffer("svd_S", s[:m].to(weight.dtype).contiguous())
        self.register_buffer("svd_V", vh[:m].T.to(weight.dtype).contiguous())
        self.inner = self.rotation_parameter(k_in, weight)
        self.outer = self.rotation_parameter(k_out, weight)
        self.shift = nn.Parameter(torch.zeros(m, dtype=weight.dtype, device=weight.device))

    @staticmethod
    def rotation_parameter(k: int, weight: Tensor) -> nn.Parameter | None:
        """Zero upper-triangular entries of P (G = I), or None when k < 2 (nothing to rotate)."""
        count = rotation_params(k)
        return nn.Parameter(torch.zeros(count, dtype=weight.dtype, device=weight.device)) if count else None

    def rotation_matrix(self, upper: nn.Parameter | None, k: int) -> Tensor:
        """G ∈ SO(k) in the weight's dtype (the identity when k < 2)."""
        if upper is None:
            return torch.eye(k, dtype=self.shift.dtype, device=self.shift.device)
        return rotation(upper, k, self.rotation_map).to(self.shift.dtype)

    def rotations(self) -> tuple[Tensor, Tensor]:
        """(G_in, G_out), k × k and k' × k'."""
        return self.rotation_matrix(self.inner, self.k_in), self.rotation_matrix(self.outer, self.k_out)

    def embed(self, g: Tensor) -> Tensor:
        """Ĝ = blockdiag(G, I) ∈ SO(m)."""
        m = self.shift.shape[0]
        return torch.block_diag(g, torch.eye(m - g.shape[0], dtype=g.dtype, device=g.device))

    def core(self) -> Tensor:
        """M = Ĝ_out diag(s_m + δ) Ĝ_inᵀ − diag(s_m) (m × m)."""
        g_in, g_out = (self.embed(g) for g in self.rotations())
        return (g_out * (self.svd_S + self.shift)) @ g_in.T - torch.diag(self.svd_S)

    def adapted_forward(self, x: Tensor) -> Tensor:
        return self.base(x) + F.linear(F.linear(F.linear(x, self.svd_V.T), self.core()), self.svd_U)

    def delta_weight(self) -> Tensor:
        return self.svd_U @ self.core() @ self.svd_V.T

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "k_in": self.k_in, "k_out": self.k_out,
                "rotation": self.rotation_map, "budget": self.budget}


class _SSVDSettings(AdapterSettings):
    budget_rank: int = Field(8, ge=1, description="budget per layer = budget_rank · (in + out), LoRA rank r's count")
    budget: int | None = Field(None, ge=1, description="absolute budget per layer; overrides budget_rank")
    rotation: RotationMap = "cayley"
    module = SSVDLinear

    def layer_budget(self, linear: nn.Linear) -> int:
        return self.budget or self.budget_rank * (linear.in_features + linear.out_features)


class SSVDConfig(_SSVDSettings):
    """SSVD: inner rotation of the top-k right singular vectors plus k singular-value shifts."""

    type: Literal["ssvd"] = "ssvd"
    k: int | None = Field(None, ge=1, description="explicit k; overrides the budget")

    def build(self, linear: nn.Linear) -> SSVDLinear:
        budget = self.layer_budget(linear)
        k = self.k or split_budget(budget, 1.0, min(linear.in_features, linear.out_features))[0]
        return SSVDLinear(linear, k, 0, self.rotation, None if self.k else budget)


class SSVDOConfig(_SSVDSettings):
    """SSVD-O: inner and outer rotations and shifts, the budget split by ``ratio`` (inner share)."""

    type: Literal["ssvd_o"] = "ssvd_o"
    ratio: float = Field(0.25, ge=0, le=1, description="share of the budget for the inner subspace "
                         "(0.25 chosen on dev over 0.5: docs/benchmarks.md, SSVD-O's split)")
    k_in: int | None = Field(None, ge=0, description="explicit k (with k_out); overrides the budget")
    k_out: int | None = Field(None, ge=0, description="explicit k' (with k_in); overrides the budget")

    @model_validator(mode="after")
    def _both_or_neither(self) -> SSVDOConfig:
        if (self.k_in is None) != (self.k_out is None):
            raise ValueError("give both k_in and k_out, or neither")
        return self

    def build(self, linear: nn.Linear) -> SSVDLinear:
        if self.k_in is not None:
            return SSVDLinear(linear, self.k_in, self.k_out, self.rotation)
        budget = self.layer_budget(linear)
        k_in, k_out = split_budget(budget, self.ratio, min(linear.in_features, linear.out_features))
        return SSVDLinear(linear, k_in, k_out, self.rotation, budget)
