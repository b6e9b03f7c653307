"""The interface every adapter shares: a frozen ``nn.Linear`` plus a trainable update.

An adapter represents an adapted weight W' = W + ΔW of the layer it wraps (``self.base``,
weight W, kept frozen and never modified while unmerged). ``delta_weight()`` is ΔW = W' − W
(for additive adapters the low-rank product itself; for DoRA and SSVD the difference of
the re-composed weight and W). At construction every adapter represents W' = W, so the
wrapped layer computes exactly what the plain layer computed.

Merging writes W' into ``base.weight`` and keeps a copy of W, so ``forward`` is then the
plain layer's and ``unmerge`` puts W back bit for bit (no subtraction, so no rounding and no
corruption of the frozen weight). Merging a merged adapter or unmerging an unmerged one is
an error (``RuntimeError``): it always points at a bookkeeping mistake.

What differs between adapters beyond the layer itself lives on the adapter class, so the code
that runs a task never asks which adapter it holds: :meth:`AdapterLinear.prepare` (told the
task's training-set size before training; BLoRA scales its KL by it),
:meth:`AdapterLinear.task_facts` (facts recorded with the task; BLoRA's sparsity) and
``peft_exportable`` (has a PEFT LoRA format). Each settings class names the layer it builds
in its class variable ``module``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from clasr.adapters.targets import TargetConfig


@dataclass(frozen=True)
class TrainingSet:
    """What an adapter is told about the task it is about to train on."""

    utterances: int
    target_tokens: int  # scored decoder positions: each transcript's tokens plus its end token


class AdapterLinear(nn.Module, ABC):
    """A frozen ``nn.Linear`` (``self.base``) with a trainable weight update."""

    kind: str = ""
    peft_exportable: ClassVar[bool] = False  # saved in PEFT's LoRA format too (clasr.adapters.peft_export)

    def __init__(self, base: nn.Linear):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"adapters wrap nn.Linear, got {type(base).__name__}")
        self.base = base
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self.merged = False
        self.register_buffer("unmerged_weight", None, persistent=False)

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> Tensor:
        """The weight the wrapped layer currently holds (W, or W' while merged)."""
        return self.base.weight

    @property
    def bias(self) -> Tensor | None:
        return self.base.bias

    @property
    def frozen_weight(self) -> Tensor:
        """The pretrained weight W, whether merged or not."""
        return self.unmerged_weight if self.merged else self.base.weight

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) if self.merged else self.adapted_forward(x)

    @abstractmethod
    def adapted_forward(self, x: Tensor) -> Tensor:
        """The adapted layer's output x W'ᵀ + b, computed without forming W' where possible."""

    @abstractmethod
    def delta_weight(self) -> Tensor:
        """ΔW = W' − W (out × in), differentiable in the adapter's parameters."""

    def adapted_weight(self) -> Tensor:
        """W' = W + ΔW."""
        return self.frozen_weight + self.delta_weight()

    @torch.no_grad()
    def merge(self) -> None:
        """Write W' into ``base.weight``, keeping W for :meth:`unmerge`."""
        if self.merged:
            raise RuntimeError("adapter is already merged")
        adapted = self.adapted_weight().to(self.base.weight.dtype)
        self.unmerged_weight = self.base.weight.detach().clone()
        self.base.weight.copy_(adapted)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Put the pretrained weight W back into ``base.weight`` exactly."""
        if not self.merged:
            raise RuntimeError("adapter is not merged")
        self.base.weight.copy_(self.unmerged_weight)
        self.unmerged_weight = None
        self.merged = False

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The adapter's own parameters (everything but the wrapped layer's)."""
        return [p for name, p in self.named_parameters() if not name.startswith("base.")]

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def prepare(self, training: TrainingSet) -> None:
        """Called once before the task's training starts (default: nothing to prepare)."""

    def extra_loss(self) -> Tensor | None:
        """A term to add to the training loss (BLoRA's scaled KL); ``None`` for the others."""
        return None

    @classmethod
    def task_facts(cls, layers: Sequence["AdapterLinear"]) -> dict[str, Any]:
        """Facts about a task's trained adapters of this class, recorded with the task's row
        (default: none)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """The adapter's type, shape and trainable-parameter count (subclasses add their settings)."""
        return {"type": self.kind, "in": self.in_features, "out": self.out_features, "params": self.num_trainable()}

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.describe().items())


class AdapterSettings(BaseModel, ABC):
    """Hyper-parameters shared by every adapter config: which layers to adapt."""

    model_config = ConfigDict(extra="forbid")

    targets: TargetConfig = Field(default_factory=TargetConfig)
    module: ClassVar[type[AdapterLinear]]  # the adapter layer these settings build

    @abstractmethod
    def build(self, linear: nn.Linear) -> AdapterLinear:
        """The adapter for one selected layer."""
