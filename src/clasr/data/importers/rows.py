"""What every importer yields: one ``SourceRow`` per utterance of the source layout (or a
``BadRow`` where the layout itself is broken), and the options that importers understand."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any


@dataclass(frozen=True)
class SourceRow:
    """One utterance as the source describes it, before its audio is checked.

    ``source``/``row``: the file and line (or record number) that describe it, for the bad-row
    report. The audio is a file (``audio_path``) or encoded bytes (``audio_bytes``, e.g. a
    parquet cell); ``audio_name`` is where it goes under the output's ``audio/`` folder.
    ``offset``/``duration`` (seconds) make it a segment of the file; ``duration`` None with an
    offset means to the end of the file. ``extra`` holds the source's other columns.
    """

    source: Path
    row: int
    audio_name: str
    text: str
    audio_path: Path | None = None
    audio_bytes: bytes | None = None
    speaker: str | None = None
    split: str | None = None
    offset: float | None = None
    duration: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportOptions:
    """Options of ``clasr data import``; each format accepts those in its ``OPTIONS``.

    ``split``: the split of every row (default: from the layout); ``tsv``: the Common Voice
    TSV files to read; ``audio_root``: where relative audio paths of NeMo, Kaldi and parquet
    sources start (default: the manifest's folder); ``text_column``, ``audio_column``,
    ``speaker_column``: parquet column names.
    """

    split: str | None = None
    tsv: tuple[str, ...] = ()
    audio_root: Path | None = None
    text_column: str = "text"
    audio_column: str = "audio"
    speaker_column: str | None = None

    def given(self) -> set[str]:
        """Names of the options set to something other than their default."""
        default = ImportOptions()
        return {name for name in self.__dataclass_fields__ if getattr(self, name) != getattr(default, name)}


def audio_name(path: Path, root: Path) -> str:
    """Where a source audio file goes under ``audio/``: its path relative to ``root`` when it
    lies inside it, else its absolute path without the leading slash."""
    path = Path(path)
    try:
        return PurePosixPath(*path.relative_to(root).parts).as_posix()
    except ValueError:
        return PurePosixPath(*path.parts[1:]).as_posix()


def resolve_audio(value: str, root: Path) -> Path:
    """An audio path of a manifest, normalised: absolute as written, or relative to ``root``."""
    path = Path(value).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else root / path))
