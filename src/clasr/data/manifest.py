"""Dataset manifests: an audiofolder-style folder becomes a validated list of utterances.

The input layout is a folder with ``metadata.jsonl`` (or ``metadata.csv``) whose rows have
``file_name`` (audio path relative to the folder), ``text`` and optionally ``speaker``,
``split``, ``duration``, ``offset`` and any extra columns. A row with an ``offset`` (seconds) is a
segment of its file: ``offset`` to ``offset + duration`` (to the end of the file without a
duration), and only that span is decoded. ``read_dataset`` checks every row, keeps the
valid ones that a ``Selection`` asks for, in manifest order, and returns a
``ManifestReport`` that accounts for every row: kept, bad (with a reason from a closed set)
or removed by a named filter.

Row numbers are manifest line numbers, where the row starts (1-based): for JSONL the line
of the object, for CSV the line of the record, the header being line 1.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clasr.data.audio import AudioError, AudioInfo, probe_audio
from clasr.printable import printable

JSONL_MANIFEST = "metadata.jsonl"
CSV_MANIFEST = "metadata.csv"

# Why a row was rejected: the closed set of BadRow.reason values.
BAD_SYNTAX = "bad_syntax"
MISSING_COLUMN = "missing_column"
EMPTY_TEXT = "empty_text"
PATH_OUTSIDE_FOLDER = "path_outside_folder"
MISSING_FILE = "missing_file"
UNREADABLE_AUDIO = "unreadable_audio"
EMPTY_AUDIO = "empty_audio"
# Found only when the audio is decoded or the transcript tokenized (training, scoring, `clasr data check`).
UNDECODABLE_AUDIO = "undecodable_audio"
NON_FINITE_AUDIO = "non_finite_audio"
TRANSCRIPT_TOO_LONG = "transcript_too_long"
BAD_SEGMENT = "bad_segment"
BAD_ROW_REASONS = (
    BAD_SYNTAX,
    MISSING_COLUMN,
    EMPTY_TEXT,
    PATH_OUTSIDE_FOLDER,
    MISSING_FILE,
    UNREADABLE_AUDIO,
    EMPTY_AUDIO,
    UNDECODABLE_AUDIO,
    NON_FINITE_AUDIO,
    TRANSCRIPT_TOO_LONG,
    BAD_SEGMENT,
)

# The filters of a Selection, in the order they are applied.
SELECTION_FILTERS = ("split", "speakers", "where", "min_duration", "max_duration", "skip", "max_utterances")

# Columns with a meaning of their own; any other column goes to Utterance.extra.
KNOWN_COLUMNS = frozenset({"file_name", "text", "speaker", "split", "duration", "offset"})

# Seconds the duration column may differ from the audio header before a warning.
DURATION_TOLERANCE = 0.1

_DURATION_MISMATCH = (
    f"duration column differs from the audio header by more than {DURATION_TOLERANCE} s "
    "(the header is used)"
)
_DURATION_NOT_A_NUMBER = "duration column is not a number (ignored)"
_REPEATED_FILE = "file_name repeats an earlier row (id is file_name#row)"


class DataError(ValueError):
    """A dataset that cannot be used as asked.

    Raised for a folder without a manifest, an empty selection, or a bad row in strict mode.
    """


@dataclass(frozen=True)
class Utterance:
    """One valid manifest row.

    ``id`` is the file_name as written in the manifest (``file_name@offset`` for a segment), or
    that with ``#row`` appended when an earlier row already used it, so ids are unique and do not
    depend on the selection. ``duration`` (seconds) comes from the audio header; for a segment
    (``offset`` not None) it is the segment's length. ``row`` is the manifest line number.
    ``extra`` holds every column besides file_name, text, speaker, split, duration and offset.
    """

    id: str
    audio_path: Path
    text: str
    duration: float
    speaker: str | None
    split: str | None
    row: int
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    offset: float | None = None


@dataclass(frozen=True)
class BadRow:
    """A manifest row that cannot be used, why (one of BAD_ROW_REASONS) and the details."""

    source: Path
    row: int
    file_name: str | None
    reason: str
    detail: str

    def __post_init__(self) -> None:
        if self.reason not in BAD_ROW_REASONS:
            raise ValueError(
                f"unknown bad-row reason {self.reason!r}; expected one of {BAD_ROW_REASONS}"
            )

    def __str__(self) -> str:
        """One line, control characters of the file name and detail escaped (see :mod:`clasr.printable`)."""
        where = f"{self.source} row {self.row}"
        if self.file_name is not None:
            where += f" ({self.file_name})"
        return printable(f"{where}: {self.reason}: {self.detail}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "source": str(self.source),
            "row": self.row,
            "file_name": self.file_name,
            "reason": self.reason,
            "detail": self.detail,
        }


class Selection(BaseModel):
    """Which valid rows of a manifest to use.

    Filters apply in SELECTION_FILTERS order: split, speakers, ``where`` (column → accepted
    values, compared as text: a row is kept when every named column holds one of its values;
    a column that no row has is an error), min/max duration (inclusive bounds, on the header
    duration), then ``skip`` drops the first rows left and
    ``max_utterances`` caps the rest, both in manifest order, so that two selections of one
    split can be disjoint (e.g. skip=0, max_utterances=100 and skip=100).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: str | None = Field(default=None, min_length=1)
    speakers: list[str] | None = Field(default=None, min_length=1)
    where: dict[str, list[str | int | float | bool]] | None = Field(default=None, min_length=1)
    skip: int = Field(default=0, ge=0)
    max_utterances: int | None = Field(default=None, ge=1)
    min_duration: float | None = Field(default=None, ge=0)
    max_duration: float | None = Field(default=None, ge=0)

    @field_validator("where", mode="before")
    @classmethod
    def _one_value_is_a_list(cls, where: Any) -> Any:
        """``{accents: england}`` means ``{accents: [england]}``."""
        if isinstance(where, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in where.items()}
        return where

    @field_validator("where")
    @classmethod
    def _values_given(cls, where: dict[str, list] | None) -> dict[str, list] | None:
        empty = [column for column, values in (where or {}).items() if not values]
        if empty:
            raise ValueError(f"no accepted values for column(s) {empty}")
        return where

    @model_validator(mode="after")
    def _check_duration_bounds(self) -> Selection:
        if (
            self.min_duration is not None
            and self.max_duration is not None
            and self.min_duration > self.max_duration
        ):
            raise ValueError(
                f"min_duration ({self.min_duration}) must not exceed "
                f"max_duration ({self.max_duration})"
            )
        return self


def count_by_reason(bad_rows: list[BadRow]) -> dict[str, int]:
    """Number of ``bad_rows`` per reason, for the reasons that occur, in BAD_ROW_REASONS order."""
    counts = Counter(bad.reason for bad in bad_rows)
    return {reason: counts[reason] for reason in BAD_ROW_REASONS if counts[reason]}


@dataclass
class ManifestReport:
    """Where every manifest row went: ``rows`` = ``kept`` + bad rows + sum of ``filtered``.

    ``filtered`` counts, per filter of SELECTION_FILTERS, the valid rows it removed.
    """

    source: Path
    rows: int = 0
    kept: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    filtered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SELECTION_FILTERS, 0))
    warnings: list[str] = field(default_factory=list)

    def bad_counts(self) -> dict[str, int]:
        """Number of bad rows per reason, for the reasons that occur."""
        return count_by_reason(self.bad_rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "source": str(self.source),
            "rows": self.rows,
            "kept": self.kept,
            "bad_counts": self.bad_counts(),
            "filtered": dict(self.filtered),
            "warnings": list(self.warnings),
            "bad_rows": [bad.to_dict() for bad in self.bad_rows],
        }


def read_dataset(
    folder: str | os.PathLike,
    selection: Selection | None = None,
    strict: bool = False,
    on_bad_row: Callable[[BadRow], None] | None = None,
) -> tuple[list[Utterance], ManifestReport]:
    """Read the manifest of ``folder`` and return the selected utterances and the report.

    Every row is checked for syntax, the file_name and text columns, a non-empty text and a
    path inside the folder. The audio (file exists, header readable, samples > 0) is probed
    only for rows that pass the split and speaker filters, which keeps big manifests fast:
    bad rows of other splits or speakers are found only by the first checks.

    Bad rows go to ``on_bad_row`` as they are found (for live logging) and to the report;
    with ``strict`` the first one raises DataError. Texts are kept as written, stripped of
    surrounding whitespace. ``metadata.jsonl`` is preferred when ``metadata.csv`` is also
    there (with a warning). Raises DataError when the folder has no manifest or nothing is
    left after filtering.
    """
    folder = Path(folder).expanduser().absolute()
    selection = selection or Selection()
    source, warnings = _find_manifest(folder)
    reader = _DatasetReader(folder, source, selection, strict, on_bad_row)
    reader.report.warnings.extend(warnings)
    utterances = reader.read()
    if not utterances:
        raise DataError(_empty_selection_message(folder, selection, reader.report))
    return utterances, reader.report


def _find_manifest(folder: Path) -> tuple[Path, list[str]]:
    """The manifest file of ``folder`` and any warning about the choice."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such dataset folder")
    jsonl, csv_file = folder / JSONL_MANIFEST, folder / CSV_MANIFEST
    if jsonl.is_file() and csv_file.is_file():
        return jsonl, [
            f"{folder} has both {JSONL_MANIFEST} and {CSV_MANIFEST}; using {JSONL_MANIFEST}"
        ]
    if jsonl.is_file():
        return jsonl, []
    if csv_file.is_file():
        return csv_file, []
    raise DataError(f"{folder}: no {JSONL_MANIFEST} or {CSV_MANIFEST} found")


@dataclass(frozen=True)
class _Entry:
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


class _WarningTally:
    """Counts rows per kind of warning and keeps the first example of each kind."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._examples: dict[str, str] = {}

    def add(self, kind: str, example: str) -> None:
        self._counts[kind] += 1
        self._examples.setdefault(kind, example)

    def messages(self) -> list[str]:
        return [
            f"{kind}: {count} row(s), first {self._examples[kind]}"
            for kind, count in self._counts.items()
        ]


class _DatasetReader:
    """One pass over a manifest: validates, filters and accounts for every row."""

    def __init__(
        self,
        folder: Path,
        source: Path,
        selection: Selection,
        strict: bool,
        on_bad_row: Callable[[BadRow], None] | None,
    ) -> None:
        self.folder = folder
        self.source = source
        self.selection = selection
        self.strict = strict
        self.on_bad_row = on_bad_row
        self.report = ManifestReport(source=source)
        self._tally = _WarningTally()
        self._used_file_names: set[str] = set()
        self._columns: set[str] = set()

    def read(self) -> list[Utterance]:
        """The selected utterances, in manifest order; fills in the report.

        Once ``skip + max_utterances`` rows are selected, later rows that pass the label
        filters are counted against ``max_utterances`` without reading their audio header (a
        bad audio file there is not looked for: the selection would not use the row anyway).
        """
        wanted = None if self.selection.max_utterances is None else self.selection.skip + self.selection.max_utterances
        candidates: list[Utterance] = []
        for item in read_manifest_rows(self.source):
            utterance = self._row_to_utterance(item, probe=wanted is None or len(candidates) < wanted)
            if utterance is not None:
                candidates.append(utterance)
        self._check_where_columns()
        selected = self._skip_and_cap(candidates)
        self.report.kept = len(selected)
        self.report.warnings.extend(self._tally.messages())
        return selected

    def _row_to_utterance(self, item: tuple[int, dict[str, Any]] | BadRow, probe: bool = True) -> Utterance | None:
        """Check one parsed row and apply the per-row filters.

        None when the row is bad or filtered out (and counted as such); without ``probe`` a
        row that passes the label filters is counted against max_utterances.
        """
        self.report.rows += 1
        if isinstance(item, BadRow):
            return self._reject(item)
        self._columns.update(item[1])
        entry = _check_columns(self.source, self.folder, *item)
        if isinstance(entry, BadRow):
            return self._reject(entry)
        utterance_id = self._unique_id(entry)
        if self._filtered_out(_label_filter(self.selection, entry)):
            return None
        if not probe:
            self._filtered_out("max_utterances")
            return None
        info = _check_audio(self.source, self.folder, entry)
        if isinstance(info, BadRow):
            return self._reject(info)
        duration = _segment_duration(self.source, entry, info.duration)
        if isinstance(duration, BadRow):
            return self._reject(duration)
        if entry.offset is None:
            self._compare_listed_duration(entry, info.duration)
        if self._filtered_out(_duration_filter(self.selection, duration)):
            return None
        return Utterance(
            id=utterance_id,
            audio_path=entry.audio_path,
            text=entry.text,
            duration=duration,
            speaker=entry.speaker,
            split=entry.split,
            row=entry.row,
            extra=entry.extra,
            offset=entry.offset,
        )

    def _reject(self, bad: BadRow) -> None:
        """Record a bad row, tell the listener, and stop here in strict mode."""
        self.report.bad_rows.append(bad)
        if self.on_bad_row is not None:
            self.on_bad_row(bad)
        if self.strict:
            raise DataError(f"{bad}; strict mode: fix the row or run without strict")

    def _filtered_out(self, filter_name: str | None) -> bool:
        """Count the row against ``filter_name`` when a filter removed it."""
        if filter_name is not None:
            self.report.filtered[filter_name] += 1
        return filter_name is not None

    def _unique_id(self, entry: _Entry) -> str:
        """The file_name (file_name@offset for a segment), with #row when an earlier row used it."""
        name = entry.file_name if entry.offset is None else f"{entry.file_name}@{entry.offset:g}"
        if name not in self._used_file_names:
            self._used_file_names.add(name)
            return name
        self._tally.add(_REPEATED_FILE, f"row {entry.row} ({name})")
        return f"{name}#{entry.row}"

    def _check_where_columns(self) -> None:
        """DataError when ``where`` names a column that no row of the manifest has."""
        unknown = sorted(set(self.selection.where or {}) - self._columns)
        if unknown:
            raise DataError(
                f"{self.source}: selection where: no column {', '.join(map(repr, unknown))} in any row; "
                f"the columns are: {', '.join(sorted(self._columns)) or 'none'}"
            )

    def _compare_listed_duration(self, entry: _Entry, header_duration: float) -> None:
        """Warn when the duration column disagrees with the header or is not a number."""
        if entry.listed_duration is None or entry.listed_duration == "":
            return
        listed = _as_seconds(entry.listed_duration)
        where = f"row {entry.row} ({entry.file_name})"
        if listed is None:
            self._tally.add(_DURATION_NOT_A_NUMBER, f"{where}: {entry.listed_duration!r}")
        elif abs(listed - header_duration) > DURATION_TOLERANCE:
            self._tally.add(
                _DURATION_MISMATCH,
                f"{where}: column {listed:.3f} s, header {header_duration:.3f} s",
            )

    def _skip_and_cap(self, candidates: list[Utterance]) -> list[Utterance]:
        """Apply ``skip`` then ``max_utterances``, counting what each removes."""
        skip, cap = self.selection.skip, self.selection.max_utterances
        self.report.filtered["skip"] = min(skip, len(candidates))
        selected = candidates[skip:]
        if cap is not None:
            self.report.filtered["max_utterances"] += max(0, len(selected) - cap)
            selected = selected[:cap]
        return selected


def read_manifest_rows(source: Path) -> Iterator[tuple[int, dict[str, Any]] | BadRow]:
    """(row number, column values) per non-blank row of a metadata.jsonl or metadata.csv, or a
    bad_syntax BadRow (invalid UTF-8, JSON or CSV, a JSON line that is not an object)."""
    return _read_jsonl(source) if source.name == JSONL_MANIFEST else _read_csv(source)


def _read_jsonl(source: Path) -> Iterator[tuple[int, dict[str, Any]] | BadRow]:
    """One JSON object per line; blank lines are skipped, a BOM on line 1 is ignored."""
    with source.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                yield BadRow(
                    source, number, None, BAD_SYNTAX, f"not UTF-8 text (byte {error.start})"
                )
                continue
            if not line.strip():
                continue
            try:
                values = json.loads(line)
            except json.JSONDecodeError as error:
                yield BadRow(
                    source,
                    number,
                    None,
                    BAD_SYNTAX,
                    f"invalid JSON: {error.msg} at column {error.colno}",
                )
                continue
            if not isinstance(values, dict):
                yield BadRow(
                    source,
                    number,
                    None,
                    BAD_SYNTAX,
                    f"expected a JSON object, got {type(values).__name__}",
                )
                continue
            yield number, values


def _read_csv(source: Path) -> Iterator[tuple[int, dict[str, Any]] | BadRow]:
    """Header row then one record per row; rows of empty cells are skipped.

    csv.reader rather than DictReader: it gives the line where each record starts and lets
    a record with the wrong number of fields be reported instead of silently padded.
    """
    reader = csv.reader(io.StringIO(_decode_csv(source), newline=""))
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield BadRow(source, start, None, BAD_SYNTAX, f"invalid CSV: {error}")
            continue
        if not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = [name.strip() for name in record]
        elif len(record) != len(header):
            yield BadRow(
                source, start, None, BAD_SYNTAX, f"expected {len(header)} fields, got {len(record)}"
            )
        else:
            yield start, dict(zip(header, record, strict=True))


def _decode_csv(source: Path) -> str:
    """The CSV manifest as text; an encoding problem concerns the whole file."""
    try:
        return source.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{source} is not UTF-8 text (byte {error.start}); save it as UTF-8"
        ) from error


def _check_columns(source: Path, folder: Path, row: int, values: dict[str, Any]) -> _Entry | BadRow:
    """The row as an _Entry, or why its columns make it unusable."""
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
    return _Entry(
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
    start = _as_seconds(offset)
    if start is None or start < 0:
        return f"offset must be a number of seconds ≥ 0, got {offset!r}"
    if duration is None or duration == "":
        return start, None
    length = _as_seconds(duration)
    if length is None or length <= 0:
        return f"a segment's duration must be a number of seconds > 0, got {duration!r}"
    return start, length


def _segment_duration(source: Path, entry: _Entry, header_duration: float) -> float | BadRow:
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


def _as_seconds(value: Any) -> float | None:
    """A duration column value as seconds; None when it is not a finite number."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


def _check_audio(source: Path, folder: Path, entry: _Entry) -> AudioInfo | BadRow:
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


def _label_filter(selection: Selection, entry: _Entry) -> str | None:
    """The first label filter (split, speakers, where) that removes the entry, if any."""
    if selection.split is not None and entry.split != selection.split:
        return "split"
    if selection.speakers is not None and entry.speaker not in selection.speakers:
        return "speakers"
    if selection.where is not None and not all(
        _column_text(entry, column) in {str(value) for value in accepted}
        for column, accepted in selection.where.items()
    ):
        return "where"
    return None


def _column_text(entry: _Entry, column: str) -> str | None:
    """The value of any manifest column of the entry as text (None when the row lacks it)."""
    known = {"file_name": entry.file_name, "text": entry.text, "speaker": entry.speaker, "split": entry.split}
    value = known[column] if column in known else entry.extra.get(column)
    return None if value is None else str(value)


def _duration_filter(selection: Selection, duration: float) -> str | None:
    """The first duration filter that removes an utterance of ``duration`` s, if any."""
    if selection.min_duration is not None and duration < selection.min_duration:
        return "min_duration"
    if selection.max_duration is not None and duration > selection.max_duration:
        return "max_duration"
    return None


def _empty_selection_message(folder: Path, selection: Selection, report: ManifestReport) -> str:
    asked = selection.model_dump(exclude_defaults=True) or "all rows"
    removed = {name: count for name, count in report.filtered.items() if count}
    return (
        f"{folder}: no utterances left for selection {asked} "
        f"({report.rows} rows; bad: {report.bad_counts() or 'none'}; filtered: {removed or 'none'})"
    )
