"""The run's commit point: progress state, model weights and strategy state, swapped in together.

After each row of the WER matrix the runner commits ``<output>/progress/``::

    state.json            rows finished so far (scores, timings, strategy facts), the config
                          and the data fingerprints they belong to
    model.safetensors     θ_t after the strategy's after-task step (absent for row 0)
    strategy.safetensors  what the strategy carries to the next task

The folder is replaced atomically (:func:`clasr.atomic.atomic_path`), so a run killed at
any moment resumes from the last finished row with matching weights and state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from clasr.atomic import atomic_path, recover
from clasr.experiment.config import ConfigError

PROGRESS_DIR = "progress"


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


def commit(
    output_dir: Path,
    state: RunState,
    model: torch.nn.Module | None,
    strategy_state: dict[str, torch.Tensor],
) -> None:
    """Write state, model and strategy state as one atomic folder swap."""
    with atomic_path(output_dir / PROGRESS_DIR) as tmp:
        tmp.mkdir()
        (tmp / "state.json").write_text(json.dumps({"rows": state.rows, "config": state.config, "data": state.data}, indent=2) + "\n", encoding="utf-8")
        if model is not None:
            save_model(model, str(tmp / "model.safetensors"))
        if strategy_state:
            save_file({k: v.contiguous() for k, v in strategy_state.items()}, str(tmp / "strategy.safetensors"))


def load_state(output_dir: Path) -> RunState:
    """The committed state (empty when nothing was committed yet)."""
    path = recover(output_dir / PROGRESS_DIR) / "state.json"
    if not path.exists():
        return RunState()
    saved = json.loads(path.read_text(encoding="utf-8"))
    missing = [key for key in ("rows", "config", "data") if key not in saved]
    if missing:
        raise ConfigError(f"{path}: written by an older clasr (no {', '.join(missing)}); it cannot be resumed or reused")
    return RunState(saved["rows"], saved["config"], saved["data"])


def restore(output_dir: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Load the committed weights into ``model`` (if any); return the committed strategy state."""
    folder = recover(output_dir / PROGRESS_DIR)
    if (folder / "model.safetensors").exists():
        load_model(model, str(folder / "model.safetensors"))
    strategy_file = folder / "strategy.safetensors"
    return load_file(str(strategy_file)) if strategy_file.exists() else {}
