"""The one training loop of clasr, on Hugging Face Accelerate.

The same code runs on a laptop CPU, one GPU, or several processes/nodes
(``accelerate launch``): each process takes every ``num_processes``-th batch, gradients
are averaged by Accelerate, and only the main process shows progress.

Per optimizer step: the mean token cross-entropy over the scored label positions (plus a
strategy's extra loss term), gradients accumulated over ``grad_accumulation`` batches,
clipped to ``max_grad_norm``, AdamW, learning rate with linear warm-up then linear or
cosine decay (or constant). Batches hold utterances of similar duration; their order is
shuffled per epoch with a fixed seed.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from pydantic import BaseModel, ConfigDict, Field
from transformers import get_scheduler

from clasr.data.batching import IGNORE_INDEX, SpeechBatch, SpeechCollator, duration_batches
from clasr.data.manifest import Utterance
from clasr.progress import progress_bar

ExtraLoss = Callable[[torch.nn.Module, SpeechBatch, torch.Tensor], "torch.Tensor | None"]


class TrainConfig(BaseModel):
    """Hyper-parameters of training on one task."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(1e-5, gt=0)
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; stops before the epochs end")
    batch_size: int = Field(8, ge=1)
    grad_accumulation: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    bf16: bool = Field(False, description="bf16 autocast for forward/backward; weights stay float32")


@dataclass
class TrainStats:
    """What one task's training did."""

    optimizer_steps: int
    utterances: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean loss per optimizer step

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.optimizer_steps, 1)

    def summary(self) -> dict:
        tail = self.losses[-10:]
        return {
            "optimizer_steps": self.optimizer_steps,
            "utterances": self.utterances,
            "seconds": round(self.seconds, 2),
            "seconds_per_step": round(self.seconds_per_step, 3),
            "utterances_per_second": round(self.utterances / max(self.seconds, 1e-9), 2),
            "first_loss": self.losses[0] if self.losses else None,
            "last_loss_mean10": sum(tail) / len(tail) if tail else None,
        }


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the label positions that are scored (labels ≠ IGNORE_INDEX)."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


def step_plan(n_batches: int, config: TrainConfig) -> int:
    """Optimizer steps for ``n_batches`` batches (all epochs together): one per ``grad_accumulation``
    batches, the last one possibly shorter, capped by ``max_steps``."""
    steps = math.ceil(n_batches / config.grad_accumulation)
    return min(steps, config.max_steps) if config.max_steps else steps


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter of the model is frozen")
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.learning_rate)


def _epoch_batches(utterances: Sequence[Utterance], config: TrainConfig, seed: int, accelerator) -> list[list[int]]:
    """All epochs' batches for this process, in training order."""
    durations = [u.duration for u in utterances]
    batches = []
    for epoch in range(config.epochs):
        epoch_batches = duration_batches(durations, config.batch_size, shuffle=True, seed=seed + epoch)
        batches += epoch_batches[accelerator.process_index :: accelerator.num_processes]
    return batches


def train_task(
    model: torch.nn.Module,
    utterances: Sequence[Utterance],
    collator: SpeechCollator,
    config: TrainConfig,
    accelerator: Accelerator,
    seed: int = 0,
    extra_loss: ExtraLoss | None = None,
    description: str = "training",
) -> TrainStats:
    """Train ``model`` in place on ``utterances``; returns the loss curve and timings."""
    set_seed(seed)
    batches = _epoch_batches(utterances, config, seed, accelerator)
    total_steps = step_plan(len(batches), config)
    optimizer = _optimizer(model, config)
    scheduler = get_scheduler(
        config.schedule if config.schedule != "constant" else "constant_with_warmup",
        optimizer,
        num_warmup_steps=round(config.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    wrapped, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    wrapped.train()
    stats = TrainStats(0, 0, 0.0)
    start = time.perf_counter()
    step_losses: list[float] = []
    with progress_bar() as progress:
        bar = progress.add_task(description, total=total_steps, info="", visible=accelerator.is_main_process)
        for micro, indices in enumerate(batches):
            batch = collator([utterances[i] for i in indices], indices).to(accelerator.device)
            sync = (micro + 1) % config.grad_accumulation == 0 or micro + 1 == len(batches)
            loss = _backward(wrapped, batch, accelerator, config, extra_loss, sync)
            step_losses.append(loss)
            stats.utterances += len(indices)
            if not sync:
                continue
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(wrapped.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            stats.optimizer_steps += 1
            stats.losses.append(sum(step_losses) / len(step_losses))
            step_losses = []
            elapsed = time.perf_counter() - start
            info = f"loss {stats.losses[-1]:.3f}  {stats.utterances / elapsed:.1f} utt/s"
            progress.update(bar, advance=1, info=info)
            if stats.optimizer_steps >= total_steps:
                break
    stats.seconds = time.perf_counter() - start
    accelerator.unwrap_model(wrapped, keep_fp32_wrapper=False)
    accelerator.free_memory()
    model.eval()
    return stats


def _backward(wrapped, batch: SpeechBatch, accelerator, config: TrainConfig, extra_loss, sync: bool) -> float:
    """Forward and backward of one batch; gradients synchronised across processes only when ``sync``."""
    context = accelerator.no_sync(wrapped) if not sync else nullcontext()
    with context, accelerator.autocast():
        logits = wrapped(input_features=batch.input_features, decoder_input_ids=batch.decoder_input_ids).logits
        loss = token_cross_entropy(logits, batch.labels)
        if extra_loss is not None:
            extra = extra_loss(accelerator.unwrap_model(wrapped), batch, logits)
            if extra is not None:
                loss = loss + extra
        accelerator.backward(loss / config.grad_accumulation)
    return float(loss.detach())
