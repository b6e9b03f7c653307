"""BLoRA — Bayesian LoRA (Ugan, Pham & Waibel, 2025): mean-field Gaussian LoRA factors.

The factors of the LoRA update W' = W + s·BA are random, with factorised posteriors and a
zero-mean prior that is concentrated near zero:

    q(A) = Π N(A_ij | μ^A_ij, (σ^A_ij)²),   q(B) likewise,   p(A) = p(B) = Π N(0, σ_p²)
    loss = NLL + β · KL(q ‖ p) / N_train
    KL(q ‖ p) = Σ_entries [ log(σ_p / σ) + (σ² + μ²) / (2 σ_p²) − 1/2 ]      (closed form)

Each entry has a mean and a log-standard-deviation parameter. In training mode every
forward pass draws one reparameterised sample A = μ^A + σ^A ⊙ ε, B = μ^B + σ^B ⊙ ε
(ε ~ N(0, I), shared by the batch); in eval mode, for ``delta_weight`` and for merging the
posterior means are used: ΔW = s · μ^B μ^A, which is also E_q[s·BA].

Initialisation: μ^A like LoRA's A (Kaiming-uniform), μ^B = 0, σ = ``init_std`` (1e-3).
The posterior-mean update is then zero, so the eval-mode output equals the pretrained
layer's; a training-mode sample of B is not zero, so training-mode outputs start close to,
not at, the pretrained function.

Defaults, chosen on the built-in benchmark's dev splits (tiny.en, r 8, lr 3e-3, ~100
training utterances per task): σ_p = 1, β = 1. The paper's "prior near zero" stops learning
at this scale: the mean term μ²/(2σ_p²)·β/N of the KL pulls μ^A to zero before B grows
(σ_p = 1e-3 or 1e-2: nothing learned, every ΔW entry below 1e-3); σ_p = 0.1 forgets less
than LoRA but learns far less; σ_p = 1 learns almost as much as LoRA. ``n_train`` (the
number of training examples) must be set by the caller before :meth:`extra_loss` is used;
both it and ``beta`` are plain attributes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

from clasr.adapters.base import AdapterLinear, AdapterSettings
from clasr.adapters.lora import check_rank, init_lora_a, lora_scaling


def gaussian_kl(mean: Tensor, log_std: Tensor, prior_std: float) -> Tensor:
    """Σ KL(N(mean, exp(log_std)²) ‖ N(0, prior_std²)) over all entries."""
    variance_ratio = torch.exp(2 * log_std) / prior_std**2
    return (math.log(prior_std) - log_std + 0.5 * (variance_ratio + mean**2 / prior_std**2) - 0.5).sum()


class BLoRALinear(AdapterLinear):
    """W' = W + s·BA with A, B ~ q (training) or at their posterior means (eval, merge)."""

    kind = "blora"

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, prior_std: float = 1.0,
                 init_std: float = 1e-3, beta: float = 1.0, n_train: int | None = None):
        super().__init__(base)
        check_rank(r, base)
        self.r, self.alpha, self.scaling = r, alpha, lora_scaling(r, alpha, rslora=False)
        self.prior_std, self.beta, self.n_train = prior_std, beta, n_train
        log_std = math.log(init_std)
        like = dict(dtype=base.weight.dtype, device=base.weight.device)
        self.mu_A = nn.Parameter(torch.empty(r, base.in_features, **like))
        self.log_std_A = nn.Parameter(torch.full((r, base.in_features), log_std, **like))
        self.mu_B = nn.Parameter(torch.zeros(base.out_features, r, **like))
        self.log_std_B = nn.Parameter(torch.full((base.out_features, r), log_std, **like))
        init_lora_a(self.mu_A.data, "kaiming")

    def factors(self) -> tuple[Tensor, Tensor]:
        """(A, B): a reparameterised sample in training mode, the posterior means in eval mode."""
        if not self.training:
            return self.mu_A, self.mu_B
        a = self.mu_A + self.log_std_A.exp() * torch.randn_like(self.mu_A)
        b = self.mu_B + self.log_std_B.exp() * torch.randn_like(self.mu_B)
        return a, b

    def adapted_forward(self, x: Tensor) -> Tensor:
        a, b = self.factors()
        return self.base(x) + F.linear(F.linear(x, a), b) * self.scaling

    def delta_weight(self) -> Tensor:
        return (self.mu_B @ self.mu_A) * self.scaling

    def kl(self) -> Tensor:
        """KL(q(A) q(B) ‖ p(A) p(B)) in closed form."""
        return (gaussian_kl(self.mu_A, self.log_std_A, self.prior_std)
                + gaussian_kl(self.mu_B, self.log_std_B, self.prior_std))

    def extra_loss(self) -> Tensor:
        """β · KL(q ‖ p) / N_train."""
        if self.n_train is None:
            raise RuntimeError("set n_train (the number of training examples) before using the BLoRA KL term")
        return self.beta * self.kl() / self.n_train

    @torch.no_grad()
    def sparsity(self, threshold: float = 1e-3) -> dict[str, float]:
        """Shares of |ΔW| entries and of |posterior means| (A and B) below ``threshold``."""
        return {"delta_w": (self.delta_weight().abs() < threshold).float().mean().item(),
                "params": posterior_mean_sparsity([self], threshold)}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "r": self.r, "alpha": self.alpha, "prior_std": self.prior_std,
                "beta": self.beta, "n_train": self.n_train}


@torch.no_grad()
def posterior_mean_sparsity(layers: Iterable[BLoRALinear], threshold: float = 1e-3) -> float:
    """Share of the posterior means (A and B, over all ``layers``) whose magnitude is below ``threshold``."""
    means = [mean for layer in layers for mean in (layer.mu_A, layer.mu_B)]
    return sum(int((mean.abs() < threshold).sum()) for mean in means) / sum(mean.numel() for mean in means)


class BLoRAConfig(AdapterSettings):
    """BLoRA: rank, α (s = α/r), prior σ_p, initial posterior σ, KL weight β."""

    type: Literal["blora"] = "blora"
    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    prior_std: float = Field(1.0, gt=0, description="σ_p (dev-tuned; 1e-3 and 1e-2 stop learning at tiny.en's scale)")
    init_std: float = Field(1e-3, gt=0, description="initial posterior σ")
    beta: float = Field(1.0, ge=0)

    def build(self, linear: nn.Linear) -> BLoRALinear:
        return BLoRALinear(linear, r=self.r, alpha=self.alpha, prior_std=self.prior_std,
                           init_std=self.init_std, beta=self.beta)
