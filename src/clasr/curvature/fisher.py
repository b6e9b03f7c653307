"""Diagonal Fisher of a model's parameters from per-example gradients.

Over examples n with summed loss ℓ_n (e.g. an utterance's token negative log-likelihood) and
M_n scored terms::

    F = Σ_n (∂ℓ_n/∂θ)² / Σ_n M_n

Each example is its own backward pass, so the squares are of per-example gradients — never
of a batch's mean gradient, which would add the cross terms between examples. Dividing by
the number of terms puts F on the scale of a loss that is a mean over terms.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from clasr.distributed import sum_across_processes, sum_counts

# One example: runs the model, returns its summed loss ℓ_n and its number of terms M_n.
ExampleLoss = Callable[[], tuple[torch.Tensor, int]]


def diagonal_fisher(params: dict[str, torch.Tensor], examples: Iterable[ExampleLoss]) -> dict[str, torch.Tensor]:
    """F = Σ_n (∂ℓ_n/∂θ)² / Σ_n M_n over ``examples`` returning (ℓ_n, M_n); ``.grad`` is untouched.

    In a multi-process run ``examples`` are this process's share: both sums are added over the
    processes (:mod:`clasr.distributed`) before dividing. Every process must call this."""
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    terms = 0
    for example in examples:
        loss, count = example()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for name, grad in zip(params, grads):
            if grad is not None:
                sums[name] += grad.detach().square()
        terms += count
    sums, terms = sum_across_processes(sums), sum_counts({"terms": terms})["terms"]
    return {name: s / terms for name, s in sums.items()}
