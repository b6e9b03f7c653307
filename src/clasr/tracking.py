"""Experiment tracking through Accelerate's trackers (TensorBoard, MLflow, Weights & Biases, …).

The ``tracking`` config section names the trackers (``log_with``; ``all``: every one that is
installed). TensorBoard, the default, writes event files under ``OUTPUT/tracking/`` and
needs no account or network (``pip install 'clasr[tracking]'``). One tracker run per clasr
run, the config as its hyper-parameters (flattened to ``train.learning_rate``-style keys), and:

- per optimizer step (step = optimizer steps since the run's first task): ``train/loss``
  (mean over the step's batches and the processes), ``train/learning_rate``,
  ``train/utterances_per_second`` (all processes together, since the task started);
- per row i of the WER matrix (step = i): every evaluated set's rates
  (``row/<set>/wer``, ``…/cer``, ``…/error_rate``) and the continual metrics of the rows so far
  (``metrics/average_wer``, ``metrics/backward_transfer``, …).

Only the main process writes; with several processes the step figures are first reduced.
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.tracking import get_available_trackers
from accelerate.utils import LoggerType
from pydantic import BaseModel, ConfigDict, Field, field_validator

RATES = ("wer", "cer", "error_rate")


class TrackingConfig(BaseModel):
    """Which experiment trackers receive a run's figures."""

    model_config = ConfigDict(extra="forbid")

    log_with: list[str] = Field(
        ["tensorboard"], min_length=1, description="trackers: tensorboard (offline, OUTPUT/tracking), mlflow, wandb, "
        "… or all (every installed one)",
    )
    project: str | None = Field(None, description="the tracker's project/run name; default: the config's name")

    @field_validator("log_with")
    @classmethod
    def _installed(cls, names: list[str]) -> list[str]:
        installed = {str(tracker) for tracker in get_available_trackers()}
        unknown = [n for n in names if n not in LoggerType.list()]
        if unknown:
            raise ValueError(f"unknown tracker(s) {unknown}; choose from {LoggerType.list()}")
        missing = [n for n in names if n != "all" and n not in installed]
        if missing or ("all" in names and not installed):
            raise ValueError(
                f"tracker(s) {missing or names} not installed (installed: {sorted(installed) or 'none'}); "
                "TensorBoard: pip install 'clasr[tracking]'"
            )
        return names


def accelerator_options(tracking: TrackingConfig | None, output_dir: Path) -> dict:
    """Keyword arguments of :class:`Accelerator` for ``tracking`` (none when it is off)."""
    if tracking is None:
        return {}
    return {"log_with": tracking.log_with, "project_dir": str(Path(output_dir) / "tracking")}


def start_run(accelerator: Accelerator, tracking: TrackingConfig | None, name: str, plain_config: dict) -> None:
    """Open the tracker run of one clasr run, with its config as hyper-parameters."""
    if tracking is not None:
        accelerator.init_trackers(tracking.project or name, config=flat_config(plain_config))


def flat_config(plain: dict, prefix: str = "") -> dict:
    """``{"train": {"learning_rate": 1e-5}}`` → ``{"train.learning_rate": 1e-5}``; values that are
    not numbers, strings or booleans (lists, None) become strings, as TensorBoard's hparams need."""
    flat = {}
    for key, value in plain.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flat_config(value, f"{name}.")
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def end_run(accelerator: Accelerator) -> None:
    """Close the tracker run. (Not ``Accelerator.end_training``, which also ends the process
    group that the next run of a sweep of seeds still needs.)"""
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers = []


def log_step(accelerator: Accelerator, step: int, loss: float, learning_rate: float, utterances: int, seconds: float) -> None:
    """One optimizer step's figures; ``utterances``: this process's since the task started.
    Called on every process (the reduction is collective), written by the main one."""
    if not accelerator.log_with:
        return
    totals = torch.tensor([loss, float(utterances)], dtype=torch.float64, device=accelerator.device)
    if accelerator.num_processes > 1:
        totals = accelerator.reduce(totals, reduction="sum")
    accelerator.log(
        {
            "train/loss": float(totals[0]) / accelerator.num_processes,
            "train/learning_rate": learning_rate,
            "train/utterances_per_second": float(totals[1]) / max(seconds, 1e-9),
        },
        step=step,
    )


def log_row(accelerator: Accelerator, row: int, cells: dict[str, dict], metrics: dict) -> None:
    """Row ``row`` of the WER matrix: each set's rates, and the numeric continual metrics so far."""
    values = {f"row/{key}/{rate}": cell[rate] for key, cell in cells.items() for rate in RATES if rate in cell}
    values |= {f"metrics/{name}": value for name, value in _numbers(metrics).items()}
    accelerator.log(values, step=row)


def _numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of nested metrics (intervals and definitions left out)."""
    numbers = {}
    for key, value in tree.items():
        if key in ("ci95", "definitions"):
            continue
        if isinstance(value, dict):
            numbers |= _numbers(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers[f"{prefix}{key}"] = value
    return numbers
