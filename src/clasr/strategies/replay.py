"""ER — experience replay from a bounded memory of past utterances (the one strategy that
stores data; a reference for the memory-free methods).

The memory holds at most ``memory_size`` training utterances of the finished tasks, kept
a uniform sample of everything seen by reservoir sampling (Vitter's algorithm R): after
task t its training utterances stream in, in manifest order, and with n items seen before
it, the item is appended while the memory has room, otherwise it replaces slot
j ~ U{0, …, n} when j < memory_size. Every utterance of tasks 1..t then sits in the
memory with the same probability memory_size / n_t. The draws of task t come from a
generator seeded with the task's seed, so the memory is a function of the run's seed.

Mixing: task t trains on the concatenation of its own training set and the memory.
The training loop sorts utterances by duration before batching, so batches are mixtures
of new and replayed utterances of similar length, and every replayed utterance is seen
once per epoch; the share of replay is memory / (memory + task size). A replayed utterance is
trained behind its own task's language prompt (the task's collator maps every earlier task's
utterances to their language, :func:`clasr.data.batching.utterance_languages`), not the
current task's.

State (tensors only): the memory as (task index, utterance index) pairs into the tasks'
training sets and the number of utterances seen; pairs are resolved to utterances from
``TaskContext.earlier_tasks`` when needed, so a resumed run continues exactly.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Iterable, Literal, Sequence, TypeVar

import torch
from pydantic import Field

from clasr.data.manifest import Utterance
from clasr.strategies.base import Strategy, StrategySettings, TaskContext

Item = TypeVar("Item")


class ExperienceReplayConfig(StrategySettings):
    name: Literal["er"] = "er"
    memory_size: int = Field(200, ge=1, description="utterances kept from the finished tasks")


def reservoir_sample(
    memory: list[Item], seen: int, stream: Iterable[Item], capacity: int, rng: random.Random
) -> int:
    """Algorithm R: feed ``stream`` into ``memory`` (in place), ``seen`` items having come
    before; returns the new number of items seen."""
    for item in stream:
        if len(memory) < capacity:
            memory.append(item)
        else:
            slot = rng.randrange(seen + 1)
            if slot < capacity:
                memory[slot] = item
        seen += 1
    return seen


def stored_facts(utterances: Sequence[Utterance]) -> dict:
    """How much data a strategy keeps: utterances and seconds of audio."""
    return {"stored_utterances": len(utterances), "stored_audio_seconds": round(sum(u.duration for u in utterances), 2)}


class ExperienceReplay(Strategy, settings=ExperienceReplayConfig):
    """Train on each task together with a reservoir-sampled memory of the earlier ones."""

    def __init__(self, config: ExperienceReplayConfig):
        self.config = config
        self.memory: list[tuple[int, int]] = []  # (1-based task index, index in its training set)
        self.seen = 0

    def training_utterances(self, task: TaskContext) -> Sequence[Utterance]:
        return [*task.train_utterances, *self._resolve(task.earlier_tasks)]

    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        stream = ((task.index, i) for i in range(len(task.train_utterances)))
        self.seen = reservoir_sample(self.memory, self.seen, stream, self.config.memory_size, random.Random(task.seed))
        finished = [*task.earlier_tasks, (task.name, task.train_utterances)]
        per_task = Counter(finished[k - 1][0] for k, _ in self.memory)
        return stored_facts(self._resolve(finished)) | {"stored_per_task": dict(per_task)}

    def _resolve(self, tasks: Sequence[tuple[str, Sequence[Utterance]]]) -> list[Utterance]:
        return [tasks[k - 1][1][i] for k, i in self.memory]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "memory": torch.tensor(self.memory, dtype=torch.long).reshape(-1, 2),
            "seen": torch.tensor(self.seen, dtype=torch.long),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.memory = [(k, i) for k, i in state["memory"].tolist()]
        self.seen = int(state["seen"])
