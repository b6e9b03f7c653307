"""The one training loop of clasr, on Hugging Face Accelerate.

The same code runs on a laptop CPU, one GPU, or several processes/nodes
(``accelerate launch``): each process takes every ``num_processes``-th batch, gradients
are averaged by Accelerate, and only the main process shows progress.

Per optimizer step: the mean token cross-entropy over the scored label positions (plus a
strategy's extra loss term), gradients accumulated over ``grad_accumulation`` batches with
each batch weighted by its share of the step's scored tokens (torchtune's rule: every token
counts the same, however the utterances fall into batches and processes)::

    L = Σ_k (M_k / N) · (CE_k + extra_k),     N = Σ_k M_k over the step's batches on all processes

with CE_k the mean cross-entropy of batch k and M_k its scored tokens, so the cross-entropy
part is Σ_i ℓ_i / N over the step's tokens (one batch: L = CE + extra, as without
accumulation). The gradients are then clipped to ``max_grad_norm``, AdamW, learning rate with linear warm-up then linear or
cosine decay (or constant). Batches hold utterances of similar duration; their order is
shuffled per epoch with a fixed seed. ``bf16`` runs forward and backward under bf16
autocast (weights and optimizer state stay float32); it is applied here rather than through
Accelerate's process-wide ``mixed_precision`` so that each task and benchmark can choose.
AdamW runs fused (one kernel over all tensors) on CPU and CUDA. ``encoder_window: fitted``
trains each batch at a window fitted to its longest utterance (:mod:`clasr.models.fitted_window`);
``gradient_checkpointing`` trades one more forward pass for the layers' activations.
"""

from __future__ import annotations

import math
import statistics
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from pydantic import BaseModel, ConfigDict, Field
from transformers import get_scheduler

from clasr.data.batching import SpeechBatch, SpeechCollator, batch_stream, duration_batches
from clasr.data.manifest import Utterance
from clasr.models.fitted_window import cut_features, fitted_frames, narrowed_encoder
from clasr.models.teacher_forcing import scored_tokens, teacher_forced_logits, token_loss
from clasr.precision import BF16Setting, use_bf16
from clasr.distributed import sum_counts
from clasr.progress import progress_bar
from clasr.tracking import log_step

FUSED_ADAMW_DEVICES = ("cpu", "cuda")
CONSECUTIVE_BAD_STEPS = 3  # in skip mode, this many bad steps in a row is divergence, not one bad batch
ExtraLoss = Callable[[torch.nn.Module, SpeechBatch, torch.Tensor], "torch.Tensor | None"]
StepCallback = Callable[[int, bool], bool]  # (optimizer steps done, last planned step) → end the task now


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
    bf16: BF16Setting = Field(
        False, description="bf16 autocast for forward/backward (weights stay float32); 'auto': on only where the "
        "device multiplies bf16 fast (CUDA compute capability ≥ 8.0, CPUs with AMX), where it is faster"
    )
    num_workers: int = Field(
        0, ge=0, description="DataLoader worker processes decoding audio ahead of training (0: in the training process); "
        "the batches are the same either way"
    )
    max_loss: float | None = Field(
        None, gt=0, description="a step whose token cross-entropy exceeds this has diverged; default 10·ln(vocabulary "
        "size), ten times the loss of a uniform guess"
    )
    encoder_window: Literal["model", "fitted"] = Field(
        "model", description="the encoder window while training: the model's own (model.window_seconds), or "
        "'fitted' to each batch's longest utterance rounded up to whole seconds (clasr.models.fitted_window): "
        "7–10× faster steps on tiny.en, but it learned significantly less on AN4 dev in the same steps "
        "(docs/benchmarks.md); evaluation always uses the model's window"
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute each encoder and decoder layer's activations in the backward pass instead of "
        "keeping them (transformers' activation checkpointing): less memory, one more forward pass of time"
    )
    on_bad_loss: Literal["stop", "skip"] = Field(
        "stop", description="a NaN, infinite or diverged loss (or gradient norm): stop the task with an error, or skip "
        f"that step and count it (still stops after {CONSECUTIVE_BAD_STEPS} bad steps in a row)"
    )


class TrainingDivergedError(RuntimeError):
    """Training produced a NaN, infinite or exploding loss; the message names the task and step."""


@dataclass
class TrainStats:
    """What one task's training did."""

    optimizer_steps: int
    utterances: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean loss per optimizer step
    step_seconds: list[float] = field(default_factory=list)  # wall time of each optimizer step
    skipped_steps: list[int] = field(default_factory=list)  # 1-based steps skipped for a bad loss (on_bad_loss: skip)

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.optimizer_steps, 1)

    @property
    def median_step_seconds(self) -> float | None:
        """Median step time without the first step (warm-up: allocations, kernel selection)."""
        timed = self.step_seconds[1:] or self.step_seconds
        return statistics.median(timed) if timed else None

    def summary(self) -> dict:
        tail = self.losses[-10:]
        return {
            "optimizer_steps": self.optimizer_steps,
            "utterances": self.utterances,
            "seconds": round(self.seconds, 2),
            "seconds_per_step": round(self.seconds_per_step, 3),
            "median_step_seconds": self.median_step_seconds,
            "utterances_per_second": round(self.utterances / max(self.seconds, 1e-9), 2),
            "first_loss": self.losses[0] if self.losses else None,
            "last_loss_mean10": sum(tail) / len(tail) if tail else None,
            "skipped_steps": self.skipped_steps,
        }


def accumulation_groups(batches: list[list[int]], config: TrainConfig) -> list[list[list[int]]]:
    """Batches grouped per optimizer step (``grad_accumulation`` each, the last possibly
    shorter), at most ``max_steps`` groups."""
    size = config.grad_accumulation
    groups = [batches[i : i + size] for i in range(0, len(batches), size)]
    return groups[: config.max_steps] if config.max_steps else groups


def token_weights(tokens: list[int], accelerator) -> list[float]:
    """w_k = P · M_k / N for the step's batches of this process, with M_k their scored tokens,
    N the step's scored tokens summed over all P processes: Accelerate averages the gradients
    of the processes, so Σ over processes and batches of w_k/P · ∇CE_k is ∇ Σ_i ℓ_i / N."""
    total = sum(tokens)
    if accelerator.num_processes > 1:
        count = torch.tensor([float(total)], device=accelerator.device)
        total = int(accelerator.reduce(count, reduction="sum"))
    return [accelerator.num_processes * m / total if total else 0.0 for m in tokens]


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter of the model is frozen")
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = all(p.device.type in FUSED_ADAMW_DEVICES for p in params)  # one kernel for all tensors: same update, faster
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.learning_rate, fused=fused or None)


def _epoch_batches(utterances: Sequence[Utterance], config: TrainConfig, seed: int, accelerator) -> list[list[int]]:
    """All epochs' batches for this process, in training order.

    With several processes each takes every n-th batch of an epoch; the epoch is first cut
    to a multiple of n batches so that every process makes the same number of steps.
    """
    durations = [u.duration for u in utterances]
    world, rank = accelerator.num_processes, accelerator.process_index
    batches = []
    for epoch in range(config.epochs):
        epoch_batches = duration_batches(durations, config.batch_size, shuffle=True, seed=seed + epoch)
        usable = len(epoch_batches) - len(epoch_batches) % world
        if usable == 0:
            raise ValueError(f"{len(utterances)} training utterances make fewer batches than the {world} processes")
        batches += epoch_batches[:usable][rank::world]
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
    on_step: StepCallback | None = None,
    steps_before: int = 0,
) -> TrainStats:
    """Train ``model`` in place on ``utterances``; returns the loss curve and timings.

    ``on_step(steps_done, last)`` is called after every optimizer step (``last``: the final
    planned one); when it returns True the task ends there (the general-ability guard).
    Each step's loss, learning rate and throughput go to the accelerator's trackers
    (:mod:`clasr.tracking`) at step ``steps_before + steps_done``."""
    set_seed(seed)
    groups = accumulation_groups(_epoch_batches(utterances, config, seed, accelerator), config)
    optimizer = _optimizer(model, config)
    scheduler = get_scheduler(  # stepped here once per step: not handed to Accelerate, which steps it per process
        config.schedule if config.schedule != "constant" else "constant_with_warmup",
        optimizer,
        num_warmup_steps=round(config.warmup_ratio * len(groups)),
        num_training_steps=len(groups),
    )
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    wrapped.train()
    stats = TrainStats(0, 0, 0.0)
    start = time.perf_counter()
    with progress_bar() as progress, activation_checkpointing(model, config.gradient_checkpointing):
        bar = progress.add_task(description, total=len(groups), info="", visible=accelerator.is_main_process)
        batches = batch_stream(utterances, [b for step in groups for b in step], collator, config.num_workers)
        for group in groups:
            step_start = time.perf_counter()
            step_batches = [next(batches).to(accelerator.device) for _ in group]
            tokens = [scored_tokens(batch.labels) for batch in step_batches]
            weights = token_weights(tokens, accelerator)
            losses, problems = [], []
            for k, (batch, weight) in enumerate(zip(step_batches, weights)):
                sync = k == len(group) - 1
                loss, problem = _backward(model, wrapped, batch, accelerator, config, extra_loss, sync, weight)
                losses.append(loss)
                problems.append(problem)
                stats.utterances += len(batch.indices)
            if config.max_grad_norm:
                norm = accelerator.clip_grad_norm_(wrapped.parameters(), config.max_grad_norm)
                problems.append(None if torch.isfinite(norm) else f"gradient norm {float(norm)}")
            problem = _first_problem(problems, accelerator)
            if problem is not None:
                _bad_step(problem, stats, config, description, len(groups))
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                progress.update(bar, advance=1, info=f"step skipped: {problem}")
                continue
            learning_rate = scheduler.get_last_lr()[0]  # the rate of this step, for the trackers
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            stats.optimizer_steps += 1
            stats.losses.append(sum(m / sum(tokens) * loss for m, loss in zip(tokens, losses)))
            now = time.perf_counter()
            stats.step_seconds.append(now - step_start)
            info = f"loss {stats.losses[-1]:.3f}  {stats.utterances / (now - start):.1f} utt/s"
            progress.update(bar, advance=1, info=info)
            log_step(accelerator, steps_before + stats.optimizer_steps, stats.losses[-1], learning_rate,
                     stats.utterances, now - start)
            if on_step is not None and on_step(stats.optimizer_steps, group is groups[-1]):
                break
    stats.seconds = time.perf_counter() - start
    stats.utterances = sum_counts({"utterances": stats.utterances})["utterances"]  # of all processes
    accelerator.free_memory()
    model.eval()
    return stats


@contextmanager
def activation_checkpointing(model: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """Within the block, every layer of the (unwrapped) Whisper ``model`` recomputes its activations
    in the backward pass (non-reentrant ``torch.utils.checkpoint``, which restores the random state, so
    dropout and BLoRA's samples are the same in the recomputation); turned off again on exit."""
    if not enabled:
        yield
        return
    model.activation_checkpointing_enable()
    try:
        yield
    finally:
        model.activation_checkpointing_disable()


def _bad_step(problem: str, stats: TrainStats, config: TrainConfig, description: str, planned: int) -> None:
    """Record a skipped step, or raise :class:`TrainingDivergedError` when the loss must stop the task."""
    step = stats.optimizer_steps + len(stats.skipped_steps) + 1
    stats.skipped_steps.append(step)
    recent = stats.skipped_steps[-CONSECUTIVE_BAD_STEPS:]
    in_a_row = len(recent) == CONSECUTIVE_BAD_STEPS and recent[0] == step - CONSECUTIVE_BAD_STEPS + 1
    if config.on_bad_loss == "stop" or in_a_row:
        why = f" ({CONSECUTIVE_BAD_STEPS} bad steps in a row)" if config.on_bad_loss == "skip" else ""
        raise TrainingDivergedError(
            f"{description}: training diverged at step {step} of {planned}: {problem}{why}. The task was stopped "
            "and nothing of it committed; the last finished task's state is kept. Lower train.learning_rate "
            "(or train.max_grad_norm), or set train.on_bad_loss=skip to skip isolated bad steps"
        )


def _first_problem(problems: list[str | None], accelerator) -> str | None:
    """The step's first problem; with several processes, every process learns whether any had one,
    so that all skip (or stop at) the same steps."""
    problem = next((p for p in problems if p is not None), None)
    if accelerator.num_processes > 1:
        flag = torch.tensor([0.0 if problem is None else 1.0], device=accelerator.device)
        if float(accelerator.reduce(flag, reduction="sum")) > 0 and problem is None:
            problem = "a bad loss on another process"
    return problem


def _loss_problem(loss: torch.Tensor, cross_entropy: torch.Tensor, vocabulary: int, config: TrainConfig) -> str | None:
    """Why a batch's loss is unusable: not finite, or its cross-entropy above ``max_loss``."""
    if not torch.isfinite(loss):
        return f"loss is {float(loss)}"
    limit = config.max_loss or 10 * math.log(vocabulary)
    if float(cross_entropy) > limit:
        return f"cross-entropy {float(cross_entropy):.4g} exceeds train.max_loss {limit:.4g}"
    return None


def _backward(
    model, wrapped, batch: SpeechBatch, accelerator, config: TrainConfig, extra_loss, sync: bool, weight: float
) -> tuple[float, str | None]:
    """Forward and backward of one batch of a step, its loss weighted by ``weight`` (see
    :func:`token_weights`); gradients are synchronised across processes only when ``sync``
    (the step's last batch). With ``encoder_window: fitted`` the model's encoder runs over the
    batch's fitted window, and a strategy's extra loss gets the batch cut to it. Returns the
    (unweighted) loss and what makes it unusable (see :func:`_loss_problem`), if anything."""
    fitted = config.encoder_window == "fitted"
    if fitted:
        batch = cut_features(batch, fitted_frames(batch))
    narrowed = narrowed_encoder(model, batch.input_features.shape[-1]) if fitted else nullcontext()
    with accelerator.no_sync(wrapped) if not sync else nullcontext(), narrowed:
        bf16 = use_bf16(config.bf16, accelerator.device)
        with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = teacher_forced_logits(wrapped, batch)
            loss = cross_entropy = token_loss(logits, batch.labels)
            if extra_loss is not None:
                extra = extra_loss(model, batch, logits)
                if extra is not None:
                    loss = loss + extra
        accelerator.backward(loss * weight)
    loss = loss.detach()
    return float(loss), _loss_problem(loss, cross_entropy.detach(), logits.shape[-1], config)
