"""Voice changes: speed (pitch and formants with duration), tempo (duration alone), child voice.

Resampling a recording and playing it at the original rate scales every frequency, the
pitch (vocal-fold rate) and the formants (vocal-tract resonances) alike, as a shorter vocal
tract and faster folds would; this is the usual vocal-tract-length and pitch perturbation.
WSOLA then restores or sets the duration without touching frequencies.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy.signal import correlate, resample_poly

from clasr.transforms._checks import check_audio, check_range, check_sample_rate, finished

MIN_FACTOR = 0.5
MAX_FACTOR = 2.0
# The speed factor is applied as the nearest fraction p / q with q ≤ 100.
MAX_DENOMINATOR = 100
# WSOLA frames: a Hann window of 25 ms at 50 % overlap; each frame may move ±10 ms
# (a pitch period down to 100 Hz, half of one down to 50 Hz) to line up with the last one.
WSOLA_WINDOW_SECONDS = 0.025
WSOLA_TOLERANCE_SECONDS = 0.010


def speed(audio: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """``audio`` played ``factor`` times faster: every frequency × factor, duration ÷ factor.

    y = x resampled by q / p where p / q = Fraction(factor).limit_denominator(100)
    (polyphase FIR, ``scipy.signal.resample_poly``), kept at ``sample_rate``: ⌈n q / p⌉
    samples, pitch and formants scaled by p / q. factor in [0.5, 2].
    """
    audio = check_audio(audio)
    check_sample_rate(sample_rate)
    ratio = Fraction(check_range("factor", factor, MIN_FACTOR, MAX_FACTOR))
    ratio = ratio.limit_denominator(MAX_DENOMINATOR)
    return finished(resample_poly(audio, ratio.denominator, ratio.numerator), "speed")


def tempo(audio: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """``audio`` ``factor`` times faster at the same pitch: round(n / factor) samples (WSOLA).

    Waveform-similarity overlap-add (Verhelst & Roelands, 1993): output frame k (Hann
    window w of length N, hop H = N/2, so Σ_k w(t − kH) = 1) is centred at time kH and
    copies the input frame centred near k · H · factor, moved by δ_k ∈ [−Δ, Δ] to maximise
    the cross-correlation with the natural continuation of the previous frame (the input
    H samples after it). Frames then join in phase, without the echoes of plain
    overlap-add. factor in [0.5, 2].
    """
    audio = check_audio(audio)
    sample_rate = check_sample_rate(sample_rate)
    factor = check_range("factor", factor, MIN_FACTOR, MAX_FACTOR)
    hop = max(1, round(WSOLA_WINDOW_SECONDS * sample_rate / 2))
    tolerance = round(WSOLA_TOLERANCE_SECONDS * sample_rate)
    output_length = max(1, round(audio.size / factor))
    return finished(_wsola(audio, hop, tolerance, factor, output_length), "tempo")


def child_voice(
    audio: np.ndarray,
    sample_rate: int,
    pitch_factor: float = 1.3,
    tempo_factor: float = 1.1,
) -> np.ndarray:
    """A child-like voice: pitch and formants × pitch_factor, speaking rate × tempo_factor.

    :func:`speed` by pitch_factor (frequencies × pitch_factor, duration ÷ pitch_factor),
    then :func:`tempo` by tempo_factor / pitch_factor, so the duration ends at
    n / tempo_factor. Both factors and their ratio must lie in [0.5, 2].
    """
    pitch_factor = check_range("pitch_factor", pitch_factor, MIN_FACTOR, MAX_FACTOR)
    tempo_factor = check_range("tempo_factor", tempo_factor, MIN_FACTOR, MAX_FACTOR)
    ratio = tempo_factor / pitch_factor
    if not MIN_FACTOR <= ratio <= MAX_FACTOR:
        raise ValueError(
            f"tempo_factor / pitch_factor must be in [{MIN_FACTOR:g}, {MAX_FACTOR:g}], "
            f"got {tempo_factor:g} / {pitch_factor:g} = {ratio:.3g}"
        )
    return tempo(speed(audio, sample_rate, pitch_factor), sample_rate, ratio)


def _wsola(
    audio: np.ndarray, hop: int, tolerance: int, factor: float, output_length: int
) -> np.ndarray:
    """The WSOLA loop of :func:`tempo` on ``audio`` zero-padded so that every frame and
    search region lies inside; frame k's window covers output [kH − H, kH + H)."""
    window_length = 2 * hop
    window = np.hanning(window_length + 1)[:-1]  # periodic Hann: overlaps sum to 1
    frames = math.ceil(output_length / hop) + 1
    lead = hop + tolerance  # input sample i sits at padded index i + lead
    trail = round(frames * hop * factor) + 2 * tolerance + 3 * hop - audio.size
    padded = np.pad(audio.astype(np.float64), (lead, max(trail, 0)))
    output = np.zeros((frames + 1) * hop)
    start = tolerance  # frame 0 is centred on input sample 0, unmoved
    for k in range(frames):
        if k > 0:
            continuation = padded[start + hop : start + hop + window_length]
            nominal = round(k * hop * factor)  # padded index of the frame start at δ = −Δ
            region = padded[nominal : nominal + 2 * tolerance + window_length]
            start = nominal + int(np.argmax(correlate(region, continuation, mode="valid")))
        output[k * hop : k * hop + window_length] += window * padded[start : start + window_length]
    return output[hop : hop + output_length]
