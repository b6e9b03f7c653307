"""Training at an encoder window fitted to each batch, while the model keeps its own window.

Whisper's encoder takes a fixed window (30 s = 3000 log-mel frames, 1500 positions) and
the collator pads every utterance to it; most training utterances are far shorter, so most
of the encoder's work is spent on padding. A fitted window runs the encoder, for one batch,
over only its first F frames::

    F = min(W, ⌈max_b n_b / S⌉ · S)

with n_b the real frames of utterance b, W the model's window and S = 100 frames (whole
seconds: few distinct shapes, and every utterance keeps its trailing silence up to the next
second). The features are cut, not recomputed: Whisper's log-mel normalisation takes the
maximum over the whole padded spectrogram, which the speech sets, so the first F frames are
the same either way. The encoder's positions are the first F/2 rows of its sinusoidal table
(exactly as :func:`clasr.models.whisper.set_encoder_window`, but only for the duration of one
forward and backward pass); the model, its config and everything saved keep the full window.

The model never sees the padding of its evaluation window while it trains this way, so what
that costs in WER must be measured (docs/benchmarks.md), not assumed.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from typing import Iterator

from torch import nn

from clasr.data.batching import SpeechBatch
from clasr.models.whisper import FRAMES_PER_POSITION, FRAMES_PER_SECOND

FITTED_STEP_FRAMES = FRAMES_PER_SECOND  # S: a fitted window is a whole number of seconds


def fitted_frames(batch: SpeechBatch) -> int:
    """F: the batch's longest utterance rounded up to whole seconds, at most the batch's window."""
    window = batch.input_features.shape[-1]
    longest = int(batch.feature_lengths.max()) if len(batch.feature_lengths) else 0
    return min(window, max(1, math.ceil(longest / FITTED_STEP_FRAMES)) * FITTED_STEP_FRAMES)


def cut_features(batch: SpeechBatch, frames: int) -> SpeechBatch:
    """The batch with its features cut to their first ``frames`` frames."""
    return dataclasses.replace(batch, input_features=batch.input_features[..., :frames])


@contextmanager
def narrowed_encoder(model: nn.Module, frames: int) -> Iterator[None]:
    """Within the block, the encoder of the Whisper ``model`` accepts exactly ``frames`` frames
    (≤ its window, a multiple of 2) using its first ``frames/2`` positions; restored on exit."""
    encoder = model.model.encoder
    full = encoder.embed_positions
    positions = frames // FRAMES_PER_POSITION
    if frames % FRAMES_PER_POSITION or not 0 < positions <= full.num_embeddings:
        raise ValueError(f"cannot narrow a {full.num_embeddings}-position encoder to {frames} frames")
    if positions == full.num_embeddings:
        yield
        return
    saved = encoder.config.max_source_positions, encoder.max_source_positions
    encoder.embed_positions = nn.Embedding.from_pretrained(full.weight[:positions], freeze=True)
    encoder.config.max_source_positions = encoder.max_source_positions = positions
    try:
        yield
    finally:
        encoder.embed_positions = full
        encoder.config.max_source_positions, encoder.max_source_positions = saved
