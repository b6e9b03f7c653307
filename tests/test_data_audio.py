"""Audio decoding: mono mix-down, resampling, header probing and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clasr.data.audio import TARGET_SAMPLE_RATE, AudioError, AudioInfo, load_audio, probe_audio


def sine(frequency: float, seconds: float, rate: int) -> np.ndarray:
    time = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def peak_frequency(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[spectrum.argmax()])


def test_stereo_44k_becomes_16k_mono_with_length_and_pitch_kept(tmp_path: Path) -> None:
    left = sine(440, 0.5, 44100)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, 0.5 * left], axis=1), 44100, subtype="FLOAT")

    audio = load_audio(path)

    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - round(len(left) * TARGET_SAMPLE_RATE / 44100)) <= 1
    assert peak_frequency(audio, TARGET_SAMPLE_RATE) == pytest.approx(440, abs=3)
    assert np.abs(audio).max() == pytest.approx(0.75 * 0.5, rel=0.02)


def test_stereo_channels_are_averaged(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    channels = rng.uniform(-0.5, 0.5, size=(800, 2)).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, channels, TARGET_SAMPLE_RATE, subtype="FLOAT")

    np.testing.assert_allclose(load_audio(path), channels.mean(axis=1), atol=1e-7)


def test_mono_flac_at_target_rate_is_returned_as_stored(tmp_path: Path) -> None:
    signal = sine(300, 0.1, TARGET_SAMPLE_RATE)
    path = tmp_path / "mono.flac"
    sf.write(path, signal, TARGET_SAMPLE_RATE)

    stored, _ = sf.read(path, dtype="float32")
    np.testing.assert_array_equal(load_audio(path), stored)


def test_other_target_rate(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    sf.write(path, sine(300, 0.1, TARGET_SAMPLE_RATE), TARGET_SAMPLE_RATE)

    assert abs(len(load_audio(path, sample_rate=8000)) - 800) <= 1


def test_non_positive_rate_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(tmp_path / "any.wav", sample_rate=0)


def test_probe_reads_the_header(tmp_path: Path) -> None:
    path = tmp_path / "stereo.flac"
    sf.write(path, np.zeros((22050, 2), dtype=np.float32), 44100)

    info = probe_audio(path)

    assert info == AudioInfo(frames=22050, sample_rate=44100, channels=2)
    assert info.duration == pytest.approx(0.5)


@pytest.mark.parametrize("read", [load_audio, probe_audio])
def test_missing_file_is_an_audio_error(tmp_path: Path, read) -> None:
    path = tmp_path / "absent.wav"
    with pytest.raises(AudioError, match="no such file") as caught:
        read(path)
    assert caught.value.path == path and str(path) in str(caught.value)


@pytest.mark.parametrize("read", [load_audio, probe_audio])
def test_garbage_file_is_an_audio_error(tmp_path: Path, read) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not audio at all")
    with pytest.raises(AudioError, match=r"garbage\.wav: cannot") as caught:
        read(path)
    assert isinstance(caught.value, ValueError)


def test_zero_samples_is_an_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), TARGET_SAMPLE_RATE)

    assert probe_audio(path).frames == 0
    with pytest.raises(AudioError, match=r"empty\.wav: no audio samples"):
        load_audio(path)
