"""Reading a manifest file: ``metadata.jsonl`` or ``metadata.csv`` in a dataset folder, row by
row, as (row number, column values) or a ``bad_syntax`` :class:`~clasr.data.records.BadRow`.

Row numbers are manifest line numbers, where the row starts (1-based): for JSONL the line of
the object, for CSV the line of the record, the header being line 1.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clasr.data.records import BAD_SYNTAX, BadRow, DataError

JSONL_MANIFEST = "metadata.jsonl"
CSV_MANIFEST = "metadata.csv"


def find_manifest(folder: Path) -> tuple[Path, list[str]]:
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
