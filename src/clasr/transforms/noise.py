"""Additive noise: white, pink and brown Gaussian noise, mixed at an exact signal-to-noise ratio.

Coloured noise has a power spectral density S(f) ∝ 1/f^β: β = 0 white (flat, hiss),
β = 1 pink (−10 dB per decade, like many natural and room noises), β = 2 brown (−20 dB per
decade, a low rumble). :func:`add_noise` also takes recorded noise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from clasr.transforms._checks import check_audio, check_range, check_rng, finished

MIN_SNR_DB = -50.0
MAX_SNR_DB = 100.0
MIN_NOISE_LENGTH = 2


def colored_noise(length: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Zero-mean Gaussian noise with S(f) ∝ 1/f^exponent, scaled to unit RMS (float32).

    White Gaussian noise w is shaped in the frequency domain: X(f) = W(f) · f^(−exponent/2)
    for f > 0 and X(0) = 0, then x = IRFFT(X) / RMS.
    """
    is_integer = isinstance(length, (int, np.integer)) and not isinstance(length, bool)
    if not is_integer or length < MIN_NOISE_LENGTH:
        raise ValueError(f"length must be an integer ≥ {MIN_NOISE_LENGTH}, got {length!r}")
    spectrum = np.fft.rfft(check_rng(rng).standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    gains = np.zeros_like(frequencies)
    gains[1:] = frequencies[1:] ** (-exponent / 2)
    noise = np.fft.irfft(spectrum * gains, n=length)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def white_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS zero-mean white Gaussian noise: flat S(f)."""
    return colored_noise(length, rng, 0.0)


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink noise: S(f) ∝ 1/f, −10 dB per decade (equal power per octave)."""
    return colored_noise(length, rng, 1.0)


def brown_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS brown (Brownian, red) noise: S(f) ∝ 1/f², −20 dB per decade."""
    return colored_noise(length, rng, 2.0)


NOISE_GENERATORS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "white": white_noise,
    "pink": pink_noise,
    "brown": brown_noise,
}


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``audio`` + g · ``noise`` with g chosen so that 10 · log10(P_audio / P_gn) = snr_db exactly.

    P is the mean square over the whole signal. The noise is tiled (repeated from its start)
    or cropped to the audio's length before its power is measured, so the ratio holds for
    the noise actually added. Silent audio or noise (P = 0) is an error: the ratio is
    undefined. snr_db must lie in [MIN_SNR_DB, MAX_SNR_DB].
    """
    audio = check_audio(audio)
    noise = np.resize(check_audio(noise, "noise"), audio.size)
    snr_db = check_range("snr_db", snr_db, MIN_SNR_DB, MAX_SNR_DB)
    audio_power = float(np.mean(np.square(audio, dtype=np.float64)))
    noise_power = float(np.mean(np.square(noise, dtype=np.float64)))
    if audio_power == 0:
        raise ValueError("audio is silent (all zeros): a signal-to-noise ratio is undefined")
    if noise_power == 0:
        raise ValueError("noise is silent (all zeros): it cannot be scaled to an SNR")
    gain = np.sqrt(audio_power / (noise_power * 10 ** (snr_db / 10)))
    return finished(audio + gain * noise, "add_noise")
