"""Terminal tables of a results directory: the WER matrix and the continual metrics."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from clasr.metrics.continual import METRIC_DEFINITIONS
from clasr.report.results import matrix_rows, percent


def matrix_table(matrix: dict, rate: str = "wer") -> Table:
    """Rows: foundation then after each task; columns: tasks' test sets, then general sets (in %)."""
    table = Table(title=f"{rate.upper()} matrix (%) — row i: after training through task i")
    table.add_column("row")
    for task in matrix["tasks"]:
        table.add_column(escape(task), justify="right")
    for name in matrix["general"]:
        table.add_column(escape(f"general:{name}"), justify="right", style="cyan")
    for label, cells in matrix_rows(matrix, rate, views=True):
        table.add_row(escape(label), *(percent(v) for v in cells))
    return table


def metrics_table(metrics: dict) -> Table:
    """Average WER, BWT, forgetting, learning and general-set change, with their definitions."""
    table = Table(title="Continual metrics (WER points, %)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("definition", overflow="fold")
    if not metrics.get("complete"):
        table.add_row("(incomplete)", f"{metrics['rows_done']}/{metrics['rows_expected']} rows", "run not finished")
        return table
    if "error" in metrics:
        table.add_row("(not computable)", "—", escape(metrics["error"]))
        return table
    for key in ("average_wer", "backward_transfer", "forgetting", "learning"):
        table.add_row(key, percent(metrics[key]), escape(METRIC_DEFINITIONS[key]))
    for name, change in (metrics.get("general") or {}).items():
        values = f"{percent(change['initial'])} → {percent(change['final'])} ({100 * change['change']:+.2f})"
        table.add_row(escape(f"general:{name}"), values, escape(METRIC_DEFINITIONS["general"]))
    return table
