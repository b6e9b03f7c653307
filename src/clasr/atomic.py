"""Atomic writes: a file or folder either appears whole or not at all.

Every result that a later step trusts (checkpoints, matrices, converted models) is written
to a temporary sibling first and moved into place with ``os.replace``, which is atomic on
POSIX filesystems, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success move it onto ``target``.

    Works for files and folders. On error the temporary path is removed and ``target``
    is left as it was. A folder cannot be replaced by one rename, so an existing folder
    is first renamed to ``<target>.old`` and removed after the swap; :func:`recover`
    puts it back if a crash fell between the two renames. A file never replaces a folder
    (IsADirectoryError, the folder kept): a user's path that names a folder is a mistake.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp_target = tmp / target.name
    try:
        yield tmp_target
        if target.is_dir() and not target.is_symlink() and not tmp_target.is_dir():
            raise IsADirectoryError(f"{target} is a folder: refusing to replace it with a file")
        backup = _backup_path(target)
        if target.is_dir() and not target.is_symlink():
            os.replace(target, backup)
        os.replace(tmp_target, target)
        shutil.rmtree(backup, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _backup_path(target: Path) -> Path:
    return target.with_name(target.name + ".old")


def recover(target: str | os.PathLike) -> Path:
    """Finish an interrupted folder swap of :func:`atomic_path`; returns ``target``."""
    target = Path(target)
    backup = _backup_path(target)
    if backup.exists():
        if target.exists():
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(backup, target)
    return target


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders that interrupted :func:`atomic_path` writes left anywhere
    under ``folder`` (``.<name>.<random>.tmp``); returns what was removed.

    Only safe while no other process writes there (a run holds its folder's lock)."""
    orphans = sorted(
        Path(root) / name
        for root, dirs, _ in os.walk(folder)
        for name in dirs
        if name.startswith(".") and name.endswith(".tmp")
    )
    for orphan in orphans:
        shutil.rmtree(orphan, ignore_errors=True)
    return orphans


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    write_text(target, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
