"""Acoustic transforms: each one measured against the quantity it is meant to control."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from clasr.transforms import (
    add_noise,
    apply_chain,
    brown_noise,
    child_voice,
    describe,
    mulaw_roundtrip,
    parse_chain,
    pink_noise,
    reverberate,
    speed,
    synthetic_rir,
    telephone,
    tempo,
    transform_dataset,
    white_noise,
)
from clasr.data.audio import load_audio
from clasr.transforms.chain import draw
from clasr.transforms.dataset import utterance_rng

RATE = 16000


def harmonic_tone(f0: float, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    """A voiced-like tone: the first 8 harmonics of f0 with amplitudes 1/h, peak about 0.5."""
    t = np.arange(round(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 9))
    return (0.5 * tone / np.max(np.abs(tone))).astype(np.float32)


def pitch(audio: np.ndarray, rate: int = RATE) -> float:
    """Fundamental frequency (60–400 Hz) from the autocorrelation peak, parabolically refined."""
    middle = audio[len(audio) // 8 : -len(audio) // 8].astype(np.float64)
    middle -= middle.mean()
    corr = np.correlate(middle, middle, mode="full")[middle.size - 1 :]
    low, high = rate // 400, rate // 60
    lag = low + int(np.argmax(corr[low:high]))
    before, peak, after = corr[lag - 1 : lag + 2]
    return rate / (lag + 0.5 * (before - after) / (before - 2 * peak + after))


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def snr_db(clean: np.ndarray, mix: np.ndarray) -> float:
    return 10 * math.log10(power(clean) / power(mix.astype(np.float64) - clean))


# --- telephone -------------------------------------------------------------------------


def test_telephone_removes_everything_outside_the_voice_band():
    noise = 0.1 * np.random.default_rng(0).standard_normal(2 * RATE).astype(np.float32)
    out = telephone(noise, RATE)
    assert out.dtype == np.float32 and out.shape == noise.shape
    freqs, psd = welch(out, RATE, nperseg=1024)
    in_band = psd[(freqs >= 300) & (freqs <= 3400)].mean()
    for low, high in [(0, 200), (4000, 8000)]:
        out_of_band = psd[(freqs >= low) & (freqs <= high)].mean()
        assert 10 * math.log10(out_of_band / in_band) < -30, (low, high)


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_telephone_keeps_rate_and_length(rate):
    audio = harmonic_tone(200, seconds=0.3, rate=rate)
    out = telephone(audio, rate)
    assert out.dtype == np.float32 and out.shape == audio.shape and np.all(np.isfinite(out))


def test_mulaw_error_is_within_half_an_8_bit_step():
    t = np.linspace(0, 1, 20000)
    smooth = 0.9 * np.sin(2 * np.pi * 3 * t) * np.exp(-3 * t)  # spans loud and quiet levels
    decoded = mulaw_roundtrip(smooth)
    mu = 255
    # |x̂ − x| ≤ (dF⁻¹/dy)·Δy/2 with Δy/2 = 1/254 and dF⁻¹/dy = ln(1+μ)(1+μ|x|)/μ
    bound = np.log1p(mu) * (1 + mu * np.maximum(np.abs(smooth), np.abs(decoded))) / (254 * mu)
    assert np.all(np.abs(decoded - smooth) <= bound * (1 + 1e-9))
    assert len(np.unique(decoded)) <= 255  # sign + 7-bit magnitude, one zero
    assert np.max(np.abs(decoded - smooth)) > 1e-3  # it does quantise


def test_telephone_without_codec_only_filters():
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE)).astype(np.float32)
    inner = slice(800, -800)  # away from the resampling edges
    plain = telephone(tone, RATE, codec="none")
    coded = telephone(tone, RATE, codec="mulaw")
    assert np.max(np.abs(plain - tone)[inner]) < 2e-3  # 1 kHz passes the band untouched
    assert 30 < snr_db(tone[inner], coded[inner]) < 45  # μ-law: about 38 dB SNR


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"low_hz": 3500.0}, "low_hz"),
        ({"high_hz": 4000.0}, "high_hz"),
        ({"low_hz": 0.0}, "low_hz"),
        ({"codec": "alaw"}, "codec"),
    ],
)
def test_telephone_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        telephone(harmonic_tone(200, 0.1), RATE, **kwargs)


# --- noise -----------------------------------------------------------------------------


@pytest.mark.parametrize("generator", [white_noise, pink_noise, brown_noise])
@pytest.mark.parametrize("target", [0.0, 5.0, 10.0, 20.0])
def test_add_noise_hits_the_target_snr(generator, target):
    clean = harmonic_tone(150)
    noise = generator(3000, np.random.default_rng(1))  # shorter than the audio: tiled
    mix = add_noise(clean, noise, target)
    assert mix.dtype == np.float32 and mix.shape == clean.shape
    assert abs(snr_db(clean, mix) - target) < 0.5


@pytest.mark.parametrize(
    "generator, slope", [(white_noise, 0.0), (pink_noise, -10.0), (brown_noise, -20.0)]
)
def test_noise_spectrum_slope_per_decade(generator, slope):
    noise = generator(2**18, np.random.default_rng(2))
    freqs, psd = welch(noise, 1.0, nperseg=4096)
    band = (freqs >= 1e-3) & (freqs <= 1e-1)  # two decades
    fitted = np.polyfit(np.log10(freqs[band]), 10 * np.log10(psd[band]), 1)[0]
    assert abs(fitted - slope) < 2
    assert noise.dtype == np.float32 and abs(power(noise) - 1) < 1e-3


def test_add_noise_refuses_silence_and_bad_snr():
    tone, noise = harmonic_tone(150, 0.1), white_noise(100, np.random.default_rng(0))
    with pytest.raises(ValueError, match="audio is silent"):
        add_noise(np.zeros(100, np.float32), noise, 10)
    with pytest.raises(ValueError, match="noise is silent"):
        add_noise(tone, np.zeros(100, np.float32), 10)
    with pytest.raises(ValueError, match="snr_db"):
        add_noise(tone, noise, float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        add_noise(np.full(10, np.nan, np.float32), noise, 10)


# --- reverb ----------------------------------------------------------------------------


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_rir_decays_60_db_in_rt60(rt60):
    """ISO 3382 T30: fit the Schroeder curve from −5 to −35 dB, extrapolate to −60 dB."""
    response = synthetic_rir(RATE, rt60, np.random.default_rng(3)).astype(np.float64)
    energy = np.cumsum(response[::-1] ** 2)[::-1]
    decay_db = 10 * np.log10(energy / energy[0])
    fit = (decay_db <= -5) & (decay_db >= -35)
    slope = np.polyfit(np.arange(response.size)[fit] / RATE, decay_db[fit], 1)[0]
    assert abs(-60 / slope - rt60) < 0.1 * rt60


def test_reverberate_keeps_length_and_loudness_and_fills_silence():
    burst = harmonic_tone(150, 0.5)
    burst[RATE // 4 :] = 0  # 0.25 s of tone, then 0.25 s of silence
    wet = reverberate(burst, RATE, 0.6, np.random.default_rng(4))
    assert wet.dtype == np.float32 and wet.shape == burst.shape
    assert abs(power(wet) / power(burst) - 1) < 1e-4
    assert np.max(np.abs(wet)) <= 1
    assert power(wet[RATE // 4 + 800 :]) > 1e-3 * power(burst)  # the tail rings on


# --- voice -----------------------------------------------------------------------------


def gap_edges(audio: np.ndarray, rate: int = RATE) -> tuple[float, float]:
    """Start and end (s) of the silent stretch inside a gated tone, from 5 ms frame RMS."""
    frame = rate // 200
    levels = np.sqrt(np.mean(audio[: audio.size // frame * frame].reshape(-1, frame) ** 2, axis=1))
    quiet = np.nonzero(levels < 0.1 * levels.max())[0]
    return quiet[0] * frame / rate, (quiet[-1] + 1) * frame / rate


def gated_tone() -> np.ndarray:
    """150 Hz harmonic tone with a gap from 0.5 to 0.7 s, 1.2 s in all."""
    tone = harmonic_tone(150, 1.2)
    tone[int(0.5 * RATE) : int(0.7 * RATE)] = 0
    return tone


def test_speed_scales_pitch_and_duration():
    tone = harmonic_tone(150)
    fast = speed(tone, RATE, 1.25)
    assert fast.dtype == np.float32
    assert abs(fast.size - tone.size / 1.25) <= 1
    assert abs(pitch(fast) / 187.5 - 1) < 0.02


@pytest.mark.parametrize("factor", [1.25, 0.8])
def test_tempo_changes_duration_not_pitch(factor):
    tone = gated_tone()
    out = tempo(tone, RATE, factor)
    assert out.dtype == np.float32
    assert abs(out.size / (tone.size / factor) - 1) < 0.02
    assert abs(pitch(out) / 150 - 1) < 0.02
    start, end = gap_edges(out)  # the gap moves with the time scale
    assert abs(start - 0.5 / factor) < 0.015 and abs(end - 0.7 / factor) < 0.015


def test_child_voice_raises_pitch_and_speaking_rate():
    tone = harmonic_tone(150, 1.2)
    out = child_voice(tone, RATE, pitch_factor=1.3, tempo_factor=1.1)
    assert abs(pitch(out) / (150 * 1.3) - 1) < 0.03
    assert abs(out.size / (tone.size / 1.1) - 1) < 0.03


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda a: speed(a, RATE, 2.5), "factor"),
        (lambda a: tempo(a, RATE, 0.4), "factor"),
        (lambda a: child_voice(a, RATE, pitch_factor=3.0), "pitch_factor"),
        (lambda a: child_voice(a, RATE, 2.0, 0.6), "tempo_factor / pitch_factor"),
        (lambda a: speed(a, 0, 1.1), "sample_rate"),
        (lambda a: speed(a[None, :], RATE, 1.1), "mono"),
    ],
)
def test_voice_rejects_bad_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call(harmonic_tone(150, 0.1))


# --- chain -----------------------------------------------------------------------------

CHAIN = [
    {"type": "telephone"},
    {"type": "noise", "color": "pink", "snr_db": [5, 15]},
    {"type": "reverb", "rt60": [0.2, 0.4]},
]


@pytest.mark.parametrize(
    "steps, where",
    [
        ([{"type": "telephone"}, {"type": "noise", "snr_db": [15, 5]}], "transforms.1.snr_db"),
        ([{"type": "noise", "snr_db": 10, "snr": 3}], "transforms.0.snr"),
        ([{"type": "reverb"}], "transforms.0.rt60"),
        ([{"type": "speed", "factor": 1.1}, {"type": "tempo", "factor": 3}], "transforms.1.factor"),
        ([{"type": "echo"}], "transforms.0: Input tag 'echo'"),
        ([{"snr_db": 10}], "transforms.0: missing key 'type'"),
    ],
)
def test_parse_errors_name_the_step_and_key(steps, where):
    with pytest.raises(ValueError, match=f"^{where}"):
        parse_chain(steps)


def test_describe_reads_like_the_chain():
    steps = parse_chain(CHAIN + [{"type": "child"}, {"type": "tempo", "factor": 0.9}])
    assert describe(steps) == (
        "telephone 300–3400 Hz μ-law → pink noise 5–15 dB SNR → reverb RT60 0.2–0.4 s"
        " → child voice (pitch ×1.3, tempo ×1.1) → tempo ×0.9"
    )


def test_apply_chain_is_deterministic_per_seed():
    steps, tone = parse_chain(CHAIN), harmonic_tone(150, 0.5)
    first = apply_chain(tone, RATE, steps, np.random.default_rng(7))
    again = apply_chain(tone, RATE, steps, np.random.default_rng(7))
    other = apply_chain(tone, RATE, steps, np.random.default_rng(8))
    assert first.dtype == np.float32 and first.shape == tone.shape
    assert np.array_equal(first, again) and not np.allclose(first, other)
    fixed = parse_chain([{"type": "telephone"}])
    assert np.array_equal(
        apply_chain(tone, RATE, fixed, np.random.default_rng(7)),
        apply_chain(tone, RATE, fixed, np.random.default_rng(8)),
    )


def test_ranges_are_drawn_inside_their_bounds():
    steps, tone = parse_chain([{"type": "noise", "snr_db": [5, 15]}]), harmonic_tone(150, 0.2)
    mixes = [apply_chain(tone, RATE, steps, np.random.default_rng(seed)) for seed in range(30)]
    measured = [snr_db(tone, mix) for mix in mixes]
    assert min(measured) > 5 - 0.01 and max(measured) < 15 + 0.01
    assert max(measured) - min(measured) > 5  # actually spread over the range
    rng = np.random.default_rng(0)
    draws = [draw((0.2, 0.4), rng) for _ in range(200)]
    assert 0.2 <= min(draws) < 0.22 and 0.38 < max(draws) <= 0.4
    assert draw(0.3, rng) == 0.3


# --- dataset ---------------------------------------------------------------------------

DATASET_CHAIN = [{"type": "noise", "snr_db": 20}, {"type": "tempo", "factor": 1.25}]


def write_tones(folder):
    """Three 16 kHz wav tones of 0.5, 0.8 and 1.0 s with a metadata.jsonl."""
    (folder / "wav").mkdir(parents=True)
    rows = []
    for i, (f0, seconds) in enumerate([(120, 0.5), (180, 0.8), (240, 1.0)]):
        sf.write(folder / f"wav/u{i}.wav", harmonic_tone(f0, seconds), RATE)
        rows.append({"file_name": f"wav/u{i}.wav", "text": f"word {i}", "speaker": "s0", "note": i})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def read_rows(folder):
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def test_transform_dataset_writes_the_same_rows_as_flac(tmp_path):
    source = write_tones(tmp_path / "src")
    calls = []
    summary = transform_dataset(
        source, tmp_path / "out", DATASET_CHAIN, progress=lambda *done_total: calls.append(done_total)
    )
    rows = read_rows(tmp_path / "out")
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert [r["text"] for r in rows] == ["word 0", "word 1", "word 2"]
    assert [r["note"] for r in rows] == [0, 1, 2] and {r["speaker"] for r in rows} == {"s0"}
    assert [r["file_name"] for r in rows] == [f"audio/wav/u{i}.flac" for i in range(3)]
    for row, seconds in zip(rows, [0.5, 0.8, 1.0]):
        info = sf.info(tmp_path / "out" / row["file_name"])
        assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_16", RATE)
        assert row["duration"] == round(info.frames / RATE, 3)
        assert abs(row["duration"] - seconds / 1.25) < 0.002
        assert row["transform"] == "white noise 20 dB SNR → tempo ×1.25"
    assert summary.rows == 3 and summary.transform == rows[0]["transform"]
    assert abs(summary.seconds_in - 2.3) < 1e-6 and abs(summary.seconds_out - 2.3 / 1.25) < 0.005


def test_transform_dataset_is_deterministic_per_seed(tmp_path):
    source = write_tones(tmp_path / "src")
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        transform_dataset(source, tmp_path / name, DATASET_CHAIN, seed=seed)
    audio = {name: sf.read(tmp_path / name / "audio/wav/u1.flac")[0] for name in "abc"}
    assert np.array_equal(audio["a"], audio["b"])
    assert not np.array_equal(audio["a"], audio["c"])


def test_each_file_has_its_own_noise_whatever_the_row_order(tmp_path):
    source = write_tones(tmp_path / "src")
    (source / "wav/u3.wav").write_bytes((source / "wav/u1.wav").read_bytes())
    rows = read_rows(source) + [{"file_name": "wav/u3.wav", "text": "copy of 1"}]
    (source / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::-1]))
    transform_dataset(source, tmp_path / "out", DATASET_CHAIN)
    first = sf.read(tmp_path / "out/audio/wav/u1.flac")[0]
    (source / "metadata.jsonl").write_text(json.dumps(rows[1]) + "\n")
    transform_dataset(source, tmp_path / "alone", DATASET_CHAIN)
    assert np.array_equal(first, sf.read(tmp_path / "alone/audio/wav/u1.flac")[0])
    assert not np.array_equal(first, sf.read(tmp_path / "out/audio/wav/u3.flac")[0])


def test_loud_output_is_scaled_down_not_clipped(tmp_path):
    source = write_tones(tmp_path / "src")
    chain = [{"type": "noise", "color": "brown", "snr_db": -10}]
    summary = transform_dataset(source, tmp_path / "out", chain, seed=3)
    written = sf.read(tmp_path / "out/audio/wav/u2.flac", dtype="float32")[0]
    clean = load_audio(source / "wav/u2.wav")
    expected = apply_chain(clean, RATE, parse_chain(chain), utterance_rng(3, "wav/u2.wav"))
    assert summary.rescaled == 3 and np.max(np.abs(expected)) > 1
    expected *= (1 - 2**-15) / np.max(np.abs(expected))
    assert np.max(np.abs(written - expected)) <= 2**-15


def test_transform_dataset_refuses_unsafe_outputs(tmp_path):
    source = write_tones(tmp_path / "src")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="busy.*not empty"):
        transform_dataset(source, tmp_path / "busy", DATASET_CHAIN)
    with pytest.raises(ValueError, match="source folder"):
        transform_dataset(source, source, DATASET_CHAIN)


def test_transform_dataset_names_a_broken_line_and_leaves_nothing(tmp_path):
    source = write_tones(tmp_path / "src")
    lines = (source / "metadata.jsonl").read_text().splitlines()
    broken = [lines[0], '{"file_name": "x.wav",', lines[2]]
    (source / "metadata.jsonl").write_text("\n".join(broken))
    with pytest.raises(ValueError, match="metadata.jsonl line 2: invalid JSON"):
        transform_dataset(source, tmp_path / "out", DATASET_CHAIN)
    (source / "metadata.jsonl").write_text("\n".join([lines[0], lines[1].replace("u1", "gone")]))
    with pytest.raises(ValueError, match="gone.wav"):  # AudioError from the loader
        transform_dataset(source, tmp_path / "out", DATASET_CHAIN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no output, no staging folder
