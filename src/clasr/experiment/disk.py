"""Free disk space, checked before the big writes of a run (checkpoints, the exported model).

A commit writes a complete new ``progress/`` folder beside the old one before swapping them
(:func:`clasr.atomic.atomic_path`), so it needs the full checkpoint size free even when an
older checkpoint of the same size is already there. Running out in the middle of such a
write loses nothing (the temporary folder is removed), but the work of the task that
preceded it would be lost on every rerun: hence the check before training, when the size is
already known, and again right before each write.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

# Room kept beyond the tensors themselves: JSON state, safetensors headers, tokenizer files.
MARGIN_BYTES = 8 * 1024 * 1024


class DiskSpaceError(OSError):
    """Not enough free space for a write; the message says how much is needed."""


def tensor_bytes(tensors) -> int:
    """Bytes of a set of tensors as safetensors stores them (each storage once)."""
    seen, total = set(), 0
    for tensor in tensors:
        key = (tensor.untyped_storage().data_ptr(), tensor.dtype, tuple(tensor.shape))
        if key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
    return total


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's weights on disk (parameters and buffers, tied ones once)."""
    return tensor_bytes(model.state_dict().values())


def require_free_space(folder: str | os.PathLike, needed: int, purpose: str) -> None:
    """Raise :class:`DiskSpaceError` unless ``needed`` bytes (plus a margin) are free where
    ``folder`` lives (its nearest existing parent when it does not exist yet)."""
    place = Path(folder)
    while not place.exists() and place != place.parent:
        place = place.parent
    free = shutil.disk_usage(place).free
    if free < needed + MARGIN_BYTES:
        raise DiskSpaceError(
            f"{folder}: not enough free disk space for {purpose}: needs about "
            f"{_megabytes(needed + MARGIN_BYTES)} free, {_megabytes(free)} free; free some space or use another --output"
        )


def _megabytes(count: int) -> str:
    return f"{count / 2**20:.1f} MB"
