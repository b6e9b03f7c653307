"""Kaldi / ESPnet data directories: ``wav.scp``, ``text``, optional ``utt2spk`` and ``segments``.

One utterance per line of ``text`` (``UTT TRANSCRIPT``). Without ``segments`` its audio is
``wav.scp``'s entry for UTT; with ``segments`` (``UTT RECORDING START END``, seconds, END −1 =
to the end of the recording) it is that span of the recording's entry. ``utt2spk`` gives the
speaker. The source is a data directory or a folder of them (e.g. ``data/`` holding ``train/``
and ``test/``); the split is the directory's name unless ``--split`` is given. Relative paths
start at ``--audio-root`` (default: the data directory).

Only plain paths are read. A ``wav.scp`` entry that is a command (``sox … |``, ``flac -dc … |``)
is refused — the import stops with an error naming the line — and never executed: convert the
audio to files first and list their paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clasr.data.importers.rows import ImportOptions, SourceRow, audio_name, resolve_audio
from clasr.data.manifest import BAD_SEGMENT, EMPTY_TEXT, MISSING_FILE, BadRow, DataError, parse_segment

OPTIONS = {"split", "audio_root"}
TO_THE_END = -1.0  # a segment's END meaning the end of the recording


def read_rows(source: Path, options: ImportOptions) -> Iterator[SourceRow | BadRow]:
    """Every utterance of the data directory (or directories), in ``text`` order."""
    for data_dir in data_dirs(source):
        yield from _directory_rows(data_dir, options.audio_root or data_dir, options.split or data_dir.name)


def data_dirs(source: Path) -> list[Path]:
    """``source`` when it holds ``wav.scp``, else its subfolders that do, sorted."""
    if (source / "wav.scp").is_file():
        return [source]
    found = sorted(p for p in source.iterdir() if (p / "wav.scp").is_file()) if source.is_dir() else []
    if not found:
        raise DataError(f"{source}: no wav.scp in it or in its subfolders (is it a Kaldi data directory?)")
    return found


def _directory_rows(data_dir: Path, root: Path, split: str) -> Iterator[SourceRow | BadRow]:
    wav_scp = data_dir / "wav.scp"
    if not (data_dir / "text").is_file():
        raise DataError(f"{data_dir}: no text file (UTT TRANSCRIPT per line)")
    recordings = {key: (number, value) for number, key, value in _table(wav_scp)}
    _refuse_commands(wav_scp, recordings)
    speakers = {key: value for _, key, value in _table(data_dir / "utt2spk")}
    segments = {key: (number, value) for number, key, value in _table(data_dir / "segments")}
    has_segments = (data_dir / "segments").is_file()
    tables = _Tables(recordings, speakers, segments if has_segments else None)
    for number, utterance, text in _table(data_dir / "text"):
        yield _utterance(data_dir, number, utterance, text, tables, root, split)


@dataclass(frozen=True)
class _Tables:
    """wav.scp and segments ((line, value) by key; segments None when absent), utt2spk."""

    recordings: dict[str, tuple[int, str]]
    speakers: dict[str, str]
    segments: dict[str, tuple[int, str]] | None


def _utterance(
    data_dir: Path, number: int, utterance: str, text: str, tables: _Tables, root: Path, split: str
) -> SourceRow | BadRow:
    """The utterance on line ``number`` of ``text``, or why it cannot be used."""
    text_file = data_dir / "text"
    segments, recordings = tables.segments, tables.recordings
    extra = {"utterance_id": utterance}
    offset = duration = None
    recording = utterance
    if segments is not None:
        if utterance not in segments:
            return BadRow(text_file, number, utterance, MISSING_FILE, "no line for it in segments")
        segment_line, fields = segments[utterance]
        span = _segment_span(fields)
        if isinstance(span, str):
            return BadRow(data_dir / "segments", segment_line, utterance, BAD_SEGMENT, span)
        recording, offset, duration = span
        extra["recording"] = recording
    if recording not in recordings:
        return BadRow(text_file, number, utterance, MISSING_FILE, f"no entry for {recording!r} in wav.scp")
    audio = resolve_audio(recordings[recording][1], root)
    if not text.strip():
        return BadRow(text_file, number, utterance, EMPTY_TEXT, "the transcript is blank")
    return SourceRow(
        source=text_file,
        row=number,
        audio_name=audio_name(audio, root),
        audio_path=audio,
        text=text,
        speaker=tables.speakers.get(utterance),
        split=split,
        offset=offset,
        duration=duration,
        extra=extra,
    )


def _segment_span(fields: str) -> tuple[str, float, float | None] | str:
    """(recording, offset, duration or None) of a segments line's ``RECORDING START END``."""
    parts = fields.split()
    if len(parts) != 3:
        return f"expected RECORDING START END, got {fields!r}"
    recording, start, end = parts
    try:
        start_s, end_s = float(start), float(end)
    except ValueError:
        return f"START and END must be seconds, got {start!r} and {end!r}"
    if end_s == TO_THE_END:
        span = parse_segment(start_s, None)
    elif end_s <= start_s:
        return f"END {end} is not after START {start}"
    else:
        span = parse_segment(start_s, end_s - start_s)
    return span if isinstance(span, str) else (recording, *span)


def _refuse_commands(wav_scp: Path, recordings: dict[str, tuple[int, str]]) -> None:
    """DataError at the first entry that is a command rather than a path."""
    for key, (number, value) in recordings.items():
        if value.rstrip().endswith("|") or value.lstrip().startswith("|"):
            raise DataError(
                f"{wav_scp} line {number} ({key}): {value!r} is a command (piped wav.scp); clasr never "
                "runs commands from data files — write the audio to files (e.g. with the command itself, "
                "or Kaldi's wav-copy) and list their paths in wav.scp"
            )


def _table(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, key, rest of the line) per non-blank line of a Kaldi table; nothing when
    the file does not exist."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                key, *rest = line.split(maxsplit=1)
                yield number, key, rest[0].strip() if rest else ""

