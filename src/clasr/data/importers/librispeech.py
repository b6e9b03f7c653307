"""LibriSpeech trees: ``[PART/…/]SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`` beside the FLAC files.

Each transcript line is ``UTTERANCE-ID TEXT``; the audio is ``UTTERANCE-ID.flac`` (or ``.wav``)
in the same folder. The speaker and chapter are the two folders above the audio; the split is
the path of the folders above those relative to the source (``train-clean-100``; for
Libri-Adapt-style trees that nest the same layout under device or condition folders, e.g.
``en-us/clean/matrix/train``), or ``--split``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from clasr.data.importers.rows import ImportOptions, SourceRow, audio_name
from clasr.data.manifest import DataError

OPTIONS = {"split"}
AUDIO_SUFFIXES = (".flac", ".wav")


def read_rows(folder: Path, options: ImportOptions) -> Iterator[SourceRow]:
    """Every transcript line of every ``*.trans.txt`` under ``folder``, in path order."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such LibriSpeech folder")
    transcripts = sorted(folder.rglob("*.trans.txt"))
    if not transcripts:
        raise DataError(f"{folder}: no SPEAKER/CHAPTER/*.trans.txt files below it (is it a LibriSpeech tree?)")
    for transcript in transcripts:
        yield from _transcript_rows(folder, transcript, options.split)


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
