"""Task-specific updates, swapped per task: the base never moves, each task keeps its own.

Every task trains from the foundation model θ_0 (with an ``adapter:`` section, a fresh
adapter on the frozen base — the usual multi-adapter deployment); its merged update
ΔW_t = θ̃_t − θ_0 is stored and the model is reset to θ_0. Scoring task j's test (or dev)
set uses θ_0 + ΔW_j once task j has been learned — the task identity is given, as when
an adapter is picked per domain at inference — and every other set θ_0. Forgetting is zero
by construction; the price is one stored update per task and a task label at inference,
and nothing is shared between tasks. Without an adapter the "update" is a whole
fine-tuned model per task.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager, Literal

import torch

from clasr.strategies.base import (
    Strategy,
    StrategySettings,
    TaskContext,
    interpolate_,
    reset_to_base,
    temporarily_loaded,
    update_from,
)

_SEPARATOR = "@"  # task names never contain it (config pattern [A-Za-z0-9_.-]), parameter names neither


class AdapterSwapConfig(StrategySettings):
    name: Literal["swap"] = "swap"


class AdapterSwap(Strategy, settings=AdapterSwapConfig):
    """Per-task updates from a fixed base, applied only to their own task's sets."""

    def __init__(self, config: AdapterSwapConfig):
        self.config = config
        self.base: dict[str, torch.Tensor] = {}
        self.updates: dict[str, dict[str, torch.Tensor]] = {}  # task name → parameter → ΔW

    def before_task(self, model: torch.nn.Module, task: TaskContext) -> None:
        self.base = reset_to_base(model, self.base)

    @torch.no_grad()
    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        self.updates[task.name] = update_from(model, self.base)
        interpolate_(model, self.base, 0.0)
        stored = sum(t.numel() for update in self.updates.values() for t in update.values())
        return {"deployed": "foundation model; each task's sets scored with its own update", "stored_values": stored}

    def scoring(self, model: torch.nn.Module, set_key: str) -> ContextManager[None]:
        kind, _, name = set_key.partition("/")
        update = self.updates.get(name) if kind in ("test", "dev") else None
        if not update:
            return nullcontext()
        return temporarily_loaded(model, {n: self.base[n] + delta for n, delta in update.items()}, self.base)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"base{_SEPARATOR}{n}": t for n, t in self.base.items()}
        for task, update in self.updates.items():
            state.update({f"update{_SEPARATOR}{task}{_SEPARATOR}{n}": t for n, t in update.items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.base, self.updates = {}, {}
        for key, value in state.items():
            kind, *rest = key.split(_SEPARATOR)
            if kind == "base":
                self.base[rest[0]] = value
            else:
                self.updates.setdefault(rest[0], {})[rest[1]] = value
