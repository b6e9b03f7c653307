"""The one writer of imported datasets: source rows in, an audiofolder out, every row accounted for.

Each ``SourceRow`` is checked as the manifest reader would check it — non-empty text, audio
present and readable with samples, a segment inside its audio — and either written or
reported as a ``BadRow`` (file, row, reason). The output folder holds

    audio/…             the source audio: hard links (``copy``: copies; ``flac``: re-encoded
                        once to 16 kHz mono 16-bit FLAC), parquet bytes written as files
    metadata.jsonl      file_name, text, speaker, split, duration, offset and the other columns
    import_report.json  rows read, written, bad rows per reason and each bad row

and appears whole or not at all (:func:`clasr.atomic.atomic_path`). Hard links rather than
symbolic ones: a link inside the folder that points outside it is not part of the dataset.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import soundfile as sf

from clasr.atomic import atomic_path
from clasr.data.audio import TARGET_SAMPLE_RATE, AudioError, load_audio, probe_audio
from clasr.data.importers.rows import SourceRow
from clasr.data.manifest import (
    BAD_SEGMENT,
    EMPTY_AUDIO,
    EMPTY_TEXT,
    JSONL_MANIFEST,
    MISSING_FILE,
    PATH_OUTSIDE_FOLDER,
    UNREADABLE_AUDIO,
    BadRow,
    DataError,
    count_by_reason,
    segment_length,
)

AUDIO_FOLDER = "audio"
REPORT_FILE = "import_report.json"


@dataclass
class ImportReport:
    """Where every source row went: ``rows`` = ``written`` + bad rows."""

    format: str
    source: Path
    output: Path
    rows: int = 0
    written: int = 0
    audio_files: int = 0
    seconds: float = 0.0
    bad_rows: list[BadRow] = field(default_factory=list)

    def bad_counts(self) -> dict[str, int]:
        """Number of bad rows per reason, for the reasons that occur."""
        return count_by_reason(self.bad_rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "format": self.format,
            "source": str(self.source),
            "output": str(self.output),
            "rows": self.rows,
            "written": self.written,
            "audio_files": self.audio_files,
            "hours": round(self.seconds / 3600, 4),
            "bad_counts": self.bad_counts(),
            "bad_rows": [bad.to_dict() for bad in self.bad_rows],
        }


def write_audiofolder(
    rows: Iterable[SourceRow | BadRow],
    output: str | os.PathLike,
    report: ImportReport,
    copy: bool = False,
    flac: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Check ``rows`` and write the good ones as an audiofolder at ``output``; fills ``report``.

    ``output`` must be absent or an empty folder. ``progress(rows done)`` after each row.
    Raises DataError when no row is usable (nothing is written then) or when hard links are
    impossible (another filesystem: use ``copy``).
    """
    output = Path(output).absolute()
    if output.is_file() or (output.is_dir() and any(output.iterdir())):
        raise DataError(f"{output} already exists and is not empty; choose a new folder")
    with atomic_path(output) as staging:
        staging.mkdir()
        audio = _AudioStore(staging, copy, flac)
        with (staging / JSONL_MANIFEST).open("w", encoding="utf-8") as manifest:
            for item in rows:
                report.rows += 1
                line = _written_row(item, audio) if isinstance(item, SourceRow) else item
                if isinstance(line, BadRow):
                    report.bad_rows.append(line)
                else:
                    manifest.write(json.dumps(line, ensure_ascii=False) + "\n")
                    report.written += 1
                    report.seconds += line["duration"]
                if progress is not None:
                    progress(report.rows)
        if report.written == 0:
            raise DataError(_nothing_usable(report))
        report.audio_files = audio.files
        (staging / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return report


def _nothing_usable(report: ImportReport) -> str:
    first = f"; first: {report.bad_rows[0]}" if report.bad_rows else ""
    return f"{report.source}: no usable rows ({report.rows} read; bad: {report.bad_counts() or 'none'}){first}"


def _written_row(row: SourceRow, audio: _AudioStore) -> dict[str, Any] | BadRow:
    """The metadata line of ``row`` once its audio is in place, or why it cannot be used."""
    if not row.text.strip():
        return BadRow(row.source, row.row, row.audio_name, EMPTY_TEXT, "the transcript is blank")
    stored = audio.store(row)
    if isinstance(stored, BadRow):
        return stored
    name, header_duration = stored
    line: dict[str, Any] = {"file_name": name, "text": row.text.strip()}
    line |= {key: value for key, value in (("speaker", row.speaker), ("split", row.split)) if value is not None}
    if row.offset is None:
        line["duration"] = round(header_duration, 3)
    else:
        length = _checked_segment(row, header_duration)
        if isinstance(length, BadRow):
            return length
        line |= {"offset": row.offset, "duration": round(length, 3)}
    return line | row.extra


def _checked_segment(row: SourceRow, header_duration: float) -> float | BadRow:
    """The segment's length in seconds, or a bad_segment row."""
    if row.offset < 0 or (row.duration is not None and row.duration <= 0):
        detail = f"a segment needs offset ≥ 0 and duration > 0, got {row.offset!r} and {row.duration!r}"
        return BadRow(row.source, row.row, row.audio_name, BAD_SEGMENT, detail)
    length = segment_length(row.offset, row.duration, header_duration)
    if isinstance(length, str):
        return BadRow(row.source, row.row, row.audio_name, BAD_SEGMENT, length)
    return length


class _AudioStore:
    """Puts each source audio file into ``audio/`` once and remembers its header duration."""

    def __init__(self, staging: Path, copy: bool, flac: bool) -> None:
        self.staging = staging
        self.copy = copy
        self.flac = flac
        self.files = 0
        self._stored: dict[str, tuple[str, float] | BadRow] = {}

    def store(self, row: SourceRow) -> tuple[str, float] | BadRow:
        """(file_name in the output, header duration) of the row's audio, or why it is unusable."""
        if row.audio_name not in self._stored:
            self._stored[row.audio_name] = self._put(row)
        stored = self._stored[row.audio_name]
        if isinstance(stored, BadRow):  # reported again under this row
            return BadRow(row.source, row.row, row.audio_name, stored.reason, stored.detail)
        return stored

    def _put(self, row: SourceRow) -> tuple[str, float] | BadRow:
        relative = PurePosixPath(row.audio_name)
        if relative.is_absolute() or ".." in relative.parts:
            detail = "the audio path climbs out of its folder with '..'"
            return BadRow(row.source, row.row, row.audio_name, PATH_OUTSIDE_FOLDER, detail)
        name = PurePosixPath(AUDIO_FOLDER, relative)
        if self.flac:
            name = name.with_suffix(".flac")
        target = self.staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        problem = self._check_source(row)
        if problem is not None:
            return problem
        try:
            self._place(row, target)
            info = probe_audio(target)
        except AudioError as error:
            target.unlink(missing_ok=True)
            return BadRow(row.source, row.row, row.audio_name, UNREADABLE_AUDIO, error.reason)
        if info.frames == 0:
            target.unlink()
            return BadRow(row.source, row.row, row.audio_name, EMPTY_AUDIO, "the audio has no samples")
        self.files += 1
        return name.as_posix(), info.duration

    def _check_source(self, row: SourceRow) -> BadRow | None:
        if row.audio_bytes is not None:
            if not row.audio_bytes:
                return BadRow(row.source, row.row, row.audio_name, EMPTY_AUDIO, "the audio cell holds no bytes")
            return None
        if row.audio_path is None or not row.audio_path.is_file():
            return BadRow(row.source, row.row, row.audio_name, MISSING_FILE, f"no file at {row.audio_path}")
        return None

    def _place(self, row: SourceRow, target: Path) -> None:
        """Link, copy, re-encode or write the row's audio at ``target``."""
        if self.flac:
            sf.write(target, self._decoded(row, target), TARGET_SAMPLE_RATE, subtype="PCM_16", format="FLAC")
        elif row.audio_bytes is not None:
            target.write_bytes(row.audio_bytes)
        elif self.copy:
            shutil.copyfile(row.audio_path, target)
        else:
            _hard_link(row.audio_path, target)

    @staticmethod
    def _decoded(row: SourceRow, target: Path):
        """The row's audio at 16 kHz mono (bytes go through a temporary file beside ``target``)."""
        if row.audio_bytes is None:
            return load_audio(row.audio_path)
        raw = target.with_name(target.name + ".source" + PurePosixPath(row.audio_name).suffix)
        try:
            raw.write_bytes(row.audio_bytes)
            return load_audio(raw)
        finally:
            raw.unlink(missing_ok=True)


def _hard_link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise DataError(
                f"cannot hard-link {source} into {target.parent} ({error.strerror}): the output is "
                "probably on another filesystem; pass --copy to copy the audio instead"
            ) from None
        raise
