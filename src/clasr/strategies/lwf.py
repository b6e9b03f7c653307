"""LwF — learning without forgetting by distillation from the previous model
(Li & Hoiem 2017; knowledge distillation of Hinton et al. 2015).

Before task t a frozen copy of θ_{t−1} becomes the teacher. On every batch of the new
task, the teacher's decoder distribution is computed (no gradient) on the same inputs —
the same audio and the same teacher-forced decoder tokens — and the student is pulled
towards it::

    loss = CE(task t) + λ T² · (1/M) Σ_{i scored} KL( softmax(z^T_i / T) ‖ softmax(z^S_i / T) )

over the M decoder positions whose label is scored (labels ≠ IGNORE_INDEX: the prompt and
the padding never count). T² keeps the gradient's scale independent of the temperature.

With ``from_first_task`` (default) task 1 already distils from the foundation model θ_0,
whose general ability is exactly what fine-tuning forgets; otherwise task 1 is plain
fine-tuning. The teacher is the model at :meth:`before_task`, so it needs no state to
resume: it is dropped after each task.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from clasr.data.batching import IGNORE_INDEX, SpeechBatch
from clasr.models.fitted_window import narrowed_encoder
from clasr.models.teacher_forcing import teacher_forced_logits
from clasr.strategies.base import Strategy, StrategySettings, TaskContext


class LwFConfig(StrategySettings):
    name: Literal["lwf"] = "lwf"
    strength: float = Field(1.0, ge=0, description="λ, weight of the distillation term")
    temperature: float = Field(2.0, gt=0, description="T, softens both distributions")
    from_first_task: bool = Field(True, description="task 1 distils from the foundation model too")


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T² · mean over scored positions of KL(softmax(z^T/T) ‖ softmax(z^S/T)), in float32."""
    scored = labels != IGNORE_INDEX
    student = F.log_softmax(student_logits[scored].float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits[scored].float() / temperature, dim=-1)
    kl = F.kl_div(student, teacher, log_target=True, reduction="sum") / scored.sum()
    return temperature**2 * kl


class LearningWithoutForgetting(Strategy, settings=LwFConfig):
    """Distil the previous model's decoder distribution on the new task's data."""

    def __init__(self, config: LwFConfig):
        self.config = config
        self.teacher: torch.nn.Module | None = None

    def before_task(self, model: torch.nn.Module, task: TaskContext) -> None:
        if task.index > 1 or self.config.from_first_task:
            self.teacher = copy.deepcopy(model).eval().requires_grad_(False)

    def extra_loss(self, model: torch.nn.Module, batch: SpeechBatch, logits: torch.Tensor) -> torch.Tensor | None:
        if self.teacher is None:
            return None
        # the teacher sees what the student saw: the batch's features, at the window they were cut to
        with torch.no_grad(), narrowed_encoder(self.teacher, batch.input_features.shape[-1]):
            teacher_logits = teacher_forced_logits(self.teacher, batch)
        return self.config.strength * distillation_loss(logits, teacher_logits, batch.labels, self.config.temperature)

    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        distilled = self.teacher is not None
        self.teacher = None
        return {"distilled": distilled}
