"""The synthetic benchmark: voices, spec validation, generation (valid, deterministic, reused), the demo."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError

from clasr.bench import generate
from clasr.bench.demo import headline_sentence, run_demo, write_report
from clasr.bench.generate import make_benchmark
from clasr.bench.spec import BenchmarkSpec, DomainSpec
from clasr.bench.voices import Voice, VoiceError, synthesize
from clasr.data.manifest import Selection, read_dataset
from clasr.metrics.run_stats import VERDICT_NONE, PairedResult
from clasr.report.comparison import RunSummary, comparison_markdown, read_run
from clasr.report.paired import PairedLine

ESPEAK = Voice(engine="espeak", name="en-gb-scotland+m1")
HEART = Voice(engine="hibari", name="heart")


def _dominant_pitch(audio: np.ndarray, rate: int) -> float:
    """Median autocorrelation pitch (70–400 Hz) over voiced 40 ms frames."""
    frame = int(0.04 * rate)
    pitches = []
    for start in range(0, len(audio) - frame, frame):
        x = audio[start : start + frame] - audio[start : start + frame].mean()
        if np.sqrt(np.mean(x**2)) < 0.02:
            continue
        ac = np.correlate(x, x, "full")[frame - 1 :]
        low, high = int(rate / 400), int(rate / 70)
        lag = low + int(np.argmax(ac[low:high]))
        if ac[lag] > 0.3 * ac[0]:
            pitches.append(rate / lag)
    return float(np.median(pitches))


@pytest.mark.parametrize("voice", [ESPEAK, HEART], ids=["espeak", "hibari"])
def test_each_engine_speaks(voice):
    audio, rate = synthesize(voice, "The train leaves at seven.", seed=3)
    assert audio.dtype == np.float32 and rate in (22050, 24000)
    assert 0.8 < len(audio) / rate < 4.0 and 0.01 < np.abs(audio).max() <= 1.0


def test_hibari_is_deterministic_for_a_seed():
    first, _ = synthesize(HEART, "The train leaves at seven.", seed=3)
    np.testing.assert_array_equal(first, synthesize(HEART, "The train leaves at seven.", seed=3)[0])
    assert not np.array_equal(first, synthesize(HEART, "The train leaves at seven.", seed=4)[0])


def test_espeak_pitch_parameter_changes_the_voice():
    low, rate = synthesize(Voice(engine="espeak", name="en-us", pitch=20), "Hello there, how are you today?")
    high, _ = synthesize(Voice(engine="espeak", name="en-us", pitch=90), "Hello there, how are you today?")
    assert _dominant_pitch(high, rate) > 1.2 * _dominant_pitch(low, rate)


def test_unknown_voices_are_refused_with_their_name():
    with pytest.raises(VoiceError, match="no-such-voice"):
        synthesize(Voice(engine="espeak", name="no-such-voice"), "Hello.")
    with pytest.raises(VoiceError, match="fenrir"):
        synthesize(Voice(engine="hibari", name="fenrir"), "Hello.")


def _domain(name: str, **kwargs) -> DomainSpec:
    defaults = dict(description=name, topic="weather", voices=(ESPEAK, HEART), train=3, dev=1, test=2)
    return DomainSpec(name=name, **{**defaults, **kwargs})


def test_spec_errors_name_the_key():
    with pytest.raises(ValidationError, match=r"snr_db"):
        _domain("a", transforms=({"type": "noise", "color": "pink", "snr_db": 500},))
    with pytest.raises(ValidationError, match="repeated: a"):
        BenchmarkSpec(domains=(_domain("a"),), general=(_domain("a", train=0),))
    with pytest.raises(ValidationError, match="pitch"):
        Voice(engine="espeak", name="en-us", pitch=300)


def test_digests_follow_content_not_identity():
    assert _domain("a").digest(0) == _domain("a").digest(0)
    assert _domain("a").digest(0) != _domain("a", test=3).digest(0) != _domain("a").digest(1)


SMALL = BenchmarkSpec(
    domains=(
        _domain("phone", topic="finance", transforms=({"type": "telephone"},)),
        _domain("kids", topic="gardening", voices=(HEART,), transforms=({"type": "child"},)),
    ),
    general=(_domain("general", topic="home", voices=(HEART,), train=0, dev=0, test=2),),
)


def test_generated_domains_are_valid_audiofolder_sets(tmp_path):
    summaries = make_benchmark(SMALL, tmp_path)
    assert [s.name for s in summaries] == ["phone", "kids", "general"]
    phone = summaries[0]
    rows = [json.loads(line) for line in open(f"{phone.folder}/metadata.jsonl")]
    assert [r["split"] for r in rows] == ["train"] * 3 + ["dev"] + ["test"] * 2
    assert len({r["text"] for r in rows}) == 6 and {r["speaker"] for r in rows} == {"phone_v0", "phone_v1"}
    assert rows[0]["channel"].startswith("telephone")
    for split, count in (("train", 3), ("dev", 1), ("test", 2)):
        utterances, report = read_dataset(phone.folder, Selection(split=split))
        assert len(utterances) == count and not report.bad_rows
    audio, rate = sf.read(f"{phone.folder}/{rows[0]['file_name']}")
    assert rate == 16000 and abs(len(audio) / rate - rows[0]["duration"]) < 1e-3
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    assert spectrum[freqs > 4200].sum() < 1e-3 * spectrum.sum()  # the telephone band held
    index = json.loads(next(tmp_path.glob("bench-*.json")).read_text())
    assert index["spec"]["domains"][0]["name"] == "phone" and len(index["domains"]) == 3


def test_generation_is_deterministic_and_reused(tmp_path):
    first = make_benchmark(SMALL, tmp_path / "one")
    second = make_benchmark(SMALL, tmp_path / "two")
    for a, b in zip(first, second):
        rows = open(f"{a.folder}/metadata.jsonl").read()
        assert rows == open(f"{b.folder}/metadata.jsonl").read()
        for row in map(json.loads, rows.splitlines()):
            assert open(f"{a.folder}/{row['file_name']}", "rb").read() == open(f"{b.folder}/{row['file_name']}", "rb").read()
    stamps = [Path(s.folder).stat().st_mtime_ns for s in first]
    again = make_benchmark(SMALL, tmp_path / "one")
    assert [s.folder for s in again] == [s.folder for s in first] and all(s.seconds_to_make == 0 for s in again)
    assert [Path(s.folder).stat().st_mtime_ns for s in again] == stamps


def test_an_interrupted_domain_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []
    original = generate.synthesize

    def fail_on_the_fifth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise VoiceError("interrupted")
        return original(*args, **kwargs)

    monkeypatch.setattr(generate, "synthesize", fail_on_the_fifth)
    domain = SMALL.domains[0]
    target = generate.domain_folder(tmp_path, domain, 0)
    with pytest.raises(VoiceError):
        generate.write_domain(target, domain, 0)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(generate, "synthesize", original)
    assert make_benchmark(SMALL, tmp_path)[0].folder == str(target)


@pytest.fixture(scope="module")
def tiny_checkpoint_8s(tmp_path_factory) -> Path:
    """The tiny random Whisper with an 8 s window: synthetic sentences last 2–5 s."""
    from clasr.models.whisper import tiny_random_whisper

    bundle = tiny_random_whisper(seed=0, window_seconds=8.0)
    folder = tmp_path_factory.mktemp("tiny_whisper_8s")
    for part in (bundle.model, bundle.tokenizer, bundle.feature_extractor):
        part.save_pretrained(folder)
    return folder


def test_demo_runs_every_strategy_and_writes_the_report(tmp_path, tiny_checkpoint_8s, one_thread):
    settings = {
        "seed": 0,
        "model": {"name": str(tiny_checkpoint_8s), "window_seconds": 8.0},
        "train": {"learning_rate": 1e-3, "epochs": 1, "batch_size": 4, "warmup_ratio": 0.0},
        "evaluation": {"batch_size": 8, "limits": {"max_new_tokens": 4}},
    }
    short = SMALL.model_copy(update={"domains": tuple(d.model_copy(update={"topic": "weather"}) for d in SMALL.domains)})
    runs = run_demo(tmp_path / "demo", ("ft", "fta"), short, tmp_path / "cache", settings)
    assert [r.name for r in runs] == ["ft", "fta"]
    assert all(r.metrics["complete"] for r in runs)
    assert runs[0].matrix["wer"][0] == runs[1].matrix["wer"][0]  # the foundation row is shared
    assert runs[1].matrix["row_labels"] == ["foundation", "after phone", "after kids"]
    report = write_report(runs, short, tmp_path / "demo")
    for name in ("README.md", "heatmap_ft.png", "heatmap_fta.png", "trajectories.png"):
        assert (report / name).stat().st_size > 0
    assert (report / "heatmap_ft.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (report / "README.md").read_text()
    assert comparison_markdown(runs) in text and "telephone" in text
    assert "## Does ft forget, and does another strategy avoid it?" in text
    assert "Holm over these 1 tests alone" in text and "| backward_transfer | ft | fta |" in text
    assert read_run("ft", tmp_path / "demo" / "ft").matrix == runs[0].matrix


def _bwt_line(run_b: str, verdict: str) -> PairedLine:
    return PairedLine("ft", run_b, PairedResult("backward_transfer", -0.03, 0.0, -0.03, (-0.06, -0.01), 0.004, 0.004,
                                                0.008, verdict))


@pytest.mark.parametrize(("ci", "verdicts", "expected"), [
    ((-0.06, -0.005), ("B better", VERDICT_NONE), ["so ft forgets (the interval lies below 0)",
                                                    "**ihr forgets significantly less than ft (p Holm < 0.05)**"]),
    ((-0.06, 0.01), (VERDICT_NONE, VERDICT_NONE), ["so ft shows no detectable forgetting (the interval reaches 0)",
                                                    "**no strategy forgets significantly less than ft**"]),
    ((-0.06, -0.005), ("B better", "B better"), ["**ihr, fta forget significantly less than ft (p Holm < 0.05)**"]),
])
def test_the_headline_answers_from_the_interval_and_the_pre_specified_test(ci, verdicts, expected):
    runs = [RunSummary("ft", {}, {"complete": True, "backward_transfer": -0.03, "ci95": {"backward_transfer": ci}}, 1.0)]
    lines = [_bwt_line(name, verdict) for name, verdict in zip(("ihr", "fta"), verdicts)]
    sentence = headline_sentence(runs, lines)
    assert "ft's BWT: -3.0 [-6.0, " in sentence and "Holm over these 2 tests alone" in sentence
    for part in expected:
        assert part in sentence


def test_breath_variants_are_refused_as_not_reproducible():
    with pytest.raises(VoiceError, match="f3.*breath"):
        synthesize(Voice(engine="espeak", name="en-029+f3"), "Hello.")


def test_default_espeak_voices_are_reproducible_over_many_sentences(tmp_path):
    """Breath-noise variants diverged between two runs only after ~100 sentences: make 120."""
    from clasr.bench.default import DOMAINS

    voices = tuple({v for d in DOMAINS.values() for v in d.voices if v.engine == "espeak"})
    spec = BenchmarkSpec(domains=(_domain("many", voices=voices, train=110, dev=0, test=10),))
    first, second = make_benchmark(spec, tmp_path / "a")[0], make_benchmark(spec, tmp_path / "b")[0]
    for row in map(json.loads, open(f"{first.folder}/metadata.jsonl")):
        assert open(f"{first.folder}/{row['file_name']}", "rb").read() == open(f"{second.folder}/{row['file_name']}", "rb").read()
