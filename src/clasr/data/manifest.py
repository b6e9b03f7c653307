"""Dataset manifests: an audiofolder-style folder becomes a validated list of utterances.

The input layout is a folder with ``metadata.jsonl`` (or ``metadata.csv``) whose rows have
``file_name`` (audio path relative to the folder), ``text`` and optionally ``speaker``,
``split``, ``duration``, ``offset`` and any extra columns. A row with an ``offset`` (seconds) is a
segment of its file: ``offset`` to ``offset + duration`` (to the end of the file without a
duration), and only that span is decoded. ``read_dataset`` checks every row, keeps the
valid ones that a ``Selection`` asks for, in manifest order, and returns a
``ManifestReport`` that accounts for every row: kept, bad (with a reason from a closed set)
or removed by a named filter.

The concerns live in their own modules, whose public names this module re-exports:
:mod:`clasr.data.records` (Utterance, BadRow and its reasons, DataError),
:mod:`clasr.data.manifest_reading` (the JSONL/CSV files, row by row),
:mod:`clasr.data.row_validation` (a row's columns and audio) and :mod:`clasr.data.selection`
(Selection and its filters); this one reads a dataset through them and accounts for every row.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clasr.data.manifest_reading import CSV_MANIFEST, JSONL_MANIFEST, find_manifest, read_manifest_rows
from clasr.data.records import (
    BAD_ROW_REASONS,
    BAD_SEGMENT,
    BAD_SYNTAX,
    EMPTY_AUDIO,
    EMPTY_TEXT,
    MISSING_COLUMN,
    MISSING_FILE,
    NON_FINITE_AUDIO,
    PATH_OUTSIDE_FOLDER,
    TRANSCRIPT_TOO_LONG,
    UNDECODABLE_AUDIO,
    UNREADABLE_AUDIO,
    BadRow,
    DataError,
    Utterance,
    count_by_reason,
)
from clasr.data.row_validation import (
    DURATION_TOLERANCE,
    KNOWN_COLUMNS,
    ManifestEntry,
    as_seconds,
    check_audio,
    check_columns,
    parse_segment,
    segment_duration,
    segment_length,
)
from clasr.data.selection import SELECTION_FILTERS, Selection, duration_filter, label_filter

__all__ = [
    "BAD_ROW_REASONS", "BAD_SEGMENT", "BAD_SYNTAX", "CSV_MANIFEST", "DURATION_TOLERANCE", "EMPTY_AUDIO",
    "EMPTY_TEXT", "JSONL_MANIFEST", "KNOWN_COLUMNS", "MISSING_COLUMN", "MISSING_FILE", "NON_FINITE_AUDIO",
    "PATH_OUTSIDE_FOLDER", "SELECTION_FILTERS", "TRANSCRIPT_TOO_LONG", "UNDECODABLE_AUDIO", "UNREADABLE_AUDIO",
    "BadRow", "DataError", "ManifestReport", "Selection", "Utterance", "count_by_reason", "parse_segment",
    "read_dataset", "read_manifest_rows", "segment_length",
]

_DURATION_MISMATCH = (
    f"duration column differs from the audio header by more than {DURATION_TOLERANCE} s "
    "(the header is used)"
)
_DURATION_NOT_A_NUMBER = "duration column is not a number (ignored)"
_REPEATED_FILE = "file_name repeats an earlier row (id is file_name#row)"



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
    source, warnings = find_manifest(folder)
    reader = _DatasetReader(folder, source, selection, strict, on_bad_row)
    reader.report.warnings.extend(warnings)
    utterances = reader.read()
    if not utterances:
        raise DataError(_empty_selection_message(folder, selection, reader.report))
    return utterances, reader.report


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
        entry = check_columns(self.source, self.folder, *item)
        if isinstance(entry, BadRow):
            return self._reject(entry)
        utterance_id = self._unique_id(entry)
        if self._filtered_out(label_filter(self.selection, entry)):
            return None
        if not probe:
            self._filtered_out("max_utterances")
            return None
        info = check_audio(self.source, self.folder, entry)
        if isinstance(info, BadRow):
            return self._reject(info)
        duration = segment_duration(self.source, entry, info.duration)
        if isinstance(duration, BadRow):
            return self._reject(duration)
        if entry.offset is None:
            self._compare_listed_duration(entry, info.duration)
        if self._filtered_out(duration_filter(self.selection, duration)):
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

    def _unique_id(self, entry: ManifestEntry) -> str:
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

    def _compare_listed_duration(self, entry: ManifestEntry, header_duration: float) -> None:
        """Warn when the duration column disagrees with the header or is not a number."""
        if entry.listed_duration is None or entry.listed_duration == "":
            return
        listed = as_seconds(entry.listed_duration)
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


def _empty_selection_message(folder: Path, selection: Selection, report: ManifestReport) -> str:
    asked = selection.model_dump(exclude_defaults=True) or "all rows"
    removed = {name: count for name, count in report.filtered.items() if count}
    return (
        f"{folder}: no utterances left for selection {asked} "
        f"({report.rows} rows; bad: {report.bad_counts() or 'none'}; filtered: {removed or 'none'})"
    )
