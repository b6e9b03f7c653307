"""The one teacher-forced forward pass and token loss that training, curvature, EWC and LwF share.

Teacher forcing feeds the decoder the reference tokens (``decoder_input_ids``: the prompt,
then the transcript) and reads at every position i the distribution p(· | y_<i, x) of the
next token. The loss is the cross-entropy of the labels over the M scored positions
(labels ≠ IGNORE_INDEX: the prompt and the padding never count)::

    ℓ_i  = −log p(y_i | y_<i, x)
    mean       L = (1/M) Σ_i ℓ_i                    (training's loss)
    sum        L = Σ_i ℓ_i                          (curvature: independent of how utterances are batched)
    utterance  L_n = Σ_{i ∈ n} ℓ_i, one per row     (an utterance's negative log-likelihood)

Logits are promoted to float32 first, so that a bf16 forward pass still gives a float32 loss.
For a sampled Fisher the labels are drawn from the model's own predictive distribution at
the scored positions (:func:`sample_labels`); the decoder inputs stay the reference tokens.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from clasr.data.batching import IGNORE_INDEX, SpeechBatch

Reduction = Literal["mean", "sum", "utterance"]
FisherType = Literal["empirical", "sampled"]
FISHER_TYPES = ("empirical", "sampled")


def teacher_forced_logits(model: nn.Module, batch: SpeechBatch) -> torch.Tensor:
    """Logits (B, L, vocabulary) of the decoder fed the batch's reference tokens."""
    return model(input_features=batch.input_features, decoder_input_ids=batch.decoder_input_ids, use_cache=False).logits


def token_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """Token cross-entropy over the scored positions, reduced as the module docstring says
    (``mean`` of an all-unscored batch is NaN)."""
    if reduction not in ("mean", "sum", "utterance"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'utterance', got {reduction!r}")
    flat = F.cross_entropy(
        logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX,
        reduction="none" if reduction == "utterance" else reduction,
    )
    return flat.view(labels.shape).sum(-1) if reduction == "utterance" else flat


def scored_tokens(labels: torch.Tensor) -> int:
    """M, the number of scored positions (labels ≠ IGNORE_INDEX)."""
    return int((labels != IGNORE_INDEX).sum())


def sample_labels(logits: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One label per scored position drawn from softmax(logits); unscored positions keep IGNORE_INDEX."""
    scored = labels != IGNORE_INDEX
    probs = logits.detach()[scored].float().softmax(-1)
    sampled = labels.clone()
    sampled[scored] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return sampled


def fisher_loss(model: nn.Module, fisher: FisherType, seed: int) -> Callable[[SpeechBatch], torch.Tensor]:
    """batch ↦ the summed token loss Σ_i ℓ_i of the model on the batch, against its labels
    (``empirical``) or against labels sampled once per scored position from the model
    (``sampled``, drawn from one generator seeded with ``seed`` across all calls)."""
    if fisher not in FISHER_TYPES:
        raise ValueError(f"fisher must be 'empirical' or 'sampled', got {fisher!r}")
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)

    def loss(batch: SpeechBatch) -> torch.Tensor:
        logits = teacher_forced_logits(model, batch)
        labels = batch.labels if fisher == "empirical" else sample_labels(logits, batch.labels, generator)
        return token_loss(logits, labels, "sum")

    return loss
