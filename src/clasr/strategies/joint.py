"""Joint training on all tasks so far — the cumulative upper reference (it stores all data).

Task t trains on the union of the training sets of tasks 1..t, concatenated in task
order (the training loop then batches by duration, so batches mix the tasks), each utterance
behind its own task's language prompt (:func:`clasr.data.batching.utterance_languages`)::

    θ̃_t = train(θ_{t−1}, D_1 ∪ … ∪ D_t),        θ_t = θ̃_t

This is the usual "cumulative" variant: it continues from θ_{t−1} on the union rather than
restarting from the foundation model θ_0, so later tasks see the earlier ones' data again
(once more per task) and the training cost grows with t. Task 1 is plain fine-tuning, and
the foundation model's own training data (the "general" domain) is never in the union:
joint training bounds forgetting of the tasks, not of the general ability.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch

from clasr.data.manifest import Utterance
from clasr.strategies.base import Strategy, StrategySettings, TaskContext
from clasr.strategies.replay import stored_facts


class JointConfig(StrategySettings):
    name: Literal["joint"] = "joint"


def all_tasks_so_far(task: TaskContext) -> list[Utterance]:
    """The training sets of tasks 1..t, oldest first."""
    return [u for _, utterances in task.earlier_tasks for u in utterances] + list(task.train_utterances)


class JointTraining(Strategy, settings=JointConfig):
    """Train each task on the union of all training sets so far."""

    def __init__(self, config: JointConfig):
        self.config = config

    def training_utterances(self, task: TaskContext) -> Sequence[Utterance]:
        return all_tasks_so_far(task)

    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        return stored_facts(all_tasks_so_far(task))
