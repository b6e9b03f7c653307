"""How well a model still predicts a set's reference transcripts: the guard's loss signal.

Teacher forcing (:mod:`clasr.models.teacher_forcing`) scores every reference token of the set
without decoding anything:

    L = (1/M) Σ_n Σ_{i ∈ n} −log p(y_i | y_<i, x_n)      (nats per token)

over the M scored tokens of all its utterances (the transcript and the end token; the
prompt never counts), in evaluation mode (no dropout). One forward pass per batch and no
decoding — but the encoder pass over the window dominates both, so on a CPU it costs about
what CTranslate2's decoding costs (``benchmarks/guard_signal_cost.py``). What it buys is
sensitivity: every reference token moves it, the case and punctuation that a normalized WER
ignores included, so a model drifting toward another output format raises L before a few
dozen decoded utterances change their normalized words.
"""

from __future__ import annotations

from typing import Sequence

import torch

from clasr.data.batching import SpeechCollator, duration_batches
from clasr.data.manifest import Utterance
from clasr.models.teacher_forcing import scored_tokens, teacher_forced_logits, token_loss


@torch.no_grad()
def reference_loss(
    model: torch.nn.Module, collator: SpeechCollator, utterances: Sequence[Utterance], batch_size: int
) -> tuple[float, int]:
    """(L in nats per token, M) of ``model`` on ``utterances``, batched by duration; the model's
    training mode is restored afterwards."""
    if not utterances:
        raise ValueError("reference_loss: no utterances to score")
    was_training = model.training
    parameter = next(model.parameters())
    total, tokens = 0.0, 0
    model.eval()
    try:
        for indices in duration_batches([u.duration for u in utterances], batch_size):
            batch = collator([utterances[i] for i in indices], indices).to(parameter.device)
            batch.input_features = batch.input_features.to(parameter.dtype)
            total += float(token_loss(teacher_forced_logits(model, batch), batch.labels, "sum"))
            tokens += scored_tokens(batch.labels)
    finally:
        model.train(was_training)
    return total / tokens, tokens
