"""Strategies side by side: one table of every run's WER matrix rows and its metrics.

The runs share their tasks, general sets and foundation row, which is shown once; each
strategy then contributes one line per task (the model after training through it), its
last line carrying Average WER, BWT, learning, FWT and each general set's change from the
foundation (``Δ<set>``) — each with its 95 % interval over utterances, and for a sweep of
seeds the mean ± its standard deviation over seeds — and the seconds its rows took (from
each run's ``timings.json``: reports read result files, never checkpoints). WER in % with
one decimal — or, when some set is not scored by WER, each set's own error rate, its metric
in the column header.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from clasr.report.results import (
    column_label,
    matrix_columns,
    matrix_rows,
    rate_name,
    read_results,
    scalar_values,
    seed_folders,
    table_rate,
)

METRIC_COLUMNS = ("Avg WER", "BWT", "learn", "FWT")
_METRIC_KEYS = ("average_wer", "backward_transfer", "learning", "forward_transfer")


@dataclass(frozen=True)
class RunSummary:
    """What the comparison needs of one run."""

    name: str
    matrix: dict
    metrics: dict
    seconds: float | None  # None: some run folder has no timings of its rows


def read_run(name: str, folder: Path) -> RunSummary:
    """A run (or sweep of seeds) named ``name``; its seconds are those of the rows after the
    foundation row (training, the strategy's own work, evaluation), which the runs do not
    share, summed over a sweep's seeds."""
    matrix, metrics = read_results(folder)
    seconds = [task_seconds(seed) for seed in seed_folders(folder)]
    return RunSummary(name, matrix, metrics, None if None in seconds else sum(seconds))


def task_seconds(folder: Path) -> float | None:
    """Σ of the row seconds after the foundation row in ``folder/timings.json``; None when the
    file, or a row's ``seconds``, is missing. ValueError naming the file when it is damaged."""
    path = Path(folder) / "timings.json"
    if not path.exists():
        return None
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"][1:]
        seconds = [row.get("seconds") for row in rows]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: damaged timings ({error!r})") from None
    return None if None in seconds else float(sum(seconds))


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
    rate = table_rate(first, "wer")
    columns = [*first["tasks"], *first["general"]] if rate == "wer" else [
        column_label(first, column, rate) for column in matrix_columns(first)  # "general:<name> [metric]"
    ]
    header = ["strategy", "after", *columns, *METRIC_COLUMNS, *(f"Δ{g}" for g in first["general"]), "time"]
    blank = [""] * (len(header) - 2 - len(columns))
    lines = [["—", "(start)", *map(_wer, matrix_rows(first, rate)[0][1]), *blank]]
    for run in runs:
        rows = matrix_rows(run.matrix, rate)[1:]
        for index, (_, cells) in enumerate(rows):
            last = index == len(rows) - 1
            lines.append([run.name if index == 0 else "", run.matrix["tasks"][index], *map(_wer, cells),
                          *(_metric_cells(run) if last else blank)])
    return header, lines


def _metric_cells(run: RunSummary) -> list[str]:
    """The metrics, then each general set's change (``general/<name>``), then the time."""
    metrics = run.metrics
    keys = [*_METRIC_KEYS, *(f"general/{g}" for g in run.matrix["general"])]
    time = "—" if run.seconds is None else f"{run.seconds:.0f}s"
    if not metrics.get("complete") or "error" in metrics:
        return ["—"] * len(keys) + [time]
    return [metric_cell(metrics, key) for key in keys] + [time]


def metric_cell(metrics: dict, key: str) -> str:
    """``value [low, high]`` (signed for the transfers and the general changes),
    ``mean±std [low, high]`` for a sweep."""
    value = scalar_values(metrics).get(key)
    if value is None:
        return "—"
    text = f"{100 * value:+.1f}" if key.endswith("transfer") or key.startswith("general/") else _wer(value)
    seeds = metrics.get("seeds")
    if seeds and seeds[key]["std"] is not None:
        text += f"±{100 * seeds[key]['std']:.1f}"
    ci = (metrics.get("ci95") or {}).get(key)
    return text + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def comparison_table(runs: list[RunSummary], title: str) -> Table:
    """The comparison for a terminal; general-set columns in cyan."""
    header, lines = comparison_rows(runs)
    first = runs[0].matrix
    general = range(2 + len(first["tasks"]), 2 + len(first["tasks"]) + len(first["general"]))
    unit = rate_name(runs[0].metrics.get("set_metrics", {}))
    table = Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False,
                  caption=f"{unit} in %; cyan: held-out general sets; BWT < 0: forgetting; Δ<set>: a general "
                  "set's change from the foundation (> 0: ability lost); [95 % interval over utterances]")
    for index, name in enumerate(header):
        table.add_column(escape(name), justify="left" if index < 2 else "right",
                         style="cyan" if index in general else None)
    for line in lines:
        table.add_row(*(escape(cell) for cell in line), end_section=bool(line[-1]) or line[0] == "—")
    return table


def comparison_markdown(runs: list[RunSummary]) -> str:
    header, lines = comparison_rows(runs)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)
