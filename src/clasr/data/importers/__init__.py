"""Importers: other corpus layouts become clasr's audiofolder (``clasr data import FORMAT SRC DST``).

One module per format reads its layout into ``SourceRow``s; :mod:`.writer` checks them and
writes the folder (audio linked, copied or re-encoded; ``metadata.jsonl``; the bad-row report
``import_report.json``) atomically.

    commonvoice   a Common Voice language folder (``*.tsv`` + ``clips/*.mp3``)
    librispeech   ``SPEAKER/CHAPTER/*.trans.txt`` + FLAC trees (Libri-Adapt-style nesting too)
    nemo          NeMo JSON-lines manifests (``audio_filepath``, ``text``, ``duration``, ``offset``)
    kaldi         Kaldi/ESPnet data directories (``wav.scp``, ``text``, ``utt2spk``, ``segments``)
    parquet       Hugging Face ``datasets`` parquet shards (audio bytes or paths)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from clasr.data.importers import commonvoice, kaldi, librispeech, nemo, parquet
from clasr.data.importers.rows import ImportOptions, SourceRow
from clasr.data.importers.writer import REPORT_FILE, ImportReport, write_audiofolder
from clasr.data.manifest import DataError

FORMATS = {
    "commonvoice": commonvoice,
    "librispeech": librispeech,
    "nemo": nemo,
    "kaldi": kaldi,
    "parquet": parquet,
}

_OPTION_FLAGS = {
    "split": "--split",
    "tsv": "--tsv",
    "audio_root": "--audio-root",
    "text_column": "--text-column",
    "audio_column": "--audio-column",
    "speaker_column": "--speaker-column",
}


def import_dataset(
    format: str,
    source: str | os.PathLike,
    output: str | os.PathLike,
    options: ImportOptions | None = None,
    copy: bool = False,
    flac: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``source`` (a ``format`` layout) as an audiofolder at ``output``.

    DataError for an unknown format, an option the format does not take, a source that is
    not of that layout, or a source with no usable row; bad rows are skipped and reported in
    the returned report and in ``output/import_report.json``.
    """
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    options = options or ImportOptions()
    module = FORMATS[format]
    unused = sorted(options.given() - module.OPTIONS)
    if unused:
        flags = ", ".join(_OPTION_FLAGS[name] for name in unused)
        raise DataError(f"{flags}: not an option of the {format} importer")
    source = Path(source).expanduser().absolute()
    if options.audio_root is not None:
        options = replace(options, audio_root=options.audio_root.expanduser().absolute())
    report = ImportReport(format=format, source=source, output=Path(output).absolute())
    rows = module.read_rows(source, options)
    return write_audiofolder(rows, output, report, copy=copy, flac=flac, progress=progress)


__all__ = ["FORMATS", "REPORT_FILE", "ImportOptions", "ImportReport", "SourceRow", "import_dataset"]
