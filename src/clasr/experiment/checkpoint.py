"""The run's commit point: progress state, model weights and strategy state, swapped in together.

After each row of the WER matrix the runner commits ``<output>/progress/``::

    state.json            rows finished so far (scores, timings, strategy facts), the config
                          and the data fingerprints they belong to
    model.safetensors     θ_t after the strategy's after-task step (absent for row 0)
    strategy.safetensors  what the strategy carries to the next task
    checksums.json        SHA-256 and size of each file above, taken at the commit

The folder is replaced atomically (:func:`clasr.atomic.atomic_path`), so a run killed at
any moment resumes from the last finished row with matching weights and state. Resuming
verifies every file against ``checksums.json`` and refuses a missing, truncated or altered
one with :class:`CheckpointError`, instead of training on from the wrong weights. Weights
that are not finite are never committed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from clasr.atomic import atomic_path, recover
from clasr.experiment.config import ConfigError
from clasr.experiment.disk import model_bytes, require_free_space, tensor_bytes
from clasr.progress import console

PROGRESS_DIR = "progress"
STATE_FILE = "state.json"
MODEL_FILE = "model.safetensors"
STRATEGY_FILE = "strategy.safetensors"
CHECKSUMS_FILE = "checksums.json"


class CheckpointError(ValueError):
    """A committed checkpoint that cannot be trusted (missing, damaged or altered file)."""


@dataclass
class RunState:
    """Rows of the matrix finished so far (row 0 = the foundation model), the config they
    were run with, and the fingerprints of the sets they were scored on
    (see :meth:`ExperimentSets.fingerprints`)."""

    rows: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    data: dict[str, dict] = field(default_factory=dict)

    @property
    def rows_done(self) -> int:
        return len(self.rows)


def commit_bytes(model: torch.nn.Module | None, strategy_state: dict[str, torch.Tensor]) -> int:
    """Disk space a commit of ``model`` and ``strategy_state`` takes (without the JSON state)."""
    return (model_bytes(model) if model is not None else 0) + tensor_bytes(strategy_state.values())


def commit(
    output_dir: Path,
    state: RunState,
    model: torch.nn.Module | None,
    strategy_state: dict[str, torch.Tensor],
) -> None:
    """Write state, model and strategy state, with their checksums, as one atomic folder swap.

    Refused (nothing written) when the weights or the strategy state hold NaN or infinite
    values, or when the disk lacks the space for the new folder."""
    label = state.rows[-1]["label"] if state.rows else "the run"
    _require_finite(model, strategy_state, label)
    text = json.dumps({"rows": state.rows, "config": state.config, "data": state.data}, indent=2) + "\n"
    require_free_space(output_dir, commit_bytes(model, strategy_state) + len(text), f"the checkpoint of {label!r}")
    with atomic_path(output_dir / PROGRESS_DIR) as tmp:
        tmp.mkdir()
        (tmp / STATE_FILE).write_text(text, encoding="utf-8")
        if model is not None:
            save_model(model, str(tmp / MODEL_FILE))
        if strategy_state:
            save_file({k: v.contiguous() for k, v in strategy_state.items()}, str(tmp / STRATEGY_FILE))
        files = sorted(p.name for p in tmp.iterdir())
        checksums = {name: _fingerprint(tmp / name) for name in files}
        (tmp / CHECKSUMS_FILE).write_text(json.dumps(checksums, indent=2) + "\n", encoding="utf-8")


def load_state(output_dir: Path) -> RunState:
    """The committed state (empty when nothing was committed yet), verified against its checksum."""
    folder = recover(Path(output_dir) / PROGRESS_DIR)
    if not folder.exists():
        return RunState()
    checksums = _checksums(folder)
    if checksums is not None:
        _verify(folder, STATE_FILE, checksums)
    path = folder / STATE_FILE
    if not path.is_file():
        raise CheckpointError(_damaged(folder, f"{STATE_FILE} is missing"))
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(_damaged(folder, f"{STATE_FILE} is not valid JSON ({error})")) from None
    missing = [key for key in ("rows", "config", "data") if key not in saved]
    if missing:
        raise ConfigError(f"{path}: written by an older clasr (no {', '.join(missing)}); it cannot be resumed or reused")
    if checksums is None:
        console.print(f"[yellow]{folder}: committed before clasr recorded checksums; its files are not verified[/]")
    return RunState(saved["rows"], saved["config"], saved["data"])


def restore(output_dir: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Load the committed weights into ``model``; return the committed strategy state.

    Every file is verified first: a weight file that is missing (a row after the foundation
    was committed, so there must be one), truncated or altered raises :class:`CheckpointError`.
    """
    folder = recover(Path(output_dir) / PROGRESS_DIR)
    checksums = _checksums(folder)
    if checksums is not None:
        for name in checksums:
            _verify(folder, name, checksums)
    elif load_state(output_dir).rows_done > 1 and not (folder / MODEL_FILE).exists():
        raise CheckpointError(_damaged(folder, f"{MODEL_FILE} is missing"))
    try:
        if (folder / MODEL_FILE).exists():
            load_model(model, str(folder / MODEL_FILE))
        strategy_file = folder / STRATEGY_FILE
        return load_file(str(strategy_file)) if strategy_file.exists() else {}
    except Exception as error:  # safetensors' own errors: header, sizes, names that do not match the model
        raise CheckpointError(_damaged(folder, f"cannot load the committed tensors ({error})")) from None


def _require_finite(model: torch.nn.Module | None, strategy_state: dict[str, torch.Tensor], label: str) -> None:
    tensors = {**(dict(model.state_dict()) if model is not None else {}), **strategy_state}
    bad = {name: int((~torch.isfinite(t)).sum()) for name, t in tensors.items() if t.is_floating_point()}
    bad = {name: count for name, count in bad.items() if count}
    if bad:
        first = next(iter(bad))
        raise CheckpointError(
            f"{label}: {sum(bad.values())} weight(s) in {len(bad)} tensor(s) are NaN or infinite (first: {first}); "
            "nothing was committed, the last good state is kept"
        )


def _fingerprint(path: Path) -> dict:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def _checksums(folder: Path) -> dict | None:
    """The recorded checksums; None for a folder committed before they were recorded."""
    path = folder / CHECKSUMS_FILE
    if not path.exists():
        return None
    try:
        checksums = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(_damaged(folder, f"{CHECKSUMS_FILE} is not valid JSON ({error})")) from None
    if not isinstance(checksums, dict) or STATE_FILE not in checksums:
        raise CheckpointError(_damaged(folder, f"{CHECKSUMS_FILE} does not list {STATE_FILE}"))
    return checksums


def _verify(folder: Path, name: str, checksums: dict) -> None:
    path = folder / name
    if not path.is_file():
        raise CheckpointError(_damaged(folder, f"{name} is missing (it was committed)"))
    expected = checksums[name]
    actual = _fingerprint(path)
    if actual["bytes"] != expected.get("bytes"):
        raise CheckpointError(
            _damaged(folder, f"{name} has {actual['bytes']} bytes, {expected.get('bytes')} were committed (truncated or altered)")
        )
    if actual["sha256"] != expected.get("sha256"):
        raise CheckpointError(_damaged(folder, f"{name} was altered since it was committed (SHA-256 differs)"))


def _damaged(folder: Path, problem: str) -> str:
    return (
        f"{folder}: {problem}; the run cannot resume from it. Restore the file, or delete "
        f"{folder.parent} to start the run over"
    )
