"""Transform a whole audiofolder dataset: every row's audio through a chain, written as FLAC.

The source is a folder with ``metadata.jsonl`` (rows with ``file_name``, ``text`` and any
other columns, as :mod:`clasr.data.manifest` reads them). The output is a new dataset of the
same layout: ``audio/<file_name with .flac>`` (16 kHz, 16-bit FLAC) and ``metadata.jsonl``
with the same rows, ``file_name`` and ``duration`` updated and a ``transform`` column.

Each utterance draws from its own generator, seeded by (seed, CRC-32 of its file_name), so
the output depends neither on row order nor on which rows are selected. The folder appears
whole or not at all (:func:`clasr.atomic.atomic_path`).
"""

from __future__ import annotations

import json
import os
import posixpath
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import soundfile as sf

from clasr.atomic import atomic_path
from clasr.data.audio import TARGET_SAMPLE_RATE, load_audio
from clasr.data.manifest import BadRow, read_manifest_rows
from clasr.transforms.chain import TransformStep, apply_chain, describe, parse_chain

METADATA_FILE = "metadata.jsonl"
AUDIO_FOLDER = "audio"
# Largest 16-bit PCM sample, 32767 / 32768: louder output is scaled down to it, not clipped.
FULL_SCALE = 1 - 2**-15


@dataclass(frozen=True)
class TransformSummary:
    """What :func:`transform_dataset` wrote: rows written, rows left out by ``split``, total
    seconds before and after, rows scaled down to fit 16-bit PCM, and the chain's summary."""

    output_dir: Path
    rows: int
    skipped: int
    seconds_in: float
    seconds_out: float
    rescaled: int
    transform: str


@dataclass(frozen=True)
class _Row:
    """A metadata line: its 1-based number and its columns."""

    line: int
    values: dict[str, Any]


def transform_dataset(
    source_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    chain: Sequence[TransformStep | dict[str, Any]],
    seed: int = 0,
    split: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TransformSummary:
    """Write the rows of ``source_dir`` (those of ``split`` when given), each passed through
    ``chain``, as a new dataset in ``output_dir``; ``progress(done, total)`` after each row.

    ``chain`` is validated with :func:`parse_chain`. Utterance audio is loaded at 16 kHz
    mono, transformed with the generator of :func:`utterance_rng`, and written as PCM_16
    FLAC at 16 kHz; if its peak exceeds full scale it is scaled down to full scale first.
    ``output_dir`` must not be ``source_dir`` and must be absent or an empty folder.
    """
    steps = parse_chain(chain)
    source, output = Path(source_dir).absolute(), Path(output_dir).absolute()
    _check_folders(source, output)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rows = list(_read_metadata(source / METADATA_FILE))
    selected = [row for row in rows if split is None or row.values.get("split") == split]
    if not selected:
        wanted = "no rows" if split is None else f"no rows with split {split!r}"
        raise ValueError(f"{source / METADATA_FILE}: {wanted}")
    outputs = _output_names(source / METADATA_FILE, selected)
    writer = _Writer(source, steps, seed)
    with atomic_path(output) as staging:
        (staging / AUDIO_FOLDER).mkdir(parents=True)
        new_rows = []
        for done, row in enumerate(selected, start=1):
            new_rows.append(writer.write(row, staging, outputs[row.line]))
            if progress is not None:
                progress(done, len(selected))
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in new_rows)
        (staging / METADATA_FILE).write_text(lines, encoding="utf-8")
    return TransformSummary(
        output_dir=output,
        rows=len(selected),
        skipped=len(rows) - len(selected),
        seconds_in=writer.seconds_in,
        seconds_out=writer.seconds_out,
        rescaled=writer.rescaled,
        transform=describe(steps),
    )


def utterance_rng(seed: int, file_name: str) -> np.random.Generator:
    """The generator of one utterance: PCG64 seeded by [seed, CRC-32 of file_name in UTF-8]."""
    return np.random.Generator(np.random.PCG64([seed, zlib.crc32(file_name.encode("utf-8"))]))


def _read_metadata(path: Path) -> Iterator[_Row]:
    """The rows of a metadata.jsonl (read by the manifest reader); a ValueError names the
    file and line of a row that is not valid JSON, not an object, or lacks a ``file_name``
    string or ``text``."""
    if not path.is_file():
        raise ValueError(f"{path}: no such metadata file")
    for item in read_manifest_rows(path):
        if isinstance(item, BadRow):
            raise ValueError(f"{path} line {item.row}: {item.detail}")
        number, values = item
        if not isinstance(values.get("file_name"), str) or "text" not in values:
            raise ValueError(f"{path} line {number}: needs a file_name string and a text")
        yield _Row(number, values)


def _check_folders(source: Path, output: Path) -> None:
    """ValueError when output is the source folder, or exists and is not an empty folder."""
    if output.resolve() == source.resolve():
        raise ValueError(f"output_dir {output} is the source folder; choose a new folder")
    if output.is_file() or (output.is_dir() and any(output.iterdir())):
        raise ValueError(f"output_dir {output} already exists and is not empty")


def _output_names(metadata: Path, rows: list[_Row]) -> dict[int, str]:
    """Output file_name per line: ``audio/<file_name>.flac`` (a leading ``audio/`` is not
    doubled). Repeated file_names share one
    file; a ValueError names a file_name outside the folder, or two that map to one file."""
    names: dict[int, str] = {}
    sources: dict[str, str] = {}
    for row in rows:
        relative = PurePosixPath(posixpath.normpath(row.values["file_name"]))
        if relative.is_absolute() or relative.parts[:1] == ("..",):
            raise ValueError(f"{metadata} line {row.line}: file_name is outside the dataset folder")
        inside = relative.relative_to(AUDIO_FOLDER) if relative.parts[:1] == (AUDIO_FOLDER,) else relative
        name = str(PurePosixPath(AUDIO_FOLDER) / inside.with_suffix(".flac"))
        if sources.setdefault(name, row.values["file_name"]) != row.values["file_name"]:
            raise ValueError(
                f"{metadata} line {row.line}: {row.values['file_name']!r} and "
                f"{sources[name]!r} would both be written to {name}"
            )
        names[row.line] = name
    return names


class _Writer:
    """Transforms and writes one utterance at a time, keeping the totals of the summary."""

    def __init__(self, source: Path, steps: list[TransformStep], seed: int) -> None:
        self.source = source
        self.steps = steps
        self.seed = seed
        self.transform = describe(steps)
        self.seconds_in = 0.0
        self.seconds_out = 0.0
        self.rescaled = 0

    def write(self, row: _Row, staging: Path, name: str) -> dict[str, Any]:
        """Transform the row's audio into ``staging / name``; return the row's new columns."""
        file_name = row.values["file_name"]
        audio = load_audio(self.source / file_name, TARGET_SAMPLE_RATE)
        rng = utterance_rng(self.seed, file_name)
        result = apply_chain(audio, TARGET_SAMPLE_RATE, self.steps, rng)
        peak = float(np.max(np.abs(result)))
        if peak > FULL_SCALE:
            result = result * (FULL_SCALE / peak)
            self.rescaled += 1
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, result, TARGET_SAMPLE_RATE, subtype="PCM_16", format="FLAC")
        self.seconds_in += audio.size / TARGET_SAMPLE_RATE
        self.seconds_out += result.size / TARGET_SAMPLE_RATE
        duration = round(result.size / TARGET_SAMPLE_RATE, 3)
        return {**row.values, "file_name": name, "duration": duration, "transform": self.transform}
