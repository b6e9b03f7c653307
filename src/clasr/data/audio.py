"""Audio decoding: any file soundfile reads becomes float32 mono at the model's rate.

Whisper expects 16 kHz mono. ``load_audio`` decodes with soundfile, averages the channels
and resamples with soxr (HQ) only when the file's rate differs; ``probe_audio`` reads the
header alone, which is what manifest validation needs. Every failure is an ``AudioError``
naming the file and the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

TARGET_SAMPLE_RATE = 16000


class AudioError(ValueError):
    """An audio file that cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file's header says about it."""

    frames: int
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def probe_audio(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path`` (no samples are decoded)."""
    _require_file(path)
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError) as error:
        raise AudioError(path, f"cannot read audio header: {_reason(error)}") from error
    return AudioInfo(frames=info.frames, sample_rate=info.samplerate, channels=info.channels)


def load_audio(path: str | os.PathLike, sample_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to a float32 mono array at ``sample_rate`` Hz.

    Channels are averaged; the signal is resampled with soxr (HQ) when the file's rate
    differs from ``sample_rate``. A file with no samples is an error.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    _require_file(path)
    try:
        samples, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as error:
        raise AudioError(path, f"cannot decode audio: {_reason(error)}") from error
    if samples.shape[0] == 0:
        raise AudioError(path, "no audio samples")
    mono = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)
    if file_rate != sample_rate:
        mono = soxr.resample(mono, file_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _require_file(path: str | os.PathLike) -> None:
    """Raise AudioError unless ``path`` is a file (libsndfile would say "System error")."""
    if not Path(path).is_file():
        raise AudioError(path, "no such file")


def _reason(error: Exception) -> str:
    """libsndfile's own explanation when there is one, else the exception text."""
    return getattr(error, "error_string", None) or str(error)
