"""Argument checks shared by the transforms: every bad argument is a ValueError naming it.

Transforms take float mono audio (a 1-D floating-point array of finite samples), a positive
integer sample rate and, where random, a ``numpy.random.Generator``; they return float32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def check_audio(audio: Any, name: str = "audio") -> np.ndarray:
    """``audio`` as a float32 array; ValueError unless it is 1-D, non-empty, float and finite."""
    array = np.asarray(audio)
    if array.ndim != 1:
        raise ValueError(f"{name} must be mono (a 1-D array), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{name} must be floating-point samples in [-1, 1], got dtype {array.dtype}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return array.astype(np.float32, copy=False)


def check_sample_rate(sample_rate: Any) -> int:
    """``sample_rate`` as an int; ValueError unless it is a positive integer (Hz)."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate}")
    return int(sample_rate)


def check_range(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float; ValueError unless it is a number with low ≤ value ≤ high."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {value:g}")
    return float(value)


def check_rng(rng: Any) -> np.random.Generator:
    """``rng`` itself; ValueError unless it is a ``numpy.random.Generator``."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            "rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    return rng


def finished(audio: np.ndarray, transform: str) -> np.ndarray:
    """``audio`` as float32, after making sure that ``transform`` produced finite samples."""
    result = np.asarray(audio, dtype=np.float32)
    if not np.all(np.isfinite(result)):
        raise FloatingPointError(f"{transform} produced NaN or infinite samples")
    return result
