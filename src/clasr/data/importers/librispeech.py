"""LibriSpeech trees: ``[PART/…/]SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`` beside the FLAC files,
and the file lists Libri-Adapt ships for its re-recordings.

Each transcript line is ``UTTERANCE-ID TEXT``; the audio is ``UTTERANCE-ID.flac`` (or ``.wav``)
in the same folder. The speaker and chapter are the two folders above the audio; the split is
the path of the folders above those relative to the source (``train-clean-100``; for trees that
nest the same layout under device or condition folders, e.g. ``en-us/clean/matrix/train``), or
``--split``.

Libri-Adapt lists its WAV files in DeepSpeech CSVs (``wav_filename,wav_filesize,transcript``,
e.g. ``en-us/clean/train_files_respeaker.csv``): every ``*.csv`` with that header below the
source is read too, its split the CSV's path without ``.csv`` (``en-us/clean/train_files_respeaker``),
relative WAV paths starting at the CSV's folder, the speaker and chapter taken from a
LibriSpeech utterance id in the file name (``SPEAKER-CHAPTER-NNNN``) when there is one.
(Written from Libri-Adapt's README; its files were not available to test against.)
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from clasr.data.importers.rows import ImportOptions, SourceRow, audio_name, resolve_audio
from clasr.data.manifest import BAD_SYNTAX, BadRow, DataError

OPTIONS = {"split"}
AUDIO_SUFFIXES = (".flac", ".wav")
DEEPSPEECH_HEADER = ["wav_filename", "wav_filesize", "transcript"]
_UTTERANCE_ID = re.compile(r"^(?P<speaker>\d+)-(?P<chapter>\d+)-\d+$")


def read_rows(folder: Path, options: ImportOptions) -> Iterator[SourceRow | BadRow]:
    """Every transcript line of every ``*.trans.txt`` under ``folder``, then every row of every
    Libri-Adapt CSV, in path order."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such LibriSpeech folder")
    transcripts = sorted(folder.rglob("*.trans.txt"))
    lists = [path for path in sorted(folder.rglob("*.csv")) if _is_deepspeech_csv(path)]
    if not transcripts and not lists:
        raise DataError(
            f"{folder}: no SPEAKER/CHAPTER/*.trans.txt and no Libri-Adapt CSV below it (is it a LibriSpeech tree?)"
        )
    for transcript in transcripts:
        yield from _transcript_rows(folder, transcript, options.split)
    for listing in lists:
        yield from _deepspeech_rows(folder, listing, options.split)


def _transcript_rows(root: Path, transcript: Path, split: str | None) -> Iterator[SourceRow]:
    chapter_dir = transcript.parent
    parts = chapter_dir.relative_to(root).parts
    speaker, chapter = (parts[-2], parts[-1]) if len(parts) >= 2 else (None, parts[-1] if parts else None)
    split = split or ("/".join(parts[:-2]) or None)
    with transcript.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            utterance, _, text = line.strip().partition(" ")
            audio = _audio_file(chapter_dir, utterance)
            yield SourceRow(
                source=transcript,
                row=number,
                audio_name=audio_name(audio, root),
                audio_path=audio,
                text=text,
                speaker=speaker,
                split=split,
                extra={"utterance_id": utterance, "chapter": chapter},
            )


def _audio_file(folder: Path, utterance: str) -> Path:
    """The utterance's audio file; the FLAC path when none exists (reported as missing)."""
    for suffix in AUDIO_SUFFIXES:
        if (folder / f"{utterance}{suffix}").is_file():
            return folder / f"{utterance}{suffix}"
    return folder / f"{utterance}{AUDIO_SUFFIXES[0]}"


def _is_deepspeech_csv(path: Path) -> bool:
    with path.open(encoding="utf-8", newline="") as lines:
        return next(csv.reader(lines), None) == DEEPSPEECH_HEADER


def _deepspeech_rows(root: Path, listing: Path, split: str | None) -> Iterator[SourceRow | BadRow]:
    split = split or listing.relative_to(root).with_suffix("").as_posix()
    with listing.open(encoding="utf-8", newline="") as lines:
        reader = csv.reader(lines)
        next(reader)
        for record in reader:
            number = reader.line_num
            if not record:
                continue
            if len(record) != len(DEEPSPEECH_HEADER):
                yield BadRow(listing, number, None, BAD_SYNTAX, f"expected 3 fields, got {len(record)}")
                continue
            audio = resolve_audio(record[0], listing.parent)
            ids = _UTTERANCE_ID.match(audio.stem)
            yield SourceRow(
                source=listing,
                row=number,
                audio_name=audio_name(audio, root),
                audio_path=audio,
                text=record[2],
                speaker=ids["speaker"] if ids else None,
                split=split,
                extra={"utterance_id": audio.stem} | ({"chapter": ids["chapter"]} if ids else {}),
            )
