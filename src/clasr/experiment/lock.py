"""One run per results folder: an exclusive lock held for the whole run.

Two ``clasr run`` on one folder would interleave their writes (the config of one, the
matrix of the other). ``run_lock`` takes an exclusive ``flock`` on ``<folder>/.clasr.lock``
and writes the holder (process id, host, start time, command line) into it; a second run
is refused with those details. The kernel releases a ``flock`` when its process dies, so the
lock of a killed run (``kill -9``, power loss) is stale by construction and the next run
takes it over; the holder details it left (a clean end empties the file) are reported.

Taking the lock is also the run's first write to the folder, so an output path that is a
file or cannot be written is refused here, with its reason, before any work starts.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_FILE = ".clasr.lock"


class RunLockedError(RuntimeError):
    """Another live process is running on the same results folder."""


class OutputFolderError(RuntimeError):
    """The results folder cannot be created or written (a file of that name, no permission, ...)."""


@contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[dict]:
    """Hold the exclusive lock of ``folder`` (created if missing) for the ``with`` body;
    yields the holder details of a stale lock that was taken over ({} if none)."""
    folder = Path(folder)
    handle = _open_lock_file(folder)
    held = False
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(_held_message(folder, _read_holder(handle))) from None
        held = True
        stale = _read_holder(handle)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(_holder()) + "\n")
        handle.flush()
        yield stale
    finally:
        if held:  # an end without a crash leaves no holder: details found later mean a killed run
            handle.truncate(0)
        handle.close()  # closing releases the flock


def _open_lock_file(folder: Path):
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{folder}: the output path is a file, not a folder; choose another --output")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return open(folder / LOCK_FILE, "a+", encoding="utf-8")
    except OSError as error:
        reason = "no permission to write there" if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else error.strerror
        raise OutputFolderError(f"{folder}: cannot write the results folder ({reason}); choose another --output") from None


def _holder() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
    }


def _read_holder(handle) -> dict:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _held_message(folder: Path, holder: dict) -> str:
    who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
    if holder.get("command"):
        who += f": {holder['command']}"
    return f"{folder} is in use by another clasr run ({who}); wait for it to finish or stop it, or use another --output"
