"""Frozen-part fine-tuning: train only Whisper's encoder or only its decoder.

Before every task, the part that is not trained gets ``requires_grad = False``:

    part = encoder:  θ_dec (with the output projection ``proj_out``, tied to the decoder's
                     token embeddings) frozen; the encoder is trained.
    part = decoder:  the whole encoder θ_enc frozen; the decoder and ``proj_out`` are trained.

The encoder's sinusoidal position table ``embed_positions`` is frozen in either case (it is
fixed in Whisper). Nothing is ever unfrozen: parameters that were frozen already (e.g. by
adapters) stay so, and the freezing persists across tasks, so θ_t = θ̃_t with the frozen
part equal to the foundation model's for the whole sequence.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from clasr.strategies.base import Strategy, StrategySettings, TaskContext


class FrozenPartConfig(StrategySettings):
    name: Literal["frozen"] = "frozen"
    part: Literal["encoder", "decoder"] = Field("encoder", description="the part that is trained; the other is frozen")


def frozen_modules(model: torch.nn.Module, part: str) -> list[torch.nn.Module]:
    """The modules of a Whisper model that stay fixed when ``part`` is trained."""
    encoder = model.get_encoder()
    if part == "encoder":
        return [model.get_decoder(), model.get_output_embeddings(), encoder.embed_positions]
    return [encoder]


class FrozenPart(Strategy, settings=FrozenPartConfig):
    """Fine-tune one part of the model, the other frozen."""

    def __init__(self, config: FrozenPartConfig):
        self.config = config

    def before_task(self, model: torch.nn.Module, task: TaskContext) -> None:
        for module in frozen_modules(model, self.config.part):
            module.requires_grad_(False)

    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        params = list(model.parameters())
        return {
            "trained_part": self.config.part,
            "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
            "frozen_parameters": sum(p.numel() for p in params if not p.requires_grad),
        }
