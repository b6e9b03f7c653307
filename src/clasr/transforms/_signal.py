"""Small signal operations shared by the transforms: resampling, length fitting, RMS."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import resample_poly


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``audio`` resampled by the integer ratio (to_rate / g) / (from_rate / g), g = gcd.

    Polyphase filtering (``scipy.signal.resample_poly``, Kaiser-windowed FIR) yields
    ⌈n · to_rate / from_rate⌉ samples; the same rate returns the input unchanged.
    """
    if from_rate == to_rate:
        return audio
    divisor = math.gcd(from_rate, to_rate)
    return resample_poly(audio, to_rate // divisor, from_rate // divisor)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """``audio`` cropped, or padded at the end with zeros, to exactly ``length`` samples."""
    if audio.size >= length:
        return audio[:length]
    return np.pad(audio, (0, length - audio.size))


def rms(audio: np.ndarray) -> float:
    """Root mean square √(mean(x²)), accumulated in float64."""
    return math.sqrt(float(np.mean(np.square(audio, dtype=np.float64))))
