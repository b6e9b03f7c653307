"""Factorization–centralization (arXiv 2506.16574): adapters from a shared base, averaged every K tasks.

Every task trains a fresh adapter from the current frozen base B (not from the previous
task's model); its update is ΔW_t = s·B_t A_t (or the merged update of any adapter).
After every K tasks the updates are averaged *as products* and merged into the base,

    B ← B + (1/K) Σ_{i=1..K} ΔW_i,

which becomes the base of the next adapters. Averaging the factors separately,
(1/K Σ B_i)(1/K Σ A_i), is a different (and wrong) matrix: the updates are taken here
from the merged weights, so only products are ever averaged.

The model deployed after task t (row t of the WER matrix) is B + ΔW_t between
centralizations and the new base B at a centralization; the recorded facts say which. At a
centralization (K > 1) the task's own adapter on the base it was trained from, B_old + ΔW_t,
is scored too, as an extra row labelled "<task>: its adapter before centralization", so
every adapter and every centralized base has its row.
Needs an ``adapter:`` section: with full fine-tuning the "update" of a task would be all
of θ̃_t − B and the method reduces to periodic model averaging.
"""

from __future__ import annotations

from typing import ContextManager, Literal

import torch
from pydantic import Field

from clasr.strategies.base import (
    Strategy,
    StrategySettings,
    TaskContext,
    interpolate_,
    reset_to_base,
    temporarily_loaded,
    update_from,
)


class CentralizeConfig(StrategySettings):
    name: Literal["centralize"] = "centralize"
    every: int = Field(2, ge=1, description="K: tasks per centralization")


class Centralization(Strategy, settings=CentralizeConfig):
    """Per-task adapters from a frozen base; their updates averaged into the base every K tasks."""

    def __init__(self, config: CentralizeConfig):
        self.config = config
        self.base: dict[str, torch.Tensor] = {}
        self.pending: list[dict[str, torch.Tensor]] = []  # updates of the tasks since the last centralization
        self.uncentralized: tuple[str, dict[str, torch.Tensor]] | None = None  # (task, B_old + ΔW_t) until scored

    def before_task(self, model: torch.nn.Module, task: TaskContext) -> None:
        self.base = reset_to_base(model, self.base)

    @torch.no_grad()
    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        self.pending.append(update_from(model, self.base))
        if len(self.pending) < self.config.every:
            return {"deployed": "base + this task's update", "pending_updates": len(self.pending)}
        if len(self.pending) > 1:
            self.uncentralized = (task.name, {n: self.base[n] + u for n, u in self.pending[-1].items()})
        for name in set().union(*self.pending):
            self.base[name] = self.base[name] + sum(u[name] for u in self.pending if name in u) / len(self.pending)
        averaged = len(self.pending)
        self.pending = []
        interpolate_(model, self.base, 0.0)
        return {"deployed": "centralized base", "updates_averaged": averaged}

    def extra_view(self, model: torch.nn.Module) -> tuple[str, ContextManager[None]] | None:
        if self.uncentralized is None:
            return None
        task, weights = self.uncentralized
        self.uncentralized = None
        return f"{task}: its adapter before centralization", temporarily_loaded(model, weights, self.base)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"base.{n}": t for n, t in self.base.items()}
        state["pending_count"] = torch.tensor(len(self.pending))
        for k, update in enumerate(self.pending):
            state.update({f"pending.{k}.{n}": t for n, t in update.items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.base = {k.removeprefix("base."): v for k, v in state.items() if k.startswith("base.")}
        pending: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in state.items():
            if key.startswith("pending."):
                _, k, name = key.split(".", 2)
                pending.setdefault(int(k), {})[name] = value
        self.pending = [pending.get(k, {}) for k in range(int(state["pending_count"]))]

