"""DoRA (Liu et al., 2024): weight-decomposed low-rank adaptation.

    V  = W + s · B A                      (direction, LoRA-updated)
    W' = m ⊙ V / ‖V‖_r                   (‖V‖_r: the L2 norm of each output row of V,
                                           i.e. over the input dimension; m ∈ ℝ^{out})
    ΔW = W' − W
    y  = (m / ‖V‖_r) ⊙ (x Wᵀ + s · (drop(x) Aᵀ) Bᵀ) + b

m is initialised to ‖W‖_r and B to zero, so W' = W at the start. As in §4.3 of the paper,
‖V‖_r is treated as a constant in the backward pass (detached), which removes its gradient
without changing the forward value. The row norms are the paper's "column-wise" norms in
its x·W (in × out) layout and peft's ``weight_norm`` over dim 1 of the out × in weight.
Dropout acts on the adapter's input only (peft instead feeds the dropped-out x to the
frozen path of the DoRA term as well; both agree without dropout).
"""

from __future__ import annotations

from typing import Callable, ClassVar, Literal

from torch import Tensor, nn

from clasr.adapters.lora import LoRAConfig, LoRALinear

NORM_FLOOR = 1e-12  # keeps an all-zero row of V from dividing by zero


class DoRALinear(LoRALinear):
    """W' = m ⊙ (W + s·BA) / ‖W + s·BA‖_r with the norm detached in backward."""

    kind = "dora"

    def __init__(self, base: nn.Linear, **lora_options):
        super().__init__(base, **lora_options)
        self.magnitude = nn.Parameter(base.weight.detach().norm(dim=1))

    def direction(self) -> Tensor:
        """V = W + s·BA."""
        return self.frozen_weight + self.lora_product()

    def row_scale(self, direction: Tensor) -> Tensor:
        """m / ‖V‖_r with the norm detached (out,)."""
        return self.magnitude / direction.detach().norm(dim=1).clamp_min(NORM_FLOOR)

    def adapted_forward(self, x: Tensor) -> Tensor:
        scale = self.row_scale(self.direction())
        out = (nn.functional.linear(x, self.base.weight) + self.lora_forward(x)) * scale
        return out if self.base.bias is None else out + self.base.bias

    def adapted_weight(self) -> Tensor:
        direction = self.direction()
        return self.row_scale(direction)[:, None] * direction

    def delta_weight(self) -> Tensor:
        return self.adapted_weight() - self.frozen_weight


class DoRAConfig(LoRAConfig):
    """DoRA: LoRA's settings plus a trainable magnitude per output row."""

    type: Literal["dora"] = "dora"  # type: ignore[assignment]
    module: ClassVar[Callable[..., LoRALinear]] = DoRALinear
