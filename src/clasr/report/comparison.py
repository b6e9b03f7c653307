"""Strategies side by side: one table of every run's WER matrix rows and its metrics.

The runs share their tasks, general sets and foundation row, which is shown once; each
strategy then contributes one line per task (the model after training through it), its
last line carrying Average WER, BWT, learning and the seconds its rows took.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from clasr.report.results import matrix_columns, matrix_rows, percent

METRIC_COLUMNS = ("Avg WER", "BWT", "learning", "time (s)")


@dataclass(frozen=True)
class RunSummary:
    """What the comparison needs of one run."""

    name: str
    matrix: dict
    metrics: dict
    seconds: float


def comparison_rows(runs: list[RunSummary]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells: the foundation row once, then each run's rows after a task."""
    header = ["strategy", "row", *matrix_columns(runs[0].matrix), *METRIC_COLUMNS]
    blank = [""] * len(METRIC_COLUMNS)
    label, cells = matrix_rows(runs[0].matrix, "wer")[0]
    lines = [["—", label, *(percent(v) for v in cells), *blank]]
    for run in runs:
        rows = matrix_rows(run.matrix, "wer")[1:]
        for index, (label, cells) in enumerate(rows):
            last = index == len(rows) - 1
            lines.append([run.name if index == 0 else "", label, *(percent(v) for v in cells),
                          *(_metric_cells(run) if last else blank)])
    return header, lines


def _metric_cells(run: RunSummary) -> list[str]:
    metrics = run.metrics
    if not metrics.get("complete") or "error" in metrics:
        return ["—", "—", "—", f"{run.seconds:.0f}"]
    return [percent(metrics["average_wer"]), percent(metrics["backward_transfer"]), percent(metrics["learning"]),
            f"{run.seconds:.0f}"]


def comparison_table(runs: list[RunSummary], title: str) -> Table:
    header, lines = comparison_rows(runs)
    table = Table(title=title)
    for index, name in enumerate(header):
        table.add_column(escape(name), justify="left" if index < 2 else "right",
                         style="cyan" if name.startswith("general:") else None)
    for line in lines:
        table.add_row(*(escape(cell) for cell in line), end_section=bool(line[-1]) or line[0] == "—")
    return table


def comparison_markdown(runs: list[RunSummary]) -> str:
    header, lines = comparison_rows(runs)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)
