"""Telephone channel: 8 kHz narrow band, the 300–3400 Hz voice band and G.711 μ-law.

A landline call samples speech at 8 kHz, limits it to the voice band with a send filter,
encodes each sample in 8 bits with μ-law companding (ITU-T G.711) and, at the far end,
decodes it and filters it again with a receive filter (the channel of ITU-T G.712).
:func:`telephone` does the same and resamples back, so the result keeps the input's rate
and length while sounding like a phone line.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

from clasr.transforms._checks import check_audio, check_sample_rate, finished
from clasr.transforms._signal import fit_length, resample

TELEPHONE_SAMPLE_RATE = 8000
TELEPHONE_NYQUIST_HZ = TELEPHONE_SAMPLE_RATE / 2
CODECS = ("mulaw", "none")
MU = 255.0
# G.711 codes a sample in 8 bits: a sign bit and 7 bits (128 levels) of companded magnitude.
MAGNITUDE_STEPS = 127
# Butterworth order of each band edge; sosfiltfilt runs it twice (zero phase, 2× the slope).
FILTER_ORDER = 6


def telephone(
    audio: np.ndarray,
    sample_rate: int,
    low_hz: float = 300.0,
    high_hz: float = 3400.0,
    codec: str = "mulaw",
) -> np.ndarray:
    """``audio`` as heard through a telephone line, at its own rate and length.

    Steps: resample to 8 kHz; band-pass [low_hz, high_hz] (send filter); μ-law encode and
    decode when ``codec`` is "mulaw" (see :func:`mulaw_roundtrip`), nothing when "none";
    band-pass again (receive filter, which also removes the codec's out-of-band
    quantisation noise); resample to ``sample_rate``. Requires 0 < low_hz < high_hz < 4000.
    """
    audio = check_audio(audio)
    sample_rate = check_sample_rate(sample_rate)
    _check_band(low_hz, high_hz)
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    narrow = resample(audio, sample_rate, TELEPHONE_SAMPLE_RATE)
    narrow = band_pass(narrow, TELEPHONE_SAMPLE_RATE, low_hz, high_hz)
    if codec == "mulaw":
        narrow = mulaw_roundtrip(narrow)
    narrow = band_pass(narrow, TELEPHONE_SAMPLE_RATE, low_hz, high_hz)
    wide = resample(narrow, TELEPHONE_SAMPLE_RATE, sample_rate)
    return finished(fit_length(wide, audio.size), "telephone")


def band_pass(audio: np.ndarray, sample_rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    """Zero-phase Butterworth band-pass: an order-FILTER_ORDER design per band edge, in
    second-order sections, run forward and backward (``sosfiltfilt``) so that
    |H_total(f)| = |H(f)|² and nothing is delayed. Edges are padded by odd extension."""
    sections = butter(
        FILTER_ORDER, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos"
    )
    pad = min(audio.size - 1, 3 * (2 * len(sections) + 1))
    return sosfiltfilt(sections, audio, padlen=pad)


def mulaw_compress(audio: np.ndarray) -> np.ndarray:
    """μ-law companding F(x) = sign(x) · ln(1 + μ|x|) / ln(1 + μ), μ = 255, of x clipped to [-1, 1]."""
    clipped = np.clip(audio, -1.0, 1.0)
    return np.sign(clipped) * np.log1p(MU * np.abs(clipped)) / np.log1p(MU)


def mulaw_expand(companded: np.ndarray) -> np.ndarray:
    """The inverse of :func:`mulaw_compress`: F⁻¹(y) = sign(y) · ((1 + μ)^|y| − 1) / μ."""
    return np.sign(companded) * np.expm1(np.abs(companded) * np.log1p(MU)) / MU


def mulaw_roundtrip(audio: np.ndarray) -> np.ndarray:
    """Encode and decode as an 8-bit μ-law codec: x̂ = F⁻¹(sign(y) · round(127 |y|) / 127), y = F(x).

    The companded magnitude is quantised to 7 bits beside the sign bit, so |ŷ − y| ≤ 1/254
    and, by the mean value theorem on F⁻¹, the error grows with the level:
    |x̂ − x| ≤ ln(1 + μ) · (1 + μ · max(|x|, |x̂|)) / (254 μ) for |x| ≤ 1 (loud samples get
    coarse steps, quiet ones fine steps; zero stays zero).
    """
    companded = mulaw_compress(audio)
    magnitude = np.round(np.abs(companded) * MAGNITUDE_STEPS) / MAGNITUDE_STEPS
    quantised = np.sign(companded) * magnitude
    return mulaw_expand(quantised)


def _check_band(low_hz: float, high_hz: float) -> None:
    """ValueError unless 0 < low_hz < high_hz < 4000 (the Nyquist frequency at 8 kHz)."""
    if not 0 < low_hz < high_hz < TELEPHONE_NYQUIST_HZ:
        raise ValueError(
            f"low_hz and high_hz must satisfy 0 < low_hz < high_hz < {TELEPHONE_NYQUIST_HZ:g}, "
            f"got low_hz={low_hz:g}, high_hz={high_hz:g}"
        )
