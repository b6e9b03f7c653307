"""Markdown tables of a results directory (for docs and reports): the matrices and the metrics."""

from __future__ import annotations

from clasr.report.results import column_label, interval, matrix_columns, matrix_rows, percent, rate_name, scalar_values, table_rate


def _with_ci(value: float | None, ci: list[float] | None) -> str:
    if ci is None or value is None:
        return percent(value)
    return f"{percent(value)} ({100 * ci[0]:.1f}–{100 * ci[1]:.1f})"


def matrix_markdown(matrix: dict, rate: str = "wer") -> str:
    """Rows: foundation then after each task; columns: tasks' test sets, then general sets (in %).
    WER cells carry their 95 % bootstrap interval in parentheses. When a set is scored by another
    metric than WER, the WER table shows every set's own metric, named in its header."""
    rate = table_rate(matrix, rate)
    header = ["row", *(column_label(matrix, column, rate) for column in matrix_columns(matrix))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = matrix_rows(matrix, rate, views=True)
    with_ci = f"{rate}_ci95" in matrix
    intervals = matrix_rows(matrix, rate, f"{rate}_ci95", views=True) if with_ci else [(l, [None] * len(c)) for l, c in rows]
    for (label, values), (_, cis) in zip(rows, intervals):
        lines.append("| " + " | ".join([label, *(_with_ci(v, c) for v, c in zip(values, cis))]) + " |")
    return "\n".join(lines)


def metrics_markdown(metrics: dict) -> str:
    """One line per figure: Average WER, BWT, forgetting, learning, FWT and each general set's
    change (points of each set's own metric, named on the first line), with the 95 % interval
    over utterances; for a sweep, the mean over seeds, ± its standard deviation and its 95 %
    interval over seeds."""
    if not metrics.get("complete") or "error" in metrics:
        return "(metrics not available: run incomplete or not computable)"
    seeds = metrics.get("seeds")
    cis = metrics.get("ci95") or {}
    header = ["metric", "mean" if seeds else "value", "95 % (utterances)", *(["± std", "95 % (seeds)"] if seeds else [])]
    unit = rate_name(metrics.get("set_metrics") or {})
    lines = [f"Continual metrics in {unit} points (%).", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, value in scalar_values(metrics).items():
        spread = [percent(seeds[key]["std"]), interval(seeds[key]["ci95"])] if seeds else []
        lines.append("| " + " | ".join([key, percent(value), interval(cis.get(key)), *spread]) + " |")
    return "\n".join(lines)
