"""The strategy interface: what happens around the one training loop, task after task.

A strategy never re-implements training. The runner calls, for task t = 1..T:

    strategy.before_task(model, t)      # e.g. remember θ_{t−1}, collect curvature
    train_task(..., extra_loss=strategy.extra_loss)
    strategy.after_task(model, t)       # e.g. merge θ̃_t into θ_t; returns facts to record

and saves ``strategy.state_dict()`` with each checkpoint so a resumed run continues exactly.
"""

from __future__ import annotations

import torch

from clasr.data.batching import SpeechBatch


class Strategy:
    """Base class: plain sequential fine-tuning (every hook does nothing)."""

    name = "ft"

    def before_task(self, model: torch.nn.Module, task_index: int) -> None:
        """Called with θ_{t−1} before training on task ``task_index`` (1-based)."""

    def extra_loss(self, model: torch.nn.Module, batch: SpeechBatch, logits: torch.Tensor) -> torch.Tensor | None:
        """A term added to the cross-entropy of every training batch (None: nothing)."""
        return None

    def after_task(self, model: torch.nn.Module, task_index: int) -> dict:
        """Called with θ̃_t (the fine-tuned model); turns it into θ_t in place. Returns facts to record."""
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors this strategy carries from one task to the next (saved with each checkpoint)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned (on resume)."""


def trainable_snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every trainable parameter."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
