"""The vocabulary of dataset reading: an :class:`Utterance` (a valid row), a :class:`BadRow`
(an unusable one, with a reason from the closed set ``BAD_ROW_REASONS``) and :class:`DataError`
(a dataset that cannot be used as asked). Importers, screening and the manifest reader share it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clasr.printable import printable

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


def count_by_reason(bad_rows: list[BadRow]) -> dict[str, int]:
    """Number of ``bad_rows`` per reason, for the reasons that occur, in BAD_ROW_REASONS order."""
    counts = Counter(bad.reason for bad in bad_rows)
    return {reason: counts[reason] for reason in BAD_ROW_REASONS if counts[reason]}
