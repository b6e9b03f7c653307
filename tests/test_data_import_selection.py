"""What imported folders rely on: ``where`` selections by any column, segment rows (offset and
duration) read and decoded exactly, and DataLoader workers that change nothing but speed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from clasr.data.audio import load_audio
from clasr.data.batching import load_utterance_audio
from clasr.data.manifest import DataError, Selection, read_dataset
from clasr.experiment.config import ConfigError, parse_config


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture
def accents(tmp_path) -> Path:
    """Six clips with Common Voice-style columns."""
    (tmp_path / "a").mkdir()
    rows = []
    for i, (accent, age) in enumerate([("england", "twenties"), ("us", "thirties"), ("england", 40),
                                        ("india", "twenties"), ("us", "twenties"), ("scotland", "")]):
        sf.write(tmp_path / "a" / f"{i}.wav", np.full(1600, 0.1, np.float32), 16000)
        rows.append({"file_name": f"a/{i}.wav", "text": f"clip {i}", "split": "train" if i < 5 else "test",
                     "speaker": f"s{i % 2}", "accents": accent, "age": age})
    return write_manifest(tmp_path, rows)


def ids(utterances) -> list[str]:
    return [u.id for u in utterances]


def test_where_keeps_rows_whose_columns_hold_an_accepted_value(accents):
    utterances, report = read_dataset(accents, Selection(split="train", where={"accents": ["england", "india"]}))
    assert ids(utterances) == ["a/0.wav", "a/2.wav", "a/3.wav"]
    assert report.filtered["where"] == 2 and report.filtered["split"] == 1
    both, _ = read_dataset(accents, Selection(where={"accents": "us", "age": "twenties"}))  # one value: a list of one
    assert ids(both) == ["a/4.wav"]
    number, _ = read_dataset(accents, Selection(where={"age": [40]}))  # compared as text
    assert ids(number) == ["a/2.wav"]
    known, _ = read_dataset(accents, Selection(where={"speaker": ["s1"], "split": ["test", "train"]}))
    assert ids(known) == ["a/1.wav", "a/3.wav", "a/5.wav"]


def test_where_on_a_column_no_row_has_names_it_and_the_columns_there_are(accents):
    with pytest.raises(DataError, match=r"selection where: no column 'accent' in any row; the columns are: "
                                        r"accents, age, file_name, speaker, split, text"):
        read_dataset(accents, Selection(where={"accent": ["england"]}))
    with pytest.raises(DataError, match="no utterances left"):
        read_dataset(accents, Selection(where={"accents": ["wales"]}))


def test_rows_left_out_by_where_are_not_probed(accents):
    """Audio headers are read only for rows the label filters keep: a selection of a fifth of a
    big corpus costs a fifth of its header reads."""
    rows = [json.loads(line) for line in (accents / "metadata.jsonl").read_text().splitlines()]
    rows.append({"file_name": "a/gone.wav", "text": "x", "split": "train", "accents": "wales"})
    write_manifest(accents, rows)
    utterances, report = read_dataset(accents, Selection(where={"accents": ["england"]}))
    assert ids(utterances) == ["a/0.wav", "a/2.wav"] and not report.bad_rows and report.filtered["where"] == 5


def test_where_in_an_experiment_config_is_validated():
    base = {"tasks": [{"name": "t", "data": "x", "test": {"split": "test"}}]}
    ok = parse_config({**base, "tasks": [{**base["tasks"][0], "train": {"split": "train", "where": {"accents": ["england"]}}}]})
    assert ok.tasks[0].train.where == {"accents": ["england"]}
    for bad, message in (({"accents": []}, "no accepted values"), (["england"], "valid dictionary"),
                         ({"accents": [{"nested": 1}]}, "accents")):
        with pytest.raises(ConfigError, match=message) as error:
            parse_config({**base, "tasks": [{**base["tasks"][0], "train": {"where": bad}}]})
        assert "tasks.0.train.where" in str(error.value)


# --- segments ---------------------------------------------------------------------------------

@pytest.fixture
def recording(tmp_path) -> tuple[Path, np.ndarray]:
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * 16000).astype(np.float32)
    sf.write(tmp_path / "rec.flac", samples, 16000, subtype="PCM_24")
    return tmp_path, sf.read(tmp_path / "rec.flac", dtype="float32")[0]


def test_segment_rows_are_read_with_their_span_and_bad_spans_reported(recording):
    folder, samples = recording
    rows = [
        {"file_name": "rec.flac", "text": "a", "offset": 0.5, "duration": 1.0},
        {"file_name": "rec.flac", "text": "b", "offset": 2.0},  # to the end
        {"file_name": "rec.flac", "text": "whole"},
        {"file_name": "rec.flac", "text": "c", "offset": 2.5, "duration": 1.0},  # ends 0.5 s after the audio
        {"file_name": "rec.flac", "text": "d", "offset": 3.0, "duration": 0.5},  # starts at the end
        {"file_name": "rec.flac", "text": "e", "offset": -0.1, "duration": 0.5},
        {"file_name": "rec.flac", "text": "f", "offset": "soon", "duration": 0.5},
        {"file_name": "rec.flac", "text": "g", "offset": 1.0, "duration": 0},
        {"file_name": "rec.flac", "text": "h", "offset": 2.95, "duration": 0.1},  # within tolerance: cut at the end
    ]
    utterances, report = read_dataset(write_manifest(folder, rows))
    assert [(u.text, u.offset, round(u.duration, 6)) for u in utterances] == [
        ("a", 0.5, 1.0), ("b", 2.0, 1.0), ("whole", None, 3.0), ("h", 2.95, 0.05)]
    assert ids(utterances) == ["rec.flac@0.5", "rec.flac@2", "rec.flac", "rec.flac@2.95"]
    assert [(b.row, b.reason) for b in report.bad_rows] == [(r, "bad_segment") for r in (4, 5, 6, 7, 8)]
    assert "ends after the audio" in report.bad_rows[0].detail and "number of seconds ≥ 0" in report.bad_rows[3].detail
    a, b, whole, h = utterances
    assert np.array_equal(load_utterance_audio(a), samples[8000:24000])
    assert np.array_equal(load_utterance_audio(b), samples[32000:])
    assert np.array_equal(load_utterance_audio(whole), samples)
    assert np.array_equal(load_utterance_audio(h), samples[47200:])
    short, _ = read_dataset(folder, Selection(max_duration=1.0))  # filters see the segment's length
    assert [u.text for u in short] == ["a", "b", "h"]


def test_a_span_of_another_rate_is_the_resampled_span(tmp_path):
    stereo = np.random.default_rng(1).uniform(-0.5, 0.5, (44100 * 2, 2)).astype(np.float32)
    sf.write(tmp_path / "x.wav", stereo, 44100, subtype="FLOAT")
    span = load_audio(tmp_path / "x.wav", offset=0.5, duration=0.75)
    expected = soxr.resample(stereo[22050:22050 + 33075].mean(axis=1), 44100, 16000, quality="HQ")
    assert np.array_equal(span, expected.astype(np.float32))
    with pytest.raises(ValueError, match="offset ≥ 0 and duration > 0"):
        load_audio(tmp_path / "x.wav", offset=-1)


def test_mp3_spans_seek_to_the_same_samples_as_a_full_decode(tmp_path):
    t = np.arange(48000 * 2) / 48000
    sf.write(tmp_path / "x.mp3", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000, format="MP3")
    full = sf.read(tmp_path / "x.mp3", dtype="float32")[0]
    assert len(full) == 96000
    span = load_audio(tmp_path / "x.mp3", 48000, offset=0.25, duration=1.0)
    assert np.array_equal(span, full[12000:60000])


# --- DataLoader workers -----------------------------------------------------------------------

def test_training_with_workers_gives_the_same_model(tmp_path, one_thread):
    import torch
    from accelerate import Accelerator

    from clasr.data.batching import SpeechCollator
    from clasr.models.whisper import tiny_random_whisper
    from clasr.train import TrainConfig, train_task
    from conftest import write_dataset

    write_dataset(tmp_path, n_train=12, n_test=1)
    utterances, _ = read_dataset(tmp_path, Selection(split="train"))
    models = []
    for workers in (0, 2):
        bundle = tiny_random_whisper(seed=1)
        collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
        config = TrainConfig(learning_rate=3e-3, epochs=1, batch_size=4, num_workers=workers)
        stats = train_task(bundle.model, utterances, collator, config, Accelerator(cpu=True), seed=0)
        models.append((bundle.model, stats.losses))
    (a, losses_a), (b, losses_b) = models
    assert losses_a == losses_b and len(losses_a) == 3
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name


# --- recipes ----------------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name,tasks", [
    ("cv_accents.yaml", ["us", "england", "australia", "india", "scotland"]),
    ("librispeech_then_adapt.yaml", ["librispeech", "us_respeaker", "india_matrix", "britain_usb"]),
])
def test_recipes_parse_with_the_config_loader(name, tasks):
    """The recipes validate (their data folders, made by `clasr data import`, need not exist)."""
    from clasr.experiment.config import load_config

    config = load_config(EXAMPLES / name)
    assert [t.name for t in config.tasks] == tasks
    assert config.train.num_workers == 2
    header = (EXAMPLES / name).read_text().split("\nname:")[0]
    assert "clasr data import" in header and "https://" in header
    if name == "cv_accents.yaml":
        assert config.tasks[1].train.where == {"accents": ["England English"]}
        assert all(t.test.split == "test" and t.test.where for t in config.tasks)


def test_rows_past_max_utterances_are_counted_without_probing(accents):
    rows = [json.loads(line) for line in (accents / "metadata.jsonl").read_text().splitlines()]
    rows.append({"file_name": "a/gone.wav", "text": "x", "split": "train", "accents": "us"})
    write_manifest(accents, rows)
    utterances, report = read_dataset(accents, Selection(split="train", skip=1, max_utterances=2))
    assert ids(utterances) == ["a/1.wav", "a/2.wav"] and not report.bad_rows
    assert report.filtered == {**report.filtered, "split": 1, "skip": 1, "max_utterances": 3}
    assert report.rows == report.kept + len(report.bad_rows) + sum(report.filtered.values())
    everything, report = read_dataset(accents, Selection(split="train"))
    assert [b.reason for b in report.bad_rows] == ["missing_file"]  # without a cap the row is probed


def test_a_run_resumes_with_another_num_workers_but_not_another_batch_size():
    from clasr.experiment.checkpoint import RunState
    from clasr.experiment.runner import check_output_dir

    config = parse_config({"tasks": [{"name": "t", "data": "x", "train": {}, "test": {}}], "train": {"num_workers": 0}})
    state = RunState(rows=[{"row": 0}], config=config.to_plain())
    check_output_dir(config.model_copy(update={"train": config.train.model_copy(update={"num_workers": 2})}), state)
    with pytest.raises(ConfigError, match=r"differs at: train.batch_size"):
        check_output_dir(config.model_copy(update={"train": config.train.model_copy(update={"batch_size": 3})}), state)


def test_a_run_started_before_a_key_existed_resumes_with_that_key_at_its_default():
    from clasr.experiment.checkpoint import RunState
    from clasr.experiment.runner import check_output_dir

    config = parse_config({"tasks": [{"name": "t", "data": "x", "train": {}, "test": {}}]})
    older = config.to_plain()
    del older["train"]["num_workers"], older["evaluation"]["engine"], older["guard"]  # keys added since
    check_output_dir(config, RunState(rows=[{"row": 0}], config=older))
    older["evaluation"]["compute_type"] = "int8"  # a key the run did set is compared as before
    with pytest.raises(ConfigError, match=r"differs at: evaluation.compute_type"):
        check_output_dir(config, RunState(rows=[{"row": 0}], config=older))


def test_a_blora_run_started_before_kl_scale_existed_is_not_resumed_at_the_new_scale():
    """Runs before issue 14 divided BLoRA's KL by N; the new default divides by T. A stored
    config without the key is read at its old behaviour, so the silent switch is refused."""
    from clasr.experiment.checkpoint import RunState
    from clasr.experiment.runner import check_output_dir

    config = parse_config({"tasks": [{"name": "t", "data": "x", "train": {}, "test": {}}], "adapter": {"type": "blora"}})
    older = config.to_plain()
    del older["adapter"]["kl_scale"]
    with pytest.raises(ConfigError, match=r"differs at: adapter.kl_scale\) \(it started .* as adapter.kl_scale: utterances"):
        check_output_dir(config, RunState(rows=[{"row": 0}], config=older))
    check_output_dir(parse_config({**config.to_plain(), "adapter": {**config.to_plain()["adapter"], "kl_scale": "utterances"}}),
                     RunState(rows=[{"row": 0}], config=older))
    lora = parse_config({"tasks": [{"name": "t", "data": "x", "train": {}, "test": {}}], "adapter": {"type": "lora"}})
    check_output_dir(lora, RunState(rows=[{"row": 0}], config=lora.to_plain()))  # other adapters: no such key
