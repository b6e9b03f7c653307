"""Online EWC — elastic weight consolidation with a running diagonal Fisher
(Kirkpatrick et al. 2017; online variant of Schwarz et al. 2018, "Progress & Compress").

While training on task t, every trainable parameter θ_i is pulled towards its value θ*_i
in θ_{t−1}, the model deployed after the previous task, weighted by the accumulated Fisher::

    loss = CE(task t) + (λ/2) Σ_i F̃_i (θ_i − θ*_i)²
    F̃_t  = γ F̃_{t−1} + F_t                (γ = 1: plain sum over past tasks)

F_t, the diagonal Fisher at θ_t, is collected after task t from at most
``fisher_utterances`` training utterances u_n (a seeded random subset), each its own
batch of one, so that the squares are of per-utterance gradients — the diagonal of the
Fisher of the sequence model p(y | x) — never of a batch's mean gradient (which would
sum the cross terms between utterances)::

    F_t = Σ_n (∂ℓ_n/∂θ)² / Σ_n M_n,        ℓ_n = −Σ_{i scored in u_n} log p(y_i | y_<i, x_n)

ℓ_n is the utterance's summed token negative log-likelihood and M_n its number of scored
tokens. Dividing by the token count puts F on the scale of the training loss, a mean over
tokens: for sampled labels (drawn independently per position) the cross-token terms
vanish in expectation and F is the diagonal of the mean per-token Fisher (= Gauss–Newton
of the cross-entropy), so (1/2) Σ F (θ − θ*)² approximates, to second order and in its
diagonal, the increase of the previous tasks' mean token cross-entropy: λ = 1 weighs it
like the new task's loss. With true labels the cross terms stay (the empirical Fisher).
``fisher: empirical`` (default) uses the true transcripts, ``sampled`` labels drawn from
the model at every scored position (teacher forcing keeps the true decoder inputs).
Task 1 trains without penalty. Only parameters that require grad are tracked; F̃ and θ*
are the strategy's state.

With an adapter section, a task trains fresh adapters over θ_{t−1} (merged after it, so
the Fisher is collected on the plain model): the penalty then reads each adapted Linear's
weight as W' = W + ΔW under the plain layer's name, so it pulls the adapters' update
ΔW towards 0 with the weight's Fisher; the model's other parameters are frozen at θ*.
"""

from __future__ import annotations

import random
from functools import partial
from typing import Iterable, Iterator, Literal, Sequence

import torch
from pydantic import Field

from clasr.adapters.inject import adapter_modules
from clasr.curvature.fisher import ExampleLoss, diagonal_fisher
from clasr.curvature.kfac import eval_mode
from clasr.data.batching import SpeechBatch, SpeechCollator
from clasr.data.manifest import Utterance
from clasr.distributed import shard
from clasr.models.teacher_forcing import fisher_loss, scored_tokens
from clasr.strategies.base import Strategy, StrategySettings, TaskContext


class EWCConfig(StrategySettings):
    name: Literal["ewc"] = "ewc"
    strength: float = Field(
        1e6, ge=0,
        description="λ, weight of the penalty (λ/2) Σ F̃ (θ − θ*)²; 1e6 chosen on the demo's dev splits for "
        "Whisper tiny.en (its per-parameter Fisher is ~1e-5 … 1e-7, so λ = 1 does nothing)",
    )
    gamma: float = Field(1.0, ge=0, le=1, description="decay γ: F̃_t = γ F̃_{t−1} + F_t")
    fisher: Literal["empirical", "sampled"] = "empirical"
    fisher_utterances: int = Field(64, ge=1, description="training utterances (batches of one) behind F_t")


def accumulate(
    previous: dict[str, torch.Tensor], current: dict[str, torch.Tensor], gamma: float
) -> dict[str, torch.Tensor]:
    """F̃_t = γ F̃_{t−1} + F_t, parameter by parameter (a parameter new to F_t starts at F_t)."""
    merged = {name: gamma * f for name, f in previous.items()}
    for name, f in current.items():
        merged[name] = merged[name] + f if name in merged else f
    return merged


def ewc_penalty(
    params: Iterable[tuple[str, torch.Tensor]],
    fisher: dict[str, torch.Tensor],
    anchor: dict[str, torch.Tensor],
    strength: float,
) -> torch.Tensor:
    """(λ/2) Σ_i F̃_i (θ_i − θ*_i)² over the named parameters that have a Fisher."""
    total = sum((fisher[name] * (p - anchor[name]).square()).sum() for name, p in params if name in fisher)
    return 0.5 * strength * total


def effective_parameters(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The model's parameters under their plain names, an adapted Linear's weight read as
    W' = W + ΔW (differentiable in the adapter); the adapters' own parameters and the
    layers they wrap are not listed apart."""
    adapters = adapter_modules(model)
    for layer, adapter in adapters.items():
        yield f"{layer}.weight", adapter.adapted_weight()
    prefixes = tuple(f"{layer}." for layer in adapters)
    for name, p in model.named_parameters():
        if not name.startswith(prefixes):
            yield name, p


def whisper_examples(
    model: torch.nn.Module,
    utterances: Sequence[Utterance],
    collator: SpeechCollator,
    config: EWCConfig,
    seed: int,
) -> Iterable[ExampleLoss]:
    """One :data:`ExampleLoss` per utterance of a seeded random subset of ``fisher_utterances``
    (with several processes, this process's share of the subset)."""
    chosen = random.Random(seed).sample(range(len(utterances)), min(config.fisher_utterances, len(utterances)))
    chosen = shard(chosen)
    device = next(model.parameters()).device
    summed_loss = fisher_loss(model, config.fisher, seed)

    def example(index: int) -> tuple[torch.Tensor, int]:
        batch = collator([utterances[index]], [index]).to(device)
        return summed_loss(batch), scored_tokens(batch.labels)

    return (partial(example, i) for i in chosen)


class ElasticWeightConsolidation(Strategy, settings=EWCConfig):
    """Online EWC: a quadratic pull towards θ_{t−1}, weighted by the accumulated diagonal Fisher."""

    def __init__(self, config: EWCConfig):
        self.config = config
        self.fisher: dict[str, torch.Tensor] = {}  # F̃ after the last finished task
        self.anchor: dict[str, torch.Tensor] = {}  # θ* = θ of the last finished task

    def extra_loss(self, model: torch.nn.Module, batch: SpeechBatch, logits: torch.Tensor) -> torch.Tensor | None:
        if not self.fisher:
            return None
        return ewc_penalty(effective_parameters(model), self.fisher, self.anchor, self.config.strength)

    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        current = self._fisher_of(model, task)
        self.fisher = accumulate(self.fisher, current, self.config.gamma)
        self.anchor = {name: p.detach().clone() for name, p in model.named_parameters() if name in self.fisher}
        return {
            "fisher_utterances": min(self.config.fisher_utterances, len(task.train_utterances)),
            "fisher_mean": float(sum(f.double().sum() for f in current.values()))
            / sum(f.numel() for f in current.values()),
            "state_bytes": sum(t.numel() * t.element_size() for t in [*self.fisher.values(), *self.anchor.values()]),
        }

    def _fisher_of(self, model: torch.nn.Module, task: TaskContext) -> dict[str, torch.Tensor]:
        """F_t of the trainable parameters at the current model, in eval mode (no dropout)."""
        params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        examples = whisper_examples(model, task.train_utterances, task.collator, self.config, task.seed)
        with eval_mode(model), torch.enable_grad():
            return diagonal_fisher(params, examples)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"fisher.{n}": f for n, f in self.fisher.items()} | {f"anchor.{n}": a for n, a in self.anchor.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.fisher = {key.removeprefix("fisher."): v for key, v in state.items() if key.startswith("fisher.")}
        self.anchor = {key.removeprefix("anchor."): v for key, v in state.items() if key.startswith("anchor.")}
