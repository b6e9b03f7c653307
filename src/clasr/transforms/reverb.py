"""Reverberation: a synthetic room impulse response and the convolution with it.

The room is modelled statistically: a direct-path impulse, then, after a pre-delay, a
diffuse tail of Gaussian noise whose energy decays exponentially, 60 dB in RT60 seconds
(Sabine's diffuse field; Polack's model). This reproduces a room's reverberation time and
direct-to-reverberant ratio, not its individual early reflections.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import fftconvolve

from clasr.transforms._checks import (
    check_audio,
    check_range,
    check_rng,
    check_sample_rate,
    finished,
)
from clasr.transforms._signal import rms

MIN_RT60 = 0.05
MAX_RT60 = 5.0
MIN_DIRECT_RATIO_DB = -30.0
MAX_DIRECT_RATIO_DB = 30.0
MAX_PREDELAY_MS = 100.0
# Amplitude falls by 10³ (energy by 10⁶ = 60 dB) in RT60: exp(−ln(1000) · t / RT60).
DECAY_PER_RT60 = math.log(1000.0)
# The tail is cut 1.2 · RT60 after it starts, 72 dB down.
TAIL_LENGTH_RT60 = 1.2


def synthetic_rir(
    sample_rate: int,
    rt60: float,
    rng: np.random.Generator,
    direct_ratio_db: float = 0.0,
    predelay_ms: float = 10.0,
) -> np.ndarray:
    """A room impulse response h (float32) with reverberation time ``rt60`` seconds.

    h[0] = 1 is the direct path. From d = predelay_ms (at least one sample) the tail is
    h[d + k] = c · g_k · exp(−ln(1000) · t_k / rt60), t_k = k / sample_rate, g_k ~ N(0, 1),
    for t_k < 1.2 · rt60: its energy envelope exp(−2 ln(1000) · t / rt60) is 60 dB down at
    rt60. c makes the direct-to-reverberant energy ratio 10 · log10(1 / Σ tail²) equal
    ``direct_ratio_db``. Ranges: rt60 in [0.05, 5] s, direct_ratio_db in [−30, 30] dB,
    predelay_ms in [0, 100].
    """
    sample_rate = check_sample_rate(sample_rate)
    rt60 = check_range("rt60", rt60, MIN_RT60, MAX_RT60)
    direct_ratio_db = check_range(
        "direct_ratio_db", direct_ratio_db, MIN_DIRECT_RATIO_DB, MAX_DIRECT_RATIO_DB
    )
    predelay_ms = check_range("predelay_ms", predelay_ms, 0.0, MAX_PREDELAY_MS)
    predelay = max(1, round(predelay_ms * sample_rate / 1000))
    times = np.arange(math.ceil(TAIL_LENGTH_RT60 * rt60 * sample_rate)) / sample_rate
    tail = check_rng(rng).standard_normal(times.size) * np.exp(-DECAY_PER_RT60 * times / rt60)
    tail *= math.sqrt(10 ** (-direct_ratio_db / 10) / np.sum(tail**2))
    response = np.zeros(predelay + tail.size)
    response[0] = 1.0
    response[predelay:] = tail
    return response.astype(np.float32)


def reverberate(
    audio: np.ndarray,
    sample_rate: int,
    rt60: float,
    rng: np.random.Generator,
    direct_ratio_db: float = 0.0,
    predelay_ms: float = 10.0,
) -> np.ndarray:
    """``audio`` in a room: y = (x ∗ h)[0:n] with h = :func:`synthetic_rir`, same length n.

    The direct path is at lag 0, so nothing is delayed; the tail past the input's end is
    dropped. y is scaled to the RMS of x (loudness does not drift) and then, if its peak
    exceeds 1, scaled down to peak 1 (never clipped). Silence stays silence.
    """
    audio = check_audio(audio)
    response = synthetic_rir(sample_rate, rt60, rng, direct_ratio_db, predelay_ms)
    level = rms(audio)
    if level == 0:
        return audio.copy()
    wet = fftconvolve(audio.astype(np.float64), response)[: audio.size]
    wet *= level / rms(wet)
    peak = float(np.max(np.abs(wet)))
    if peak > 1:
        wet /= peak
    return finished(wet, "reverberate")
