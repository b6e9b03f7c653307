"""`clasr data import`: every format from small fixtures written here, broken rows of each format
reported (never dropped silently), segments decoded exactly, atomic output, and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from clasr.cli import app
from clasr.data.audio import load_audio
from clasr.data.batching import load_utterance_audio
from clasr.data.importers import REPORT_FILE, ImportOptions, import_dataset
from clasr.data.manifest import DataError, Selection, read_dataset

RATE = 16000


def signal(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Three seeded tones below 4 kHz plus a little noise (survives MP3 coding well)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    tones = sum(0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in rng.uniform(100, 4000, 3))
    return (tones + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_audio(path: Path, seconds: float, rate: int = RATE, seed: int = 0, **kwargs) -> np.ndarray:
    """A seeded signal written to ``path``; returns the samples as soundfile reads them back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal(seconds, rate, seed), rate, **kwargs)
    return sf.read(path, dtype="float32")[0]


def metadata(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def report(folder: Path) -> dict:
    return json.loads((folder / REPORT_FILE).read_text())


def bad(folder: Path) -> list[tuple[str, int, str]]:
    """(source file name, row, reason) of every reported bad row."""
    return [(Path(b["source"]).name, b["row"], b["reason"]) for b in report(folder)["bad_rows"]]


# --- Common Voice -----------------------------------------------------------------------------

CV_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment"


def commonvoice_folder(root: Path) -> Path:
    folder = root / "en"
    for i in range(4):
        write_audio(folder / "clips" / f"cv_{i}.mp3", 0.5 + 0.25 * i, 48000, seed=i, format="MP3")
    rows = {
        "train": [
            "spk_a\tcv_0.mp3\tHe said \"hello\" twice.\t2\t0\ttwenties\tfemale\tEngland English\ten\t",
            "spk_b\tcv_1.mp3\tA second sentence.\t3\t1\t\tmale\tUnited States English\ten\t",
            "spk_b\tmissing.mp3\tNo clip for this one.\t2\t0\t\tmale\tUnited States English\ten\t",
            "spk_c\tcv_2.mp3\t \t2\t0\t\t\tScottish English\ten\t",
            "spk_c\tcv_3.mp3\ttoo few fields",
        ],
        "test": ["spk_d\tcv_3.mp3\tThe test clip.\t2\t0\tfifties\tmale\tIndia and South Asia (India, Pakistan, Sri Lanka)\ten\t"],
    }
    for split, lines in rows.items():
        (folder / f"{split}.tsv").write_text("\n".join([CV_HEADER, *lines]) + "\n", encoding="utf-8")
    (folder / "validated.tsv").write_text(CV_HEADER + "\n", encoding="utf-8")
    return folder


def test_commonvoice_import_keeps_every_column_and_reports_broken_rows(tmp_path):
    source = commonvoice_folder(tmp_path)
    out = tmp_path / "out"
    result = import_dataset("commonvoice", source, out)
    rows = metadata(out)
    assert [r["text"] for r in rows] == ['He said "hello" twice.', "A second sentence.", "The test clip."]
    assert [r["split"] for r in rows] == ["train", "train", "test"]
    assert rows[0]["speaker"] == "spk_a" and rows[0]["file_name"] == "audio/clips/cv_0.mp3"
    assert {k: rows[0][k] for k in ("accents", "age", "gender", "locale", "up_votes")} == {
        "accents": "England English", "age": "twenties", "gender": "female", "locale": "en", "up_votes": "2"}
    assert rows[1]["duration"] == pytest.approx(0.75, abs=1e-3)
    assert bad(out) == [("train.tsv", 4, "missing_file"), ("train.tsv", 5, "empty_text"), ("train.tsv", 6, "bad_syntax")]
    assert (result.rows, result.written) == (6, 3) and report(out)["bad_counts"] == {
        "bad_syntax": 1, "empty_text": 1, "missing_file": 1}
    assert os.stat(out / rows[0]["file_name"]).st_ino == os.stat(source / "clips" / "cv_0.mp3").st_ino  # hard link
    utterances, _ = read_dataset(out, Selection(split="train"))
    assert len(utterances) == 2 and utterances[0].extra["accents"] == "England English"


def test_commonvoice_mp3_clips_decode_to_the_written_samples(tmp_path):
    source = commonvoice_folder(tmp_path)
    out = tmp_path / "out"
    import_dataset("commonvoice", source, out, ImportOptions(tsv=("test",)), copy=True)
    (utterance,), _ = read_dataset(out)
    assert os.stat(utterance.audio_path).st_ino != os.stat(source / "clips" / "cv_3.mp3").st_ino  # copied
    decoded = load_audio(utterance.audio_path, 48000)
    original = signal(1.25, 48000, seed=3)
    assert decoded.shape == original.shape
    # MP3 is lossy: the decoded noise follows the original closely, not exactly
    assert np.corrcoef(decoded, original)[0, 1] > 0.99


def test_commonvoice_asked_tsv_must_exist_and_validated_is_the_fallback(tmp_path):
    source = commonvoice_folder(tmp_path)
    with pytest.raises(DataError, match="no other.tsv"):
        import_dataset("commonvoice", source, tmp_path / "out", ImportOptions(tsv=("other",)))
    for name in ("train.tsv", "test.tsv"):
        (source / name).unlink()
    (source / "validated.tsv").write_text(CV_HEADER + "\nspk\tcv_0.mp3\tHello.\t2\t0\t\t\t\ten\t\n")
    import_dataset("commonvoice", source, tmp_path / "out")
    assert [r["split"] for r in metadata(tmp_path / "out")] == ["validated"]


REAL_CV = Path(__file__).resolve().parents[2] / "shared" / "data" / "commonvoice_sample"
REAL_CV_CONVERTED = REAL_CV.parent / "multilingual"


@pytest.mark.shared_data
@pytest.mark.skipif(not REAL_CV.is_dir(), reason="../shared/data/commonvoice_sample is absent")
def test_real_common_voice_mp3s_decode_like_an_independent_conversion(tmp_path):
    """Real Common Voice MP3s (48 kHz) imported from their own layout decode, at 16 kHz, to the
    audio of ../multilingual, converted from the same clips by another decoder."""
    out = tmp_path / "de"
    import_dataset("commonvoice", REAL_CV / "de", out, copy=True)
    utterances, report_ = read_dataset(out, Selection(split="validated"))
    assert len(utterances) == 6 and not report_.bad_rows
    converted = {row["file_name"].split("_")[-1].removesuffix(".flac"): row for row in map(
        json.loads, (REAL_CV_CONVERTED / "metadata.jsonl").read_text().splitlines()) if row["file_name"].startswith("audio/cv_de_")}
    for utterance in utterances:
        clip_id = utterance.audio_path.stem.split("_")[-1]
        ours = load_audio(utterance.audio_path)
        theirs = load_audio(REAL_CV_CONVERTED / converted[clip_id]["file_name"])
        assert abs(len(ours) - len(theirs)) <= 0.05 * RATE, clip_id
        n = min(len(ours), len(theirs))
        lags = range(-800, 801, 1)  # ±50 ms: decoders differ in how they trim the encoder delay
        best = max(_correlation(ours, theirs, lag, n) for lag in lags[::40])
        assert best > 0.9, clip_id


def _correlation(a: np.ndarray, b: np.ndarray, lag: int, n: int) -> float:
    a, b = (a[lag:n], b[: n - lag]) if lag >= 0 else (a[: n + lag], b[-lag:n])
    return float(np.corrcoef(a, b)[0, 1])


# --- LibriSpeech ------------------------------------------------------------------------------

def test_librispeech_tree_gives_speaker_chapter_split_and_reports_broken_lines(tmp_path):
    root = tmp_path / "LibriSpeech"
    chapter = root / "dev-clean" / "84" / "121123"
    write_audio(chapter / "84-121123-0000.flac", 0.6, seed=1)
    write_audio(chapter / "84-121123-0001.flac", 0.4, seed=2)
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO DO YOU HEAR\n84-121123-0001\n84-121123-0002 NO AUDIO HERE\n")
    adapt = root / "en-gb" / "matrix" / "test" / "7" / "99"  # a Libri-Adapt-style nesting
    write_audio(adapt / "7-99-0003.wav", 0.5, seed=3)
    (adapt / "7-99.trans.txt").write_text("7-99-0003 A WAV FILE\n")
    out = tmp_path / "out"
    import_dataset("librispeech", root, out)
    rows = metadata(out)
    assert [(r["text"], r["speaker"], r["chapter"], r["split"]) for r in rows] == [
        ("GO DO YOU HEAR", "84", "121123", "dev-clean"), ("A WAV FILE", "7", "99", "en-gb/matrix/test")]
    assert rows[0]["file_name"] == "audio/dev-clean/84/121123/84-121123-0000.flac"
    assert bad(out) == [("84-121123.trans.txt", 2, "empty_text"), ("84-121123.trans.txt", 3, "missing_file")]
    import_dataset("librispeech", root / "dev-clean", tmp_path / "out2", ImportOptions(split="dev"))
    assert {r["split"] for r in metadata(tmp_path / "out2")} == {"dev"}


def test_libri_adapt_deepspeech_lists(tmp_path):
    root = tmp_path / "libriadapt"
    write_audio(root / "en-in" / "usb" / "train" / "19-198-0001.wav", 0.5)
    write_audio(root / "en-in" / "usb" / "train" / "take_2.wav", 0.5)
    (root / "en-in" / "clean").mkdir(parents=True)
    (root / "en-in" / "clean" / "train_files_usb.csv").write_text(
        "wav_filename,wav_filesize,transcript\n../usb/train/19-198-0001.wav,16044,hello world\n\n"
        f"{root}/en-in/usb/train/take_2.wav,16044,an absolute path\n../usb/train/gone.wav,1,no file\nbroken,row\n")
    (root / "notes.csv").write_text("a,b\n1,2\n")  # another CSV: not a list, not read
    out = tmp_path / "out"
    import_dataset("librispeech", root, out)
    rows = metadata(out)
    assert [(r["text"], r.get("speaker"), r.get("chapter"), r["split"]) for r in rows] == [
        ("hello world", "19", "198", "en-in/clean/train_files_usb"),
        ("an absolute path", None, None, "en-in/clean/train_files_usb")]
    assert rows[0]["file_name"] == "audio/en-in/usb/train/19-198-0001.wav"
    assert bad(out) == [("train_files_usb.csv", 5, "missing_file"), ("train_files_usb.csv", 6, "bad_syntax")]


# --- NeMo -------------------------------------------------------------------------------------

def test_nemo_manifest_with_offsets_decodes_only_each_segment(tmp_path):
    long = write_audio(tmp_path / "wavs" / "long.wav", 3.0, seed=4)
    write_audio(tmp_path / "elsewhere" / "short.wav", 0.5, seed=5)
    lines = [
        {"audio_filepath": "wavs/long.wav", "text": "first part", "duration": 1.0, "offset": 0.5, "lang": "en"},
        {"audio_filepath": "wavs/long.wav", "text": "second part", "duration": 1.25, "offset": 1.75},
        {"audio_filepath": str(tmp_path / "elsewhere" / "short.wav"), "text": "whole file", "duration": 0.5,
         "speaker": 7},
        {"audio_filepath": "wavs/long.wav", "text": "past the end", "duration": 1.0, "offset": 2.5},
        {"audio_filepath": "wavs/long.wav", "text": "negative", "duration": 1.0, "offset": -1},
        {"audio_filepath": "wavs/gone.wav", "text": "missing", "duration": 1.0},
        {"audio_filepath": "wavs/long.wav", "text": "", "duration": 3.0},
        {"text": "no audio path"},
    ]
    manifest = tmp_path / "train_manifest.json"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n{not json\n")
    out = tmp_path / "out"
    import_dataset("nemo", manifest, out)
    rows = metadata(out)
    assert [(r["text"], r.get("offset"), r["duration"]) for r in rows] == [
        ("first part", 0.5, 1.0), ("second part", 1.75, 1.25), ("whole file", None, 0.5)]
    assert rows[0]["lang"] == "en" and rows[2]["speaker"] == "7" and rows[0]["split"] == "train_manifest"
    assert bad(out) == [("train_manifest.json", 4, "bad_segment"), ("train_manifest.json", 5, "bad_segment"),
                        ("train_manifest.json", 6, "missing_file"), ("train_manifest.json", 7, "empty_text"),
                        ("train_manifest.json", 8, "missing_column"), ("train_manifest.json", 9, "bad_syntax")]
    utterances, _ = read_dataset(out)
    first, second, whole = utterances
    assert (first.offset, first.duration, whole.offset) == (0.5, 1.0, None)
    assert first.id == "audio/wavs/long.wav@0.5" and second.id == "audio/wavs/long.wav@1.75"
    assert np.array_equal(load_utterance_audio(first), long[8000:24000])
    assert np.array_equal(load_utterance_audio(second), long[28000:48000])
    assert (out / "audio" / "wavs" / "long.wav").is_file()  # one link for both segments
    assert report(out)["audio_files"] == 2


def test_nemo_audio_root_option(tmp_path):
    write_audio(tmp_path / "corpus" / "a.wav", 0.5)
    manifest = tmp_path / "manifests" / "test.jsonl"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"audio_filepath": "a.wav", "text": "hi", "duration": 0.5}) + "\n")
    import_dataset("nemo", manifest.parent, tmp_path / "out", ImportOptions(audio_root=tmp_path / "corpus"))
    assert metadata(tmp_path / "out")[0]["file_name"] == "audio/a.wav"
    assert metadata(tmp_path / "out")[0]["split"] == "test"


# --- Kaldi ------------------------------------------------------------------------------------

def kaldi_dir(root: Path, segments: bool) -> tuple[Path, np.ndarray]:
    data = root / "data" / "train"
    data.mkdir(parents=True)
    rec = write_audio(root / "wav" / "rec1.wav", 4.0, seed=6)
    write_audio(root / "wav" / "u2.wav", 0.5, seed=7)
    if segments:
        (data / "wav.scp").write_text(f"rec1 {root}/wav/rec1.wav\nrec2 {root}/wav/nope.wav\n")
        (data / "segments").write_text(
            "u1 rec1 0.25 1.5\nu2 rec1 2.0 -1\nu3 rec1 3.0 2.0\nu4 rec1 3.5 5.0\nu5 rec2 0 1\nu6 rec1 0 1\n")
        (data / "text").write_text("u1 hello there\nu2 to the end\nu3 backwards\nu4 too long\nu5 missing\nu6\n")
    else:
        (data / "wav.scp").write_text(f"u1 {root}/wav/rec1.wav\nu2 ../../wav/u2.wav\n")
        (data / "text").write_text("u1 hello there\nu2 short one\nu3 no audio\n")
    (data / "utt2spk").write_text("u1 alice\nu2 bob\n")
    return data, rec


def test_kaldi_segments_become_offsets_decoded_exactly(tmp_path):
    data, rec = kaldi_dir(tmp_path, segments=True)
    out = tmp_path / "out"
    import_dataset("kaldi", data, out)
    rows = metadata(out)
    assert [(r["utterance_id"], r["offset"], r["duration"], r.get("speaker")) for r in rows] == [
        ("u1", 0.25, 1.25, "alice"), ("u2", 2.0, 2.0, "bob")]
    assert rows[0]["recording"] == "rec1" and rows[0]["split"] == "train"
    assert bad(out) == [("segments", 3, "bad_segment"), ("text", 4, "bad_segment"),  # past the end: seen with the audio
                        ("text", 5, "missing_file"), ("text", 6, "empty_text")]
    first, second = read_dataset(out)[0]
    assert np.array_equal(load_utterance_audio(first), rec[4000:24000])
    assert np.array_equal(load_utterance_audio(second), rec[32000:])


def test_kaldi_plain_wav_scp_relative_to_the_data_dir(tmp_path):
    data, _ = kaldi_dir(tmp_path, segments=False)
    out = tmp_path / "out"
    import_dataset("kaldi", data.parent, out)  # a folder of data directories
    rows = metadata(out)
    assert [(r["utterance_id"], r["speaker"], r["split"]) for r in rows] == [("u1", "alice", "train"), ("u2", "bob", "train")]
    assert "offset" not in rows[0] and bad(out) == [("text", 3, "missing_file")]


def test_kaldi_piped_wav_scp_is_refused_and_never_run(tmp_path):
    data, _ = kaldi_dir(tmp_path, segments=False)
    marker = tmp_path / "executed"
    (data / "wav.scp").write_text(f"u1 {tmp_path}/wav/rec1.wav\nu2 touch {marker} && sox u2.sph -t wav - |\n")
    with pytest.raises(DataError, match=r"wav.scp line 2 \(u2\).*is a command \(piped wav.scp\)"):
        import_dataset("kaldi", data, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


# --- parquet ----------------------------------------------------------------------------------

def test_parquet_shards_with_audio_bytes_or_paths(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    samples = write_audio(tmp_path / "src" / "a.flac", 0.5, seed=8)
    write_audio(tmp_path / "src" / "b.wav", 0.25, seed=9)
    audio = [
        {"bytes": (tmp_path / "src" / "a.flac").read_bytes(), "path": "a.flac"},
        {"bytes": None, "path": "b.wav"},
        {"bytes": None, "path": None},
        {"bytes": (tmp_path / "src" / "a.flac").read_bytes(), "path": "c.flac"},
    ]
    table = pa.table({
        "audio": audio,
        "sentence": ["bytes row", "path row", "no audio", None],
        "client_id": ["s1", "s2", "s3", "s4"],
        "age": [20, 30, 40, 50],
    })
    shards = tmp_path / "hf" / "data"
    shards.mkdir(parents=True)
    pq.write_table(table, shards / "train-00000-of-00001.parquet")
    options = ImportOptions(text_column="sentence", speaker_column="client_id", audio_root=tmp_path / "src")
    out = tmp_path / "out"
    import_dataset("parquet", tmp_path / "hf", out, options)
    rows = metadata(out)
    assert [(r["text"], r["speaker"], r["age"], r["split"]) for r in rows] == [
        ("bytes row", "s1", 20, "train"), ("path row", "s2", 30, "train")]
    assert rows[0]["file_name"] == "audio/train-00000-of-00001/000001_a.flac" and rows[1]["file_name"] == "audio/b.wav"
    assert bad(out) == [("train-00000-of-00001.parquet", 3, "missing_file"),
                        ("train-00000-of-00001.parquet", 4, "empty_text")]
    assert np.array_equal(sf.read(out / rows[0]["file_name"], dtype="float32")[0], samples)
    with pytest.raises(DataError, match=r"no column 'text' \(--text-column\); the columns are: audio, sentence"):
        import_dataset("parquet", tmp_path / "hf", tmp_path / "out2")


# --- the writer and the command ---------------------------------------------------------------

def test_flac_option_reencodes_once_at_16k(tmp_path):
    source = commonvoice_folder(tmp_path)
    out = tmp_path / "out"
    import_dataset("commonvoice", source, out, ImportOptions(tsv=("test",)), flac=True)
    (row,) = metadata(out)
    assert row["file_name"] == "audio/clips/cv_3.flac"
    info = sf.info(out / row["file_name"])
    assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
    assert np.abs(sf.read(out / row["file_name"], dtype="float32")[0] - load_audio(source / "clips" / "cv_3.mp3")).max() < 1e-4


def test_output_is_atomic_and_never_overwrites(tmp_path):
    source = commonvoice_folder(tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists and is not empty"):
        import_dataset("commonvoice", source, tmp_path / "full")
    (source / "train.tsv").write_text(CV_HEADER + "\nspk\tgone.mp3\tHello.\t2\t0\t\t\t\ten\t\n")
    with pytest.raises(DataError, match=r"no usable rows \(1 read; bad: \{'missing_file': 1\}\)"):
        import_dataset("commonvoice", source, tmp_path / "out", ImportOptions(tsv=("train",)))
    assert not (tmp_path / "out").exists()
    assert {p.name for p in tmp_path.iterdir()} == {"en", "full"}  # no temporary folder left


def test_paths_climbing_out_and_options_of_other_formats_are_refused(tmp_path):
    source = commonvoice_folder(tmp_path)
    write_audio(tmp_path / "secret.wav", 0.5)
    (source / "train.tsv").write_text(CV_HEADER + "\nspk\t../../secret.wav\tHello.\t2\t0\t\t\t\ten\t\n"
                                      "spk\tcv_0.mp3\tFine.\t2\t0\t\t\t\ten\t\n")
    out = tmp_path / "out"
    import_dataset("commonvoice", source, out, ImportOptions(tsv=("train",)))
    assert bad(out) == [("train.tsv", 2, "path_outside_folder")] and len(metadata(out)) == 1
    with pytest.raises(DataError, match="--text-column: not an option of the kaldi importer"):
        import_dataset("kaldi", source, tmp_path / "x", ImportOptions(text_column="sentence"))
    with pytest.raises(DataError, match="unknown format 'wav2vec'; expected one of commonvoice, librispeech"):
        import_dataset("wav2vec", source, tmp_path / "x")


def test_cli_import_prints_counts_and_fails_cleanly(tmp_path):
    source = commonvoice_folder(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["data", "import", "commonvoice", str(source), str(tmp_path / "out"), "--tsv", "train"])
    assert result.exit_code == 0, result.output
    assert "2 of 5 rows" in result.output and "'missing_file': 1" in result.output
    data, _ = kaldi_dir(tmp_path / "k", segments=False)
    (data / "wav.scp").write_text("u1 flac -dc x.flac |\n")
    result = runner.invoke(app, ["data", "import", "kaldi", str(data), str(tmp_path / "k_out")])
    assert result.exit_code == 2 and "piped wav.scp" in result.output and "Traceback" not in result.output


def test_writer_checks_segments_it_is_handed(tmp_path):
    from clasr.data.importers.rows import SourceRow
    from clasr.data.importers.writer import ImportReport, write_audiofolder

    write_audio(tmp_path / "a.wav", 1.0)
    rows = [SourceRow(tmp_path / "list", n, "a.wav", "hi", tmp_path / "a.wav", offset=offset, duration=duration)
            for n, (offset, duration) in enumerate([(-1.0, None), (0.5, 0.0), (0.25, None)], start=1)]
    out = tmp_path / "out"
    report = write_audiofolder(rows, out, ImportReport("test", tmp_path, out))
    assert [(b.row, b.reason) for b in report.bad_rows] == [(1, "bad_segment"), (2, "bad_segment")]
    assert [(r["offset"], r["duration"]) for r in metadata(out)] == [(0.25, 0.75)]
