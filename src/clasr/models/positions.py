"""Which positions of a Whisper batch are real, and which sequence each Linear layer reads.

A Linear layer runs at many positions of one sequence: the encoder's frames or the
decoder's tokens. Every encoder layer and the decoder's cross-attention ``k_proj``/``v_proj``
(they read encoder states) run on the "encoder" sequence; the rest of the decoder on the
"decoder" sequence. An encoder position is real when it covers audio (see
:func:`encoder_positions`), a decoder position when its label is scored. Curvature
statistics select the rows of a layer's inputs and output gradients by these masks, so that
padding never enters them.
"""

from __future__ import annotations

import torch
from torch import nn

from clasr.data.batching import IGNORE_INDEX, SpeechBatch

Masks = dict[str, torch.Tensor]  # sequence kind → boolean (B, T) mask, True at real positions


def encoder_positions(frames: torch.Tensor | int) -> torch.Tensor | int:
    """Encoder positions produced from ``frames`` log-mel frames.

    Whisper's conv1 (k=3, s=1, p=1) keeps n; conv2 (k=3, s=2, p=1) gives
    ⌊(n + 2 − 3)/2⌋ + 1 = ⌈n/2⌉. Position p is real iff p < ⌈n/2⌉ (its centre frame 2p < n).
    """
    return (frames + 1) // 2


def whisper_kind(name: str) -> str:
    """The sequence kind of a Whisper Linear from its module name: "encoder" for the encoder
    and the decoder's cross-attention ``k_proj``/``v_proj`` (their inputs are encoder
    states), "decoder" for everything else."""
    parts = name.split(".")
    reads_encoder = any(a == "encoder_attn" and b in ("k_proj", "v_proj") for a, b in zip(parts, parts[1:]))
    return "encoder" if "encoder" in parts or reads_encoder else "decoder"


def whisper_kinds(layers: dict[str, nn.Linear]) -> dict[str, str]:
    """:func:`whisper_kind` of every named layer."""
    return {name: whisper_kind(name) for name in layers}


def whisper_masks(batch: SpeechBatch) -> Masks:
    """Real positions of a batch: encoder positions that cover audio, decoder positions with a
    scored label."""
    positions = torch.arange(encoder_positions(batch.input_features.shape[-1]), device=batch.feature_lengths.device)
    return {
        "encoder": positions[None, :] < encoder_positions(batch.feature_lengths)[:, None],
        "decoder": batch.labels != IGNORE_INDEX,
    }


def whisper_linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """Every nn.Linear except ``proj_out`` (the vocabulary projection, tied to the token
    embeddings; its output-gradient factor would be vocabulary × vocabulary)."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and name.split(".")[-1] != "proj_out"
    }
