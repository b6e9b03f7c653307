"""NeMo manifests: JSON lines with ``audio_filepath``, ``text``, ``duration`` and optional ``offset``.

The source is one manifest file or a folder of them (``*.json``, ``*.jsonl``); each file's rows
get its name without the suffix as their split unless ``--split`` says otherwise. A row with an
``offset`` is the segment ``offset`` … ``offset + duration`` of its file. Relative audio paths
start at ``--audio-root`` (default: the manifest's folder). ``speaker`` is kept as the speaker;
every other field as a column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from clasr.data.importers.rows import ImportOptions, SourceRow, audio_name, resolve_audio
from clasr.data.manifest import BAD_SEGMENT, BAD_SYNTAX, EMPTY_TEXT, MISSING_COLUMN, BadRow, DataError, parse_segment

OPTIONS = {"split", "audio_root"}
MANIFEST_SUFFIXES = (".json", ".jsonl")
OWN_FIELDS = ("audio_filepath", "text", "duration", "offset", "speaker")


def read_rows(source: Path, options: ImportOptions) -> Iterator[SourceRow | BadRow]:
    """Every line of the manifest(s), in file order."""
    for manifest in manifest_files(source):
        root = options.audio_root or manifest.parent
        split = options.split or manifest.name.rsplit(".", 1)[0]
        yield from _manifest_rows(manifest, root, split)


def manifest_files(source: Path) -> list[Path]:
    """The manifest itself, or the ``*.json``/``*.jsonl`` files of a folder, sorted."""
    if source.is_file():
        return [source]
    if source.is_dir():
        found = sorted(p for p in source.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
        if found:
            return found
        raise DataError(f"{source}: no *.json or *.jsonl manifest in this folder")
    raise DataError(f"{source}: no such NeMo manifest or folder")


def _manifest_rows(manifest: Path, root: Path, split: str) -> Iterator[SourceRow | BadRow]:
    with manifest.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if raw.strip():
                yield _row(manifest, number, raw, root, split)


def _row(manifest: Path, number: int, raw: bytes, root: Path, split: str) -> SourceRow | BadRow:
    try:
        values = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return BadRow(manifest, number, None, BAD_SYNTAX, f"not a JSON line: {error}")
    if not isinstance(values, dict):
        return BadRow(manifest, number, None, BAD_SYNTAX, f"expected a JSON object, got {type(values).__name__}")
    path, text = values.get("audio_filepath"), values.get("text")
    if not isinstance(path, str) or not path.strip():
        return BadRow(manifest, number, None, MISSING_COLUMN, "no 'audio_filepath' string")
    if not isinstance(text, str):
        return BadRow(manifest, number, path, EMPTY_TEXT if text is None else BAD_SYNTAX, f"'text' is {text!r}")
    offset = duration = None
    if values.get("offset") is not None:
        segment = parse_segment(values["offset"], values.get("duration"))
        if isinstance(segment, str):
            return BadRow(manifest, number, path, BAD_SEGMENT, segment)
        offset, duration = segment
    audio = resolve_audio(path, root)
    speaker = values.get("speaker")
    return SourceRow(
        source=manifest,
        row=number,
        audio_name=audio_name(audio, root),
        audio_path=audio,
        text=text,
        speaker=None if speaker is None else str(speaker),
        split=split,
        offset=offset,
        duration=duration,
        extra={key: value for key, value in values.items() if key not in OWN_FIELDS},
    )
