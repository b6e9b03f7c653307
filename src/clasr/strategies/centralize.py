"""Factorization–centralization (arXiv 2506.16574): adapters from a shared base, averaged every K tasks.

Every task trains a fresh adapter from the current frozen base B (not from the previous
task's model); its update is ΔW_t = s·B_t A_t (or the merged update of any adapter).
After every K tasks the adapters are averaged and merged into the base, which becomes the
base of the next adapters. ``average`` says what is averaged:

- ``products`` (default): the updates themselves,
      B ← B + (1/K) Σ_{i=1..K} ΔW_i      (for LoRA: (s/K) Σ_i B_i A_i),
  the exact mean of the K adapted models' weights (taken from the merged weights, so it
  holds for any adapter);
- ``factors``: the adapters' own weights, as the paper writes it (w̄ = 1/N Σ_i w_i) and as
  common tooling merges adapters: every adapter parameter (and persistent buffer) is
  averaged, w̄ = (1/K) Σ_i w_i, and the base moves by the update of that averaged adapter,
      B ← B + ΔW(w̄)                      (for LoRA: s·(1/K Σ_i B_i)(1/K Σ_i A_i)),
  which differs from ``products`` unless the factors agree (e.g. all A_i equal: then
  B̄ A = (1/K) Σ B_i A). The cross terms B_i A_j (i ≠ j) of the factor mean pair one task's
  output directions with another's input directions. Tooling differs in scale too: peft's
  ``add_weighted_adapter(combination_type="linear")`` weights each factor by √w_i, which for
  w_i = 1/K gives K times the product of the means.

``preset: paper`` applies the paper's settings (:func:`paper_preset`).

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

from clasr.adapters.inject import adapter_state_dict, delta_weights, load_adapter_state_dict
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
    average: Literal["products", "factors"] = Field(
        "products", description="what is averaged: the updates ΔW_i, or the adapters' own weights (factors)"
    )
    preset: Literal["paper"] | None = Field(None, description="paper: the paper's settings (see paper_preset)")


# Not the paper's number: only the first page of arXiv 2506.16574 could be read offline, and its
# weight-decay value is in the body (docs/benchmarks.md, "Method fidelity against the papers").
PAPER_WEIGHT_DECAY = 0.01


def paper_preset(plain: dict) -> dict:
    """An experiment config (plain dict) with ``strategy: {name: centralize, preset: paper}`` and
    the paper's settings filled in where the config does not set them itself: K = 3
    (``strategy.every``), adapters on the query and key projections (``adapter.targets``:
    q_proj, k_proj), the adapters' weights averaged (``strategy.average: factors``) and weight
    decay as the Gaussian prior on the adapter weights (``train.weight_decay``,
    :data:`PAPER_WEIGHT_DECAY`). Keys the config sets itself win; other configs are returned as
    they are."""
    strategy = plain.get("strategy")
    if not (isinstance(strategy, dict) and strategy.get("name") == "centralize" and strategy.get("preset") == "paper"):
        return plain
    plain = {**plain, "strategy": {"every": 3, "average": "factors", **strategy}}
    if isinstance(plain.get("adapter"), dict):
        plain["adapter"] = {"targets": {"preset": None, "patterns": ["q_proj", "k_proj"]}, **plain["adapter"]}
    if plain.get("train") is None or isinstance(plain.get("train"), dict):
        plain["train"] = {"weight_decay": PAPER_WEIGHT_DECAY, **(plain.get("train") or {})}
    return plain


class Centralization(Strategy, settings=CentralizeConfig):
    """Per-task adapters from a frozen base; their updates averaged into the base every K tasks."""

    def __init__(self, config: CentralizeConfig):
        self.config = config
        self.base: dict[str, torch.Tensor] = {}
        self.pending: list[dict[str, torch.Tensor]] = []  # updates of the tasks since the last centralization
        self.uncentralized: tuple[str, dict[str, torch.Tensor]] | None = None  # (task, B_old + ΔW_t) until scored
        self.pending_factors: list[dict[str, torch.Tensor]] = []  # average: factors — adapter weights since then
        self.factor_average: dict[str, torch.Tensor] = {}  # ΔW(w̄) by parameter, from the group's last task

    def before_task(self, model: torch.nn.Module, task: TaskContext) -> None:
        self.base = reset_to_base(model, self.base)

    @torch.no_grad()
    def adapters_trained(self, model: torch.nn.Module, task: TaskContext) -> None:
        """With ``average: factors``: keep this task's adapter weights; at the group's last task,
        ΔW of the averaged weights, computed by the live adapters themselves (then restored)."""
        if self.config.average != "factors":
            return
        own = {name: value.clone() for name, value in adapter_state_dict(model).items()}
        self.pending_factors.append(own)
        if len(self.pending_factors) < self.config.every:
            return
        mean = {name: sum(f[name] for f in self.pending_factors) / len(self.pending_factors) for name in own}
        load_adapter_state_dict(model, mean)
        self.factor_average = {f"{layer}.weight": delta.clone() for layer, delta in delta_weights(model).items()}
        load_adapter_state_dict(model, own)
        self.pending_factors = []

    @torch.no_grad()
    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        self.pending.append(update_from(model, self.base))
        if len(self.pending) < self.config.every:
            return {"deployed": "base + this task's update", "pending_updates": len(self.pending)}
        if len(self.pending) > 1:
            self.uncentralized = (task.name, {n: self.base[n] + u for n, u in self.pending[-1].items()})
        if self.config.average == "factors":
            if not self.factor_average:
                raise RuntimeError("average: factors needs adapters_trained() after each task's training")
            for name, delta in self.factor_average.items():
                self.base[name] = self.base[name] + delta
            self.factor_average = {}
        else:
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
        for k, factors in enumerate(self.pending_factors):
            state.update({f"factors.{k}.{n}": t for n, t in factors.items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.base = {k.removeprefix("base."): v for k, v in state.items() if k.startswith("base.")}
        pending: dict[int, dict[str, torch.Tensor]] = {}
        factors: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in state.items():
            kind, _, rest = key.partition(".")
            if kind in ("pending", "factors"):
                k, name = rest.split(".", 1)
                (pending if kind == "pending" else factors).setdefault(int(k), {})[name] = value
        self.pending = [pending.get(k, {}) for k in range(int(state["pending_count"]))]
        self.pending_factors = [factors[k] for k in sorted(factors)]

