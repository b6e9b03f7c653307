"""LoRA (Hu et al., 2021): a low-rank additive update of a frozen Linear layer.

    W' = W + s · B A,    A ∈ ℝ^{r×in}, B ∈ ℝ^{out×r},
    s = α / r  (LoRA)   or   s = α / √r  (rsLoRA, Kalajdzievski 2023),
    y = x Wᵀ + b + s · (drop(x) Aᵀ) Bᵀ,

with B = 0 at initialisation (so W' = W) and A drawn like ``nn.Linear``'s weight
(Kaiming-uniform with a = √5, as in the paper's reference code) or from a normal
distribution of standard deviation 1/r.
Dropout acts on the adapter's input only; the frozen path sees x unchanged.
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

from clasr.adapters.base import AdapterLinear, AdapterSettings

InitA = Literal["kaiming", "gaussian"]


def lora_scaling(r: int, alpha: float, rslora: bool) -> float:
    """s = α/r, or α/√r with rank-stabilised scaling."""
    return alpha / math.sqrt(r) if rslora else alpha / r


def init_lora_a(a: Tensor, init: InitA) -> None:
    """Kaiming-uniform (a = √5, the ``nn.Linear`` default) or normal with std 1/r, in place."""
    if init == "kaiming":
        nn.init.kaiming_uniform_(a, a=math.sqrt(5))
    else:
        nn.init.normal_(a, std=1 / a.shape[0])


def check_rank(r: int, base: nn.Linear) -> None:
    """A rank-r factorisation of ``base``'s update needs 1 ≤ r ≤ min(in, out)."""
    if not 0 < r <= min(base.in_features, base.out_features):
        raise ValueError(f"rank {r} outside 1..{min(base.in_features, base.out_features)}")


class LoRALinear(AdapterLinear):
    """W' = W + s·BA with B zero-initialised."""

    kind = "lora"
    peft_exportable = True

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                 rslora: bool = False, init: InitA = "kaiming"):
        super().__init__(base)
        check_rank(r, base)
        self.r, self.alpha, self.rslora = r, alpha, rslora
        self.scaling = lora_scaling(r, alpha, rslora)
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=weight.dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=weight.dtype, device=weight.device))
        init_lora_a(self.lora_A.data, init)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def lora_forward(self, x: Tensor) -> Tensor:
        """s · (drop(x) Aᵀ) Bᵀ."""
        return F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B) * self.scaling

    def adapted_forward(self, x: Tensor) -> Tensor:
        return self.base(x) + self.lora_forward(x)

    def lora_product(self) -> Tensor:
        """s · B A."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def delta_weight(self) -> Tensor:
        return self.lora_product()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "r": self.r, "alpha": self.alpha, "scaling": self.scaling}


class LoRAConfig(AdapterSettings):
    """LoRA: rank, α (s = α/r, or α/√r with ``rslora``), adapter-input dropout, A's init."""

    type: Literal["lora"] = "lora"
    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    rslora: bool = False
    init: InitA = "kaiming"
    module: ClassVar[Callable[..., LoRALinear]] = LoRALinear  # the layer it builds (DoRA: its subclass)

    def build(self, linear: nn.Linear) -> LoRALinear:
        return self.module(linear, r=self.r, alpha=self.alpha, dropout=self.dropout, rslora=self.rslora, init=self.init)
