"""The strategy interface: what happens around the one training loop, task after task.

A strategy never re-implements training. The runner calls, for task t = 1..T:

    strategy.before_task(model, task)   # e.g. remember θ_{t−1}
    train_task(model, strategy.training_utterances(task), ..., extra_loss=strategy.extra_loss)
    strategy.after_task(model, task)    # e.g. merge θ̃_t into θ_t, collect curvature; returns facts
    strategy.extra_view(model)          # optional second labelled row (e.g. before centralization)

and saves ``strategy.state_dict()`` with each checkpoint so a resumed run continues exactly.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import ClassVar, ContextManager, Iterator, Sequence

import torch
from pydantic import BaseModel, ConfigDict

from clasr.data.batching import SpeechBatch, SpeechCollator
from clasr.data.manifest import Utterance


class StrategySettings(BaseModel):
    """Base of every strategy's config: a ``name`` literal (the discriminator), its options
    (unknown keys are errors), and ``build()``, the strategy object it configures.

    ``strategy`` is the class that reads these settings; it is filled in once, when that class
    declares them (``class FineTune(Strategy, settings=FineTuneConfig)``), so no config repeats
    a ``build()`` of its own."""

    model_config = ConfigDict(extra="forbid")
    strategy: ClassVar[type["Strategy"] | None] = None

    def build(self) -> "Strategy":
        if self.strategy is None:
            raise TypeError(f"{type(self).__name__} names no strategy: declare one with "
                            f"class MyStrategy(Strategy, settings={type(self).__name__})")
        return self.strategy(self)


@dataclass
class TaskContext:
    """What a strategy may know about the task at hand: its place in the sequence and its
    training data (e.g. to collect curvature after training)."""

    index: int  # 1-based position in the task sequence
    name: str
    train_utterances: Sequence[Utterance]
    collator: SpeechCollator
    seed: int
    # Training sets of tasks 1..t−1, oldest first. Only strategies that declare that they
    # store data (replay, joint training) may read them; a memory-free strategy never does.
    earlier_tasks: Sequence[tuple[str, Sequence[Utterance]]] = ()
    # Task 1 only, for a strategy whose config names an anchor set (IHR's ``anchor``): the
    # anchor utterances and their collator, on which it measures the foundation model.
    anchor: Sequence[Utterance] = ()
    anchor_collator: SpeechCollator | None = None


class Strategy:
    """Base class: plain sequential fine-tuning (every hook does nothing).

    A subclass names the settings it is built from, which registers it with them::

        class FineTune(Strategy, settings=FineTuneConfig):
            def __init__(self, config: FineTuneConfig): ...
    """

    def __init_subclass__(cls, settings: type[StrategySettings] | None = None, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if settings is not None:
            if settings.strategy is not None:
                raise TypeError(f"{settings.__name__} is already built by {settings.strategy.__name__}")
            settings.strategy = cls

    def before_task(self, model: torch.nn.Module, task: TaskContext) -> None:
        """Called with θ_{t−1} before training on ``task``."""

    def training_utterances(self, task: TaskContext) -> Sequence[Utterance]:
        """What to train on for ``task`` (default: the task's own training set)."""
        return task.train_utterances

    def extra_loss(self, model: torch.nn.Module, batch: SpeechBatch, logits: torch.Tensor) -> torch.Tensor | None:
        """A term added to the cross-entropy of every training batch (None: nothing)."""
        return None

    def adapters_trained(self, model: torch.nn.Module, task: TaskContext) -> None:
        """With an ``adapter:`` section only: called after training on ``task``, while the
        trained adapters are still in the model, unmerged (e.g. to read their factors)."""

    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        """Called with θ̃_t (the fine-tuned model); turns it into θ_t in place. Returns facts to record."""
        return {}

    def scoring(self, model: torch.nn.Module, set_key: str) -> ContextManager[None]:
        """The model as it scores the set ``set_key`` (``test/<task>``, ``general/<name>``,
        ``dev/<task>``); default: as it is."""
        return nullcontext()

    def extra_view(self, model: torch.nn.Module) -> tuple[str, ContextManager[None]] | None:
        """A second way to deploy the model after the task just finished, scored as an extra
        labelled row beside the task's row: (label, context in which the model is so deployed).
        Asked once per task, after :meth:`after_task`; default: None (no extra row)."""
        return None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors this strategy carries from one task to the next (saved with each checkpoint)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned (on resume)."""


def trainable_snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every trainable parameter."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def reset_to_base(model: torch.nn.Module, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Load the fixed base into ``model`` and return it; an empty ``base`` is first taken from
    the model (a snapshot of its trainable parameters: the foundation model, on task 1)."""
    base = base or trainable_snapshot(model)
    interpolate_(model, base, 0.0)
    return base


@torch.no_grad()
def update_from(model: torch.nn.Module, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """θ − base for every parameter named in ``base`` that changed (a task's update)."""
    current = dict(model.named_parameters())
    return {name: current[name].detach() - value for name, value in base.items() if not torch.equal(current[name], value)}


@torch.no_grad()
def interpolate_(model: torch.nn.Module, previous: dict[str, torch.Tensor], alpha: float) -> None:
    """In place: θ ← θ_prev + α (θ − θ_prev) for every parameter named in ``previous``
    (α = 0 loads ``previous``, α = 1 leaves the model as it is)."""
    for name, param in model.named_parameters():
        if name in previous:
            param.copy_(previous[name] + alpha * (param - previous[name]))


@contextmanager
def temporarily_loaded(
    model: torch.nn.Module, weights: dict[str, torch.Tensor], restore: dict[str, torch.Tensor]
) -> Iterator[None]:
    """Within the block the named parameters hold ``weights``; afterwards ``restore``'s values."""
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            parameters[name].copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for name in weights:
                parameters[name].copy_(restore[name])
