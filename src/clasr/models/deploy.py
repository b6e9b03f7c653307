"""Deploy a clasr model to CTranslate2 (what faster-whisper runs on).

``export_ct2(model_dir, out_dir)`` loads a transformers Whisper folder — a run's ``model/`` —
with its own encoder window and writes it as a CTranslate2 Whisper folder with
:func:`clasr.models.ct2_export.export_ct2_whisper` (model.bin, config.json, vocabulary.txt,
tokenizer.json), plus the folder's ``preprocessor_config.json`` so faster-whisper computes the
same log-mel features (mel bins, and the window as ``chunk_length``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from clasr.atomic import atomic_path
from clasr.models.ct2_export import ct2_whisper_files
from clasr.models.errors import ModelError
from clasr.models.whisper import load_whisper

FEATURE_CONFIG = "preprocessor_config.json"


def export_ct2(model_dir: str | Path, out_dir: str | Path, weight_dtype: str = "float32") -> Path:
    """Write the Whisper checkpoint ``model_dir`` as a CTranslate2 folder ``out_dir`` (whole or not at all)."""
    model_dir = Path(model_dir)
    if not (model_dir / FEATURE_CONFIG).is_file():
        raise ModelError(f"{model_dir}: no {FEATURE_CONFIG}; not a saved Whisper model folder")
    bundle = load_whisper(model_dir, window_seconds=None)
    files = ct2_whisper_files(bundle.model, bundle.tokenizer, weight_dtype)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name, content in files.items():
            (tmp / name).write_bytes(content)
        shutil.copyfile(model_dir / FEATURE_CONFIG, tmp / FEATURE_CONFIG)
    return Path(out_dir)
