"""PNG plots of WER matrices (matplotlib, headless): a heatmap per run, and each set's WER
across the task sequence with one line per strategy."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

from clasr.atomic import atomic_path  # noqa: E402
from clasr.report.results import matrix_columns, matrix_rows  # noqa: E402


def _save(figure, target: Path) -> None:
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)


def wer_heatmap(matrix: dict, title: str, target: Path) -> None:
    """Rows: foundation then after each task; columns: test sets then general sets; WER % in
    each cell. The diagonal (a task right after training on it) is outlined."""
    rows = matrix_rows(matrix, "wer")
    values = [[math.nan if v is None else 100 * v for v in cells] for _, cells in rows]
    columns = matrix_columns(matrix)
    figure, axes = plt.subplots(figsize=(1.3 * len(columns) + 2.5, 0.55 * len(rows) + 1.6))
    image = axes.imshow(values, cmap="magma_r", vmin=0, vmax=max(5.0, max(max(r) for r in values)), aspect="auto")
    axes.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    axes.set_yticks(range(len(rows)), [label for label, _ in rows])
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            axes.text(j, i, "—" if math.isnan(value) else f"{value:.1f}", ha="center", va="center",
                      color="white" if value > 0.6 * image.norm.vmax else "black", fontsize=9)
    for t in range(len(matrix["tasks"])):
        axes.add_patch(plt.Rectangle((t - 0.5, t + 0.5), 1, 1, fill=False, edgecolor="tab:cyan", linewidth=2))
    figure.colorbar(image, ax=axes, label="WER %")
    axes.set_title(title)
    _save(figure, target)


def wer_trajectories(matrices: dict[str, dict], target: Path) -> None:
    """One panel per evaluated set: its WER after each step of the sequence, a line per
    strategy (``matrices`` maps a strategy name to its matrix; all share sets and rows).
    Each panel is scaled to the rows after the foundation row (see :func:`_zoom_past_foundation`)."""
    first = next(iter(matrices.values()))
    columns = matrix_columns(first)
    steps = first["row_labels"]
    width = min(len(columns), 3)
    height = math.ceil(len(columns) / width)
    figure, panels = plt.subplots(height, width, figsize=(4.2 * width, 3.2 * height), squeeze=False)
    for index, column in enumerate(columns):
        axes = panels[index // width][index % width]
        curves = {name: _column_percent(matrix, index) for name, matrix in matrices.items()}
        for name, wer in curves.items():
            axes.plot(range(len(wer)), wer, marker="o", label=name)
        if index < len(first["tasks"]):
            axes.axvline(index + 1, color="grey", linestyle=":", linewidth=1)  # trained on this task here
        axes.set_title(column)
        axes.set_xticks(range(len(steps)), [_short(s) for s in steps], rotation=30, ha="right", fontsize=8)
        axes.set_ylabel("WER %")
        _zoom_past_foundation(axes, curves)
        axes.grid(alpha=0.3)
    for index in range(len(columns), width * height):
        panels[index // width][index % width].axis("off")
    panels[0][0].legend(fontsize=8)
    figure.suptitle("WER of each set along the task sequence (dotted: trained on that task)")
    figure.tight_layout()
    _save(figure, target)


def _column_percent(matrix: dict, index: int) -> list[float]:
    return [math.nan if cells[index] is None else 100 * cells[index] for _, cells in matrix_rows(matrix, "wer")]


def _zoom_past_foundation(axes, curves: dict[str, list[float]]) -> None:
    """Scale the y axis to the rows after the foundation (where forgetting shows), at least
    0–5 %, so a 0.2-point wobble does not fill the panel; a foundation WER above the range is
    written at the top instead of stretching the axis."""
    later = [v for wer in curves.values() for v in wer[1:] if not math.isnan(v)]
    top = max(5.0, 1.25 * max(later, default=0.0))
    foundation = next(iter(curves.values()))[0]
    if foundation > top:
        axes.annotate(f"foundation {foundation:.1f} ↑", xy=(0, top), xytext=(0.02, 0.92),
                      textcoords="axes fraction", fontsize=8, color="dimgrey")
    axes.set_ylim(0, top)


def _short(label: str) -> str:
    return label.replace("after ", "+")
