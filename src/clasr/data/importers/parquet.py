"""Hugging Face ``datasets`` parquet shards, read with pyarrow (the ``datasets`` package is not needed).

The source is one ``.parquet`` file or a folder searched recursively for them. The audio
column (``--audio-column``, default ``audio``) holds what ``datasets.Audio`` stores — a struct of
``bytes`` (the encoded file) and ``path`` — or a plain path or bytes. Bytes are written out as
files under ``audio/<shard>/``; a path without bytes is resolved against ``--audio-root``
(default: the shard's folder). The transcript is ``--text-column`` (default ``text``), the
speaker ``--speaker-column`` (default ``speaker`` when present), the split ``--split`` or the
shard's name as ``datasets`` writes it (``train-00000-of-00004.parquet`` → ``train``). Other
columns are kept when JSON can hold them (bytes columns are left out). Rows are read a batch
at a time, so a shard's audio is never all in memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from clasr.data.importers.rows import ImportOptions, SourceRow, audio_name, resolve_audio
from clasr.data.manifest import BAD_SYNTAX, EMPTY_TEXT, MISSING_FILE, BadRow, DataError

OPTIONS = {"split", "audio_root", "text_column", "audio_column", "speaker_column"}
BATCH_ROWS = 64
_SHARD_NAME = re.compile(r"^(?P<split>.+?)-\d+-of-\d+$")


def read_rows(source: Path, options: ImportOptions) -> Iterator[SourceRow | BadRow]:
    """Every record of every shard, in file order."""
    import pyarrow.parquet as pq

    for shard in shard_files(source):
        table = pq.ParquetFile(shard)
        columns = table.schema_arrow.names
        _check_columns(shard, columns, options)
        speaker = options.speaker_column or ("speaker" if "speaker" in columns else None)
        reader = _ShardReader(shard, options, speaker, options.audio_root or shard.parent)
        number = 0
        for batch in table.iter_batches(batch_size=BATCH_ROWS):
            for record in batch.to_pylist():
                number += 1
                yield reader.row(number, record)


def shard_files(source: Path) -> list[Path]:
    """The file itself, or every ``*.parquet`` below a folder, sorted."""
    if source.is_file():
        return [source]
    found = sorted(source.rglob("*.parquet")) if source.is_dir() else []
    if not found:
        raise DataError(f"{source}: no .parquet file (a shard, or a folder holding shards)")
    return found


def shard_split(shard: Path) -> str:
    """The split in a ``datasets`` shard name (``train-00000-of-00004`` → ``train``), else the name."""
    stem = shard.name.removesuffix(".parquet")
    match = _SHARD_NAME.match(stem)
    return match["split"] if match else stem


def _check_columns(shard: Path, columns: list[str], options: ImportOptions) -> None:
    for option, column in (
        ("--text-column", options.text_column),
        ("--audio-column", options.audio_column),
        ("--speaker-column", options.speaker_column),
    ):
        if column is not None and column not in columns:
            raise DataError(f"{shard}: no column {column!r} ({option}); the columns are: {', '.join(columns)}")


class _ShardReader:
    """Turns the records of one shard into source rows."""

    def __init__(self, shard: Path, options: ImportOptions, speaker: str | None, root: Path) -> None:
        self.shard = shard
        self.options = options
        self.speaker = speaker
        self.root = root
        self.split = options.split or shard_split(shard)
        own = {options.text_column, options.audio_column, speaker}
        self.kept = lambda column: column not in own

    def row(self, number: int, record: dict[str, Any]) -> SourceRow | BadRow:
        text = record[self.options.text_column]
        audio = self._audio(number, record[self.options.audio_column])
        if isinstance(audio, BadRow):
            return audio
        if not isinstance(text, str):
            reason = EMPTY_TEXT if text is None else BAD_SYNTAX
            return BadRow(self.shard, number, audio["audio_name"], reason, f"the text cell is {text!r}")
        speaker = record.get(self.speaker) if self.speaker else None
        return SourceRow(
            source=self.shard,
            row=number,
            text=text,
            speaker=None if speaker is None else str(speaker),
            split=self.split,
            extra={k: v for k, v in record.items() if self.kept(k) and _json_value(v)},
            **audio,
        )

    def _audio(self, number: int, cell: Any) -> dict[str, Any] | BadRow:
        """audio_name and audio_bytes or audio_path of a row's audio cell."""
        data, path = (cell.get("bytes"), cell.get("path")) if isinstance(cell, dict) else (None, None)
        if isinstance(cell, (bytes, str)):
            data, path = (cell, None) if isinstance(cell, bytes) else (None, cell)
        if data:
            name = PurePosixPath(path or "audio.wav").name
            return {"audio_name": f"{self.shard.stem}/{number:06d}_{name}", "audio_bytes": data}
        if path:
            file = resolve_audio(path, self.root)
            return {"audio_name": audio_name(file, self.root), "audio_path": file}
        return BadRow(self.shard, number, None, MISSING_FILE, f"the {self.options.audio_column!r} cell holds no audio")


def _json_value(value: Any) -> bool:
    """Whether a cell can go into metadata.jsonl as it is."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
