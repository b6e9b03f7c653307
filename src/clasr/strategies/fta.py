"""FTA — fine-tuning followed by weight averaging (Vander Eeckt & Van hamme, 2023).

After fine-tuning θ_{t−1} into θ̃_t on task t, the deployed model is

    θ_t = θ_{t−1} + α_t (θ̃_t − θ_{t−1})

With the default ``alpha: null``, α_t = 1/(t+1): the foundation model counts as the
first model of the running average (it was trained on its own task, the "general"
domain), so θ_t is the uniform average of θ_0's task and the t new tasks — as in the
paper, where the initial model's task is task 1 and α_t = 1/t. Set
``count_foundation: false`` for α_t = 1/t over the new tasks only (task 1 then keeps
θ̃_1 unchanged), or a fixed ``alpha`` for every task.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from clasr.strategies.base import Strategy, StrategySettings, TaskContext, interpolate_, trainable_snapshot


class FineTuneAverageConfig(StrategySettings):
    name: Literal["fta"] = "fta"
    alpha: float | None = Field(None, gt=0, le=1, description="fixed α for every task; null = running average")
    count_foundation: bool = Field(True, description="running average counts the foundation model (α_t = 1/(t+1))")


def averaging_weight(config: FineTuneAverageConfig, task_index: int) -> float:
    """α_t for task ``task_index`` (1-based)."""
    if config.alpha is not None:
        return config.alpha
    return 1.0 / (task_index + 1 if config.count_foundation else task_index)


class FineTuneAverage(Strategy, settings=FineTuneAverageConfig):
    """Fine-tune on each task, then average with the previous model."""

    def __init__(self, config: FineTuneAverageConfig):
        self.config = config
        self.previous: dict[str, torch.Tensor] = {}

    def before_task(self, model: torch.nn.Module, task: TaskContext) -> None:
        self.previous = trainable_snapshot(model)

    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        alpha = averaging_weight(self.config, task.index)
        interpolate_(model, self.previous, alpha)
        self.previous = {}
        return {"alpha": alpha}
