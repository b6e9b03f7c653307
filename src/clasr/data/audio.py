"""Audio decoding: any file soundfile reads becomes float32 mono at the model's rate.

Whisper expects 16 kHz mono. ``load_audio`` decodes with soundfile (WAV, FLAC, OGG, MP3 —
libsndfile ≥ 1.1 decodes MP3 itself), only a segment's span when asked, averages the channels
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
# soundfile formats whose seek is not sample-exact: spans are decoded from the start.
INEXACT_SEEK_FORMATS = frozenset({"MP3"})


class AudioError(ValueError):
    """An audio file that cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NonFiniteAudioError(AudioError):
    """Audio that decodes but holds NaN or infinite samples (the model would turn them into NaN)."""


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
    """Read the header of ``path`` (no samples are decoded; an open SoundFile rather than
    ``sf.info``, which also formats a description: 0.38 vs 0.53 ms a file, measured)."""
    try:
        with sf.SoundFile(str(path)) as audio:
            return AudioInfo(frames=audio.frames, sample_rate=audio.samplerate, channels=audio.channels)
    except (RuntimeError, OSError) as error:
        _require_file(path)  # checked only on failure: a manifest read probes every row
        raise AudioError(path, f"cannot read audio header: {_reason(error)}") from error


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = TARGET_SAMPLE_RATE,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Decode ``path`` to a float32 mono array at ``sample_rate`` Hz.

    With ``offset`` / ``duration`` (seconds) only that span is read: the file's frames
    [round(offset·r), round(offset·r) + round(duration·r)) at its own rate r (``duration``
    None: to the end), seeking past what comes before (an MP3 decodes it: see
    :func:`_read_span`). Channels are averaged; the signal is resampled with soxr (HQ) when
    the file's rate differs from ``sample_rate``.
    A file or span with no samples, or with a NaN or infinite sample, is an error.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if offset < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"a span needs offset ≥ 0 and duration > 0, got {offset} and {duration}")
    _require_file(path)
    try:
        with sf.SoundFile(str(path)) as audio:
            start, frames = _span_frames(audio.samplerate, offset, duration)
            samples = _read_span(audio, start, frames)
            file_rate = audio.samplerate
    except (RuntimeError, OSError) as error:
        raise AudioError(path, f"cannot decode audio: {_reason(error)}") from error
    if samples.shape[0] == 0:
        raise AudioError(path, "no audio samples" + (f" from {offset} s" if offset else ""))
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise NonFiniteAudioError(path, f"{bad} audio sample(s) are not finite (NaN or infinity)")
    mono = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)
    if file_rate != sample_rate:
        mono = soxr.resample(mono, file_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _read_span(audio: sf.SoundFile, start: int, frames: int) -> np.ndarray:
    """``frames`` frames (-1: all) from frame ``start``, shape (frames, channels).

    MP3 decoders need the frames before a seek point to rebuild the first samples after it
    (measured: up to ~4,500 samples come out as zeros after a seek in libsndfile's own MP3s),
    so an MP3 is decoded from its start up to the end of the span instead of seeking.
    """
    start = min(start, audio.frames)
    if start and audio.format not in INEXACT_SEEK_FORMATS:
        audio.seek(start)
        return audio.read(frames, dtype="float32", always_2d=True)
    samples = audio.read(-1 if frames < 0 else start + frames, dtype="float32", always_2d=True)
    return samples[start:]


def _span_frames(file_rate: int, offset: float, duration: float | None) -> tuple[int, int]:
    """(first frame, frame count; -1 = to the end) of a span given in seconds."""
    frames = -1 if duration is None else round(duration * file_rate)
    return round(offset * file_rate), frames


def _require_file(path: str | os.PathLike) -> None:
    """Raise AudioError unless ``path`` is a file (libsndfile would say "System error")."""
    if not Path(path).is_file():
        raise AudioError(path, "no such file")


def _reason(error: Exception) -> str:
    """libsndfile's own explanation when there is one, else the exception text."""
    return getattr(error, "error_string", None) or str(error)
