"""Markdown tables of a results directory (for docs and reports): the matrices and the metrics."""

from __future__ import annotations

from clasr.report.results import matrix_columns, matrix_rows, percent


def _with_ci(value: float | None, ci: list[float] | None) -> str:
    if ci is None or value is None:
        return percent(value)
    return f"{percent(value)} ({100 * ci[0]:.1f}–{100 * ci[1]:.1f})"


def matrix_markdown(matrix: dict, rate: str = "wer") -> str:
    """Rows: foundation then after each task; columns: tasks' test sets, then general sets (in %).
    WER cells carry their 95 % bootstrap interval in parentheses."""
    header = ["row", *matrix_columns(matrix)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = matrix_rows(matrix, rate, views=True)
    with_ci = rate == "wer" and "wer_ci95" in matrix
    intervals = matrix_rows(matrix, rate, "wer_ci95", views=True) if with_ci else [(l, [None] * len(c)) for l, c in rows]
    for (label, values), (_, cis) in zip(rows, intervals):
        lines.append("| " + " | ".join([label, *(_with_ci(v, c) for v, c in zip(values, cis))]) + " |")
    return "\n".join(lines)


def metrics_markdown(metrics: dict) -> str:
    """One line of figures: Average WER, BWT, forgetting, learning, general-set change (WER points)."""
    if not metrics.get("complete") or "error" in metrics:
        return "(metrics not available: run incomplete or not computable)"
    general = "; ".join(
        f"{name} {percent(c['initial'])} → {percent(c['final'])} ({100 * c['change']:+.2f})"
        for name, c in (metrics.get("general") or {}).items()
    )
    cells = [percent(metrics[k]) for k in ("average_wer", "backward_transfer", "forgetting", "learning")]
    return "\n".join(
        [
            "| Average WER | BWT | forgetting | learning | general |",
            "|---|---|---|---|---|",
            "| " + " | ".join([*cells, general or "—"]) + " |",
        ]
    )
