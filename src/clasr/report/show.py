"""Terminal tables of a results directory: the WER matrix and the continual metrics."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from clasr.metrics.continual import METRIC_DEFINITIONS
from clasr.report.results import HEADLINE, column_label, interval, matrix_rows, percent, rate_name, scalar_values, table_rate


def matrix_table(matrix: dict, rate: str = "wer") -> Table:
    """Rows: foundation then after each task; columns: tasks' test sets, then general sets (in %).
    WER cells carry their 95 % bootstrap interval over utterances; for a sweep the values are
    means over seeds. When a set is scored by another metric than WER (see
    :func:`clasr.report.results.table_rate`), the WER table shows every set's own metric."""
    sweep = matrix.get("sweep")
    rate = table_rate(matrix, rate)
    with_ci = f"{rate}_ci95" in matrix
    what = ["%", *([f"mean over seeds {sweep['seeds']}"] if sweep else []), *(["[95 % interval]"] if with_ci else [])]
    kind = "Error-rate matrix (each set's metric in brackets, " if rate == HEADLINE else f"{rate.upper()} matrix ("
    table = Table(title=f"{kind}{', '.join(what)}) — row i: after training through task i")
    table.add_column("row")
    for task in matrix["tasks"]:
        table.add_column(escape(column_label(matrix, task, rate)), justify="right")
    for name in matrix["general"]:
        table.add_column(escape(column_label(matrix, f"general:{name}", rate)), justify="right", style="cyan")
    rows = matrix_rows(matrix, rate, views=True)
    cis = matrix_rows(matrix, rate, f"{rate}_ci95", views=True) if with_ci else [(label, [None] * len(c)) for label, c in rows]
    for (label, cells), (_, intervals) in zip(rows, cis):
        table.add_row(escape(label), *(percent(v) + ("" if ci is None else f" {interval(ci, 1)}") for v, ci in zip(cells, intervals)))
    return table


def metrics_table(metrics: dict) -> Table:
    """Average WER, BWT, forgetting, learning, FWT and general-set change, with their 95 %
    intervals over utterances and definitions, in the points of each set's own metric (named
    in the title when some set is not scored by WER); for a sweep, the mean over seeds, its
    standard deviation and its 95 % interval over seeds too."""
    seeds = metrics.get("seeds")
    unit = rate_name(metrics.get("set_metrics") or {})
    table = Table(title=f"Continual metrics ({escape(unit)} points, %)" + (f" — mean over seeds {seeds['seeds']}" if seeds else ""))
    table.add_column("metric")
    table.add_column("mean" if seeds else "value", justify="right")
    table.add_column("95 % (utterances)", justify="right")
    if seeds:
        table.add_column("± std", justify="right")
        table.add_column("95 % (seeds)", justify="right")
    table.add_column("definition", overflow="fold")
    blank = [""] * (3 if seeds else 1)
    if not metrics.get("complete"):
        table.add_row("(incomplete)", f"{metrics['rows_done']}/{metrics['rows_expected']} rows", *blank, "run not finished")
        return table
    if "error" in metrics:
        table.add_row("(not computable)", "—", *blank, escape(metrics["error"]))
        return table
    cis = metrics.get("ci95") or {}
    general = metrics.get("general") or {}
    for key, value in scalar_values(metrics).items():
        if key.startswith("general/"):
            change = general[key.removeprefix("general/")]
            label, definition = f"general:{key.removeprefix('general/')}", METRIC_DEFINITIONS["general"]
            shown = f"{percent(change['initial'])} → {percent(change['final'])} ({100 * change['change']:+.2f})"
        else:
            label, definition, shown = key, METRIC_DEFINITIONS[key], percent(value)
        spread = [percent(seeds[key]["std"]), interval(seeds[key]["ci95"])] if seeds else []
        table.add_row(escape(label), shown, interval(cis.get(key)), *spread, escape(definition))
    return table
