"""Checking one manifest row: its columns (file_name, text, speaker, split, a segment's offset
and duration) and then its audio header. Each check returns the checked row, or the
:class:`~clasr.data.records.BadRow` that says why it cannot be used.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clasr.data.audio import AudioError, AudioInfo, probe_audio
from clasr.data.records import (
    BAD_SEGMENT,
    BAD_SYNTAX,
    EMPTY_AUDIO,
    EMPTY_TEXT,
    MISSING_COLUMN,
    MISSING_FILE,
    PATH_OUTSIDE_FOLDER,
    UNREADABLE_AUDIO,
    BadRow,
)

# Columns with a meaning of their own; any other column goes to Utterance.extra.
KNOWN_COLUMNS = frozenset({"file_name", "text", "speaker", "split", "duration", "offset"})

# Seconds the duration column may differ from the audio header before a warning.
DURATION_TOLERANCE = 0.1


@dataclass(frozen=True)
class ManifestEntry:
    """A row whose columns are valid; its audio is not checked yet.

    ``listed_duration`` is the duration column as written, compared with the header later
    (for a segment, a checked positive number or None: to the end of the file).
    """

    row: int
    file_name: str
    audio_path: Path
    text: str
    speaker: str | None
    split: str | None
    listed_duration: Any
    extra: dict[str, Any]
    offset: float | None = None


def check_columns(source: Path, folder: Path, row: int, values: dict[str, Any]) -> ManifestEntry | BadRow:
    """The row as an ManifestEntry, or why its columns make it unusable."""
    file_name, text = values.get("file_name"), values.get("text")
    problem = _required_string_problem("file_name", file_name, MISSING_COLUMN)
    if problem is not None:
        return BadRow(source, row, None, *problem)
    problem = _required_string_problem("text", text, EMPTY_TEXT)
    if problem is not None:
        return BadRow(source, row, file_name, *problem)
    relative = _relative_path_inside(file_name)
    if relative is None:
        return BadRow(
            source, row, file_name, PATH_OUTSIDE_FOLDER, f"the path must stay inside {folder}"
        )
    audio_path = folder / relative
    speaker, split = values.get("speaker"), values.get("split")
    for column, value in (("speaker", speaker), ("split", split)):
        if not _is_label(value):
            return BadRow(
                source, row, file_name, BAD_SYNTAX, f"{column!r} must be a string, got {value!r}"
            )
    offset, listed_duration = values.get("offset"), values.get("duration")
    if offset is not None and offset != "":
        segment = parse_segment(offset, listed_duration)
        if isinstance(segment, str):
            return BadRow(source, row, file_name, BAD_SEGMENT, segment)
        offset, listed_duration = segment
    else:
        offset = None
    return ManifestEntry(
        row=row,
        file_name=file_name,
        audio_path=audio_path,
        text=text.strip(),
        speaker=_label(speaker),
        split=_label(split),
        listed_duration=listed_duration,
        extra={column: value for column, value in values.items() if column not in KNOWN_COLUMNS},
        offset=offset,
    )


def parse_segment(offset: Any, duration: Any) -> tuple[float, float | None] | str:
    """(offset, duration or None: to the end) of a segment in seconds, or what is wrong."""
    start = as_seconds(offset)
    if start is None or start < 0:
        return f"offset must be a number of seconds ≥ 0, got {offset!r}"
    if duration is None or duration == "":
        return start, None
    length = as_seconds(duration)
    if length is None or length <= 0:
        return f"a segment's duration must be a number of seconds > 0, got {duration!r}"
    return start, length


def segment_duration(source: Path, entry: ManifestEntry, header_duration: float) -> float | BadRow:
    """The utterance's duration: the header's for a whole file, the segment's length for a
    segment (see :func:`segment_length`), or a bad_segment row."""
    if entry.offset is None:
        return header_duration
    length = segment_length(entry.offset, entry.listed_duration, header_duration)
    if isinstance(length, str):
        return BadRow(source, entry.row, entry.file_name, BAD_SEGMENT, length)
    return length


def segment_length(offset: float, duration: float | None, header_duration: float) -> float | str:
    """Seconds of audio in the segment ``offset`` + ``duration`` (None: to the end) of a file of
    ``header_duration`` s, or what is wrong with it: it starts at or after the end of the audio,
    or ends more than DURATION_TOLERANCE after it (within the tolerance it is cut at the end)."""
    left = header_duration - offset
    if left <= 0:
        return f"offset {offset:g} s is not before the end of the audio ({header_duration:.3f} s)"
    if duration is None:
        return left
    if duration > left + DURATION_TOLERANCE:
        return f"segment {offset:g}–{offset + duration:g} s ends after the audio ({header_duration:.3f} s)"
    return min(duration, left)


def _required_string_problem(column: str, value: Any, blank_reason: str) -> tuple[str, str] | None:
    """(reason, detail) when a required column is absent, not a string or blank."""
    if value is None:
        return MISSING_COLUMN, f"no {column!r} value"
    if not isinstance(value, str):
        return BAD_SYNTAX, f"{column!r} must be a string, got {type(value).__name__}"
    if not value.strip():
        return blank_reason, f"{column!r} is blank"
    return None


@functools.lru_cache(maxsize=16)
def _real_folder(folder: Path) -> str:
    """The dataset folder with its symbolic links resolved (once per folder, not per row)."""
    return os.path.realpath(folder)


def _relative_path_inside(file_name: str) -> Path | None:
    """``file_name`` normalised, or None when it is absolute or climbs out with ``..``."""
    relative = Path(os.path.normpath(file_name))
    if relative.is_absolute() or relative.parts[:1] == ("..",):
        return None
    return relative


def _is_label(value: Any) -> bool:
    """Whether a speaker or split value is usable: absent, a string or an integer id."""
    return (
        value is None
        or isinstance(value, str)
        or (isinstance(value, int) and not isinstance(value, bool))
    )


def _label(value: str | int | None) -> str | None:
    """A speaker or split label as a stripped string; None when absent or blank."""
    label = "" if value is None else str(value).strip()
    return label or None


def as_seconds(value: Any) -> float | None:
    """A duration column value as seconds; None when it is not a finite number."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


def check_audio(source: Path, folder: Path, entry: ManifestEntry) -> AudioInfo | BadRow:
    """The audio header of the entry, or why the audio is unusable (a symbolic link that leads
    out of the folder included). Only rows that pass the label filters get here: resolving
    the path and reading the header are most of the cost of a row."""
    real = os.path.realpath(entry.audio_path)
    if not real.startswith(os.path.join(_real_folder(folder), "")):
        return BadRow(
            source, entry.row, entry.file_name, PATH_OUTSIDE_FOLDER,
            f"a symbolic link leads to {real}, outside {folder}",
        )
    if not os.path.isfile(real):
        return BadRow(
            source, entry.row, entry.file_name, MISSING_FILE, f"no file at {entry.audio_path}"
        )
    try:
        info = probe_audio(entry.audio_path)
    except AudioError as error:
        return BadRow(source, entry.row, entry.file_name, UNREADABLE_AUDIO, error.reason)
    if info.frames == 0:
        return BadRow(source, entry.row, entry.file_name, EMPTY_AUDIO, "the audio has no samples")
    return info
