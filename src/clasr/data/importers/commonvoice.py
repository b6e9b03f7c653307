"""Common Voice: a language folder with ``train/dev/test/validated.tsv`` and ``clips/*.mp3``.

Each TSV row gives ``path`` (the clip under ``clips/``), ``sentence`` → text, ``client_id`` →
speaker; every other column is kept as written (``accents`` in recent releases, ``accent`` in
older ones, ``age``, ``gender``, ``locale``, ``up_votes``, ``down_votes``, …), so that any of
them can drive a ``where`` selection. The split of a row is its TSV's name. Common Voice
writes its TSVs unquoted (a sentence may hold a ``"``), so they are read without quoting.
The 48 kHz MP3 clips are decoded by libsndfile (≥ 1.1 reads MP3).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from clasr.data.importers.rows import ImportOptions, SourceRow
from clasr.data.manifest import BAD_SYNTAX, BadRow, DataError

OPTIONS = {"tsv", "split"}
DEFAULT_TSVS = ("train", "dev", "test")
FALLBACK_TSV = "validated"
REQUIRED_COLUMNS = ("path", "sentence")


def read_rows(folder: Path, options: ImportOptions) -> Iterator[SourceRow | BadRow]:
    """Every row of the chosen TSVs (``options.tsv``; default train, dev and test, or
    validated when none of those exist), in file order."""
    for tsv in chosen_tsvs(folder, options.tsv):
        yield from _tsv_rows(folder, tsv, options.split or tsv.stem)


def chosen_tsvs(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """The TSV files to read; DataError naming the ones asked for that do not exist."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such Common Voice folder")
    if names:
        missing = [name for name in names if not (folder / f"{name}.tsv").is_file()]
        if missing:
            raise DataError(f"{folder}: no {', '.join(f'{m}.tsv' for m in missing)}")
        return [folder / f"{name}.tsv" for name in names]
    found = [folder / f"{name}.tsv" for name in DEFAULT_TSVS if (folder / f"{name}.tsv").is_file()]
    if found:
        return found
    if (folder / f"{FALLBACK_TSV}.tsv").is_file():
        return [folder / f"{FALLBACK_TSV}.tsv"]
    raise DataError(f"{folder}: no train.tsv, dev.tsv, test.tsv or validated.tsv (is it a Common Voice language folder?)")


def _tsv_rows(folder: Path, tsv: Path, split: str) -> Iterator[SourceRow | BadRow]:
    with tsv.open(encoding="utf-8-sig", newline="") as lines:
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        missing = [column for column in REQUIRED_COLUMNS if column not in (header or [])]
        if missing:
            raise DataError(f"{tsv}: no column {', '.join(missing)} in the header (columns: {header})")
        for number, record in enumerate(reader, start=2):
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(header):
                yield BadRow(tsv, number, None, BAD_SYNTAX, f"expected {len(header)} fields, got {len(record)}")
                continue
            values = dict(zip(header, record))
            clip = values.pop("path")
            yield SourceRow(
                source=tsv,
                row=number,
                audio_name=f"clips/{clip}",
                audio_path=folder / "clips" / clip,
                text=values.pop("sentence"),
                speaker=values.pop("client_id", None) or None,
                split=split,
                extra=values,
            )
