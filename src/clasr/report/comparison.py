"""Strategies side by side: one table of every run's WER matrix rows and its metrics.

The runs share their tasks, general sets and foundation row, which is shown once; each
strategy then contributes one line per task (the model after training through it), its
last line carrying Average WER, BWT, learning and the seconds its rows took. WER in %
with one decimal, so the table fits an 80-column terminal for three tasks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from clasr.experiment.checkpoint import load_state
from clasr.report.results import matrix_rows, read_results

METRIC_COLUMNS = ("Avg WER", "BWT", "learn", "time")


@dataclass(frozen=True)
class RunSummary:
    """What the comparison needs of one run."""

    name: str
    matrix: dict
    metrics: dict
    seconds: float


def read_run(name: str, folder: Path) -> RunSummary:
    """A finished run named ``name``; its seconds are those of the rows after the foundation row
    (training, the strategy's own work, evaluation), which the runs do not share."""
    matrix, metrics = read_results(folder)
    seconds = sum(row.get("seconds", 0.0) for row in load_state(folder).rows[1:])
    return RunSummary(name, matrix, metrics, seconds)


def run_names(folders: list[Path]) -> list[str]:
    """The folders' names, less a prefix that all of them share up to a "-"
    (``an4_then_arctic-ft``, ``an4_then_arctic-ihr`` → ``ft``, ``ihr``)."""
    names = [Path(folder).name for folder in folders]
    shared = os.path.commonprefix(names) if len(names) > 1 else ""
    cut = shared.rfind("-") + 1
    return [name[cut:] for name in names] if cut and all(name[cut:] for name in names) else names


def _wer(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def comparison_rows(runs: list[RunSummary]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells: the foundation row once, then each run's rows after a task.
    Columns: strategy, the task just trained ("after"), each task's test set, each general
    set, then the metrics."""
    first = runs[0].matrix
    header = ["strategy", "after", *first["tasks"], *first["general"], *METRIC_COLUMNS]
    blank = [""] * len(METRIC_COLUMNS)
    lines = [["—", "(start)", *map(_wer, matrix_rows(first, "wer")[0][1]), *blank]]
    for run in runs:
        rows = matrix_rows(run.matrix, "wer")[1:]
        for index, (_, cells) in enumerate(rows):
            last = index == len(rows) - 1
            lines.append([run.name if index == 0 else "", run.matrix["tasks"][index], *map(_wer, cells),
                          *(_metric_cells(run) if last else blank)])
    return header, lines


def _metric_cells(run: RunSummary) -> list[str]:
    metrics = run.metrics
    time = f"{run.seconds:.0f}s"
    if not metrics.get("complete") or "error" in metrics:
        return ["—", "—", "—", time]
    return [_wer(metrics["average_wer"]), f"{100 * metrics['backward_transfer']:+.1f}",
            _wer(metrics["learning"]), time]


def comparison_table(runs: list[RunSummary], title: str) -> Table:
    """The comparison for a terminal; general-set columns in cyan."""
    header, lines = comparison_rows(runs)
    general = set(runs[0].matrix["general"])
    table = Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False,
                  caption="cyan: held-out general sets; BWT < 0: forgetting")
    for index, name in enumerate(header):
        table.add_column(escape(name), justify="left" if index < 2 else "right",
                         style="cyan" if index >= 2 and name in general else None)
    for line in lines:
        table.add_row(*(escape(cell) for cell in line), end_section=bool(line[-1]) or line[0] == "—")
    return table


def comparison_markdown(runs: list[RunSummary]) -> str:
    header, lines = comparison_rows(runs)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)
