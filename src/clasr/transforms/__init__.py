"""Acoustic transforms that simulate recording domains: telephone line, noise, room, child voice.

Every transform takes float mono audio and its sample rate (and a ``numpy.random.Generator``
when random) and returns float32 mono audio at the same rate; bad arguments raise ValueError.
:mod:`clasr.transforms.chain` composes them declaratively and
:mod:`clasr.transforms.dataset` applies a chain to a whole audiofolder dataset.
"""

from __future__ import annotations

from clasr.transforms.chain import (
    TransformChain,
    TransformStep,
    apply_chain,
    describe,
    parse_chain,
)
from clasr.transforms.channel import mulaw_roundtrip, telephone
from clasr.transforms.dataset import TransformSummary, transform_dataset
from clasr.transforms.noise import add_noise, brown_noise, colored_noise, pink_noise, white_noise
from clasr.transforms.reverb import reverberate, synthetic_rir
from clasr.transforms.voice import child_voice, speed, tempo

__all__ = [
    "TransformChain",
    "TransformStep",
    "TransformSummary",
    "add_noise",
    "apply_chain",
    "brown_noise",
    "child_voice",
    "colored_noise",
    "describe",
    "mulaw_roundtrip",
    "parse_chain",
    "pink_noise",
    "reverberate",
    "speed",
    "synthetic_rir",
    "telephone",
    "tempo",
    "transform_dataset",
    "white_noise",
]
