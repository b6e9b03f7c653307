"""Task arithmetic (Ilharco et al. 2023, "Editing models with task arithmetic").

Each task's vector τ_t = θ̃_t − θ_0 is the fine-tuned model minus the foundation model
(each task trained from θ_0); the deployed model after task t adds their scaled sum,

    θ_t = θ_0 + λ Σ_{i=1..t} τ_i,

kept as a running sum (:mod:`clasr.strategies.merging`). λ (``scale``) is the one
hyper-parameter; the paper picks it on held-out validation data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clasr.strategies.base import StrategySettings
from clasr.strategies.merging import SumMerge, TaskVectorMerging


class TaskArithmeticConfig(StrategySettings):
    name: Literal["task_arithmetic"] = "task_arithmetic"
    scale: float = Field(0.5, gt=0, description="λ: the sum of the task vectors is scaled by it")


class TaskArithmetic(TaskVectorMerging, settings=TaskArithmeticConfig):
    """θ_t = θ_0 + λ Σ τ_i."""

    def new_merge(self) -> SumMerge:
        return SumMerge()
