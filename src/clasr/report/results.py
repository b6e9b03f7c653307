"""The plain files of a results directory, derived from the committed run state.

    matrix.json        row labels, task and general-set names, WER / CER / CER-nospace
                       matrices (rows × tasks) and general-set columns, dev matrices if any,
                       ``wer_ci95``: each WER cell's 95 % bootstrap interval, and ``views``: the
                       strategy's extra labelled rows (e.g. an adapter before centralization),
                       each placed after its row and never counted in the metrics
    matrix_wer.csv     the same WER figures as a table (one line per row of the matrix)
    matrix_cer.csv
    metrics.json       Average WER, BWT, forgetting, learning, FWT, general-set change, with
                       the definitions, computed on each set's own metric (``error_rate``:
                       WER, or CER without spaces for ja/zh/…, or MER; named per column in
                       ``set_metrics``; for English-only runs all WER); ``complete: false``
                       until every row is finished; once
                       finished, ``ci95``: each metric's 95 % bootstrap interval over utterances
                       (one resample of each set applied to every row; ``general/<name>``: the
                       set's change)
    metrics.csv        the same metrics, one line each: value and interval

A sweep of seeds (``clasr run --seeds``) writes the same files in its own folder, with
``sweep.json`` naming the seed folders: values are means over seeds, intervals those of the
mean, and ``seeds`` in metrics.json holds each metric's per-seed values, standard deviation
and 95 % t interval over seeds.

A cell of row i for a set named s is ``rows[i]["cells"][kind + "/" + s]``, kind being
``test``, ``general`` or ``dev``. Rates are fractions (0.05 = 5 % WER).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from clasr.atomic import write_json, write_text
from clasr.metrics.continual import METRIC_DEFINITIONS, continual_metrics
from clasr.metrics.run_stats import SCALAR_METRICS, intervals
from clasr.report.utterance_errors import UtteranceErrorsError, read_run_errors

RATES = ("wer", "cer", "cer_nospace", "mer", "error_rate")
HEADLINE = "error_rate"  # each set's own metric (cell "metric"): WER, or CER without spaces, or MER
SWEEP_FILE = "sweep.json"
BOOTSTRAP_RESAMPLES = 1000


def percent(value: float | None) -> str:
    """A rate (fraction) as percent with two decimals; "—" for a missing cell."""
    return "—" if value is None else f"{100 * value:.2f}"


def interval(ci: list[float | None] | None, digits: int = 2) -> str:
    """An interval of rates as "[low, high]" in percent; "—" when missing."""
    if not ci or ci[0] is None or ci[1] is None:
        return "—"
    return f"[{100 * ci[0]:.{digits}f}, {100 * ci[1]:.{digits}f}]"


def _column(rows: list[dict], key: str, rate: str) -> list[float | None]:
    cells = [row["cells"].get(key, {}) for row in rows]
    if rate == HEADLINE:  # cells written before sets had a metric: their metric was WER
        return [cell.get(HEADLINE, cell.get("wer")) for cell in cells]
    return [cell.get(rate) for cell in cells]


def _set_metrics(rows: list[dict], tasks: list[str], general: list[str]) -> dict[str, str]:
    """Each matrix column's headline metric (``wer`` for cells that do not name one)."""
    keys = {task: f"test/{task}" for task in tasks} | {f"general:{g}": f"general/{g}" for g in general}
    named = {column: [row["cells"].get(key, {}).get("metric") for row in rows] for column, key in keys.items()}
    return {column: next((m for m in metrics if m), "wer") for column, metrics in named.items()}


def table_rate(matrix: dict, rate: str) -> str:
    """The rate a table of ``rate`` shows: a WER table shows each set's own metric instead
    when some set is not scored by WER (a language without spaces, a code-switched set)."""
    if rate == "wer" and any(m != "wer" for m in matrix.get("metrics", {}).values()):
        return HEADLINE
    return rate


def column_label(matrix: dict, column: str, rate: str) -> str:
    """A table's header for ``column``: with its metric in brackets in a headline table."""
    return f"{column} [{matrix.get('metrics', {}).get(column, 'wer')}]" if rate == HEADLINE else column


def build_matrix(rows: list[dict], tasks: list[str], general: list[str], dev: list[str]) -> dict:
    """The matrices of every rate from the committed rows (a missing cell is None)."""
    matrix: dict = {
        "row_labels": [row["label"] for row in rows],
        "tasks": tasks,
        "general": general,
        "dev": dev,
        "metrics": _set_metrics(rows, tasks, general),
    }
    for rate in (*RATES, "wer_ci95"):
        columns = [_column(rows, f"test/{t}", rate) for t in tasks]
        matrix[rate] = [list(cells) for cells in zip(*columns)] if columns else []
        matrix[f"general_{rate}"] = {g: _column(rows, f"general/{g}", rate) for g in general}
        if dev:
            dev_columns = [_column(rows, f"dev/{t}", rate) for t in dev]
            matrix[f"dev_{rate}"] = [list(cells) for cells in zip(*dev_columns)]
    views = [(i, row["view"]) for i, row in enumerate(rows) if row.get("view")]
    if views:
        matrix["views"] = [
            {"after_row": i, **build_matrix([{"label": view["label"], "cells": view["cells"]}], tasks, general, [])}
            for i, view in views
        ]
    return matrix


def rate_name(set_metrics: dict[str, str]) -> str:
    """What the continual metrics are measured in: "WER" when every set is scored by WER,
    else "error rate (<metric>: <columns>; …)" naming each set's metric."""
    by_metric: dict[str, list[str]] = {}
    for column, metric in set_metrics.items():
        by_metric.setdefault(metric, []).append(column)
    if set(by_metric) <= {"wer"}:
        return "WER"
    return "error rate (" + "; ".join(f"{metric}: {', '.join(columns)}" for metric, columns in by_metric.items()) + ")"


def build_metrics(matrix: dict, rate: str = HEADLINE) -> dict:
    """Continual metrics of a complete matrix, on each set's own metric (``error_rate``; its
    metric per column in ``set_metrics``); ``complete: false`` while rows are missing."""
    n_tasks = len(matrix["tasks"])
    complete = len(matrix[rate]) == n_tasks + 1
    if not complete:
        return {"complete": False, "rows_done": len(matrix[rate]), "rows_expected": n_tasks + 1}
    try:
        metrics = continual_metrics(matrix[rate], matrix[f"general_{rate}"] or None)
    except ValueError as error:  # e.g. a set whose references all normalise to nothing (rate NaN)
        return {"complete": True, "rate": rate, "error": str(error)}
    named = {"rate": rate, "set_metrics": matrix.get("metrics", {})}
    return {"complete": True, **named, **metrics, "definitions": METRIC_DEFINITIONS}


def matrix_columns(matrix: dict) -> list[str]:
    """Column names of a matrix table: each task's test set, then ``general:<name>``."""
    return [*matrix["tasks"], *(f"general:{g}" for g in matrix["general"])]


def matrix_rows(matrix: dict, rate: str, key: str | None = None, views: bool = False) -> list[tuple[str, list]]:
    """(row label, cells in :func:`matrix_columns` order) per row; ``key`` picks another
    per-cell quantity of the same shape (``wer_ci95``), defaulting to ``rate``. ``views``:
    each extra view follows its row, labelled "↳ <label>" (tables only; row i stays row i
    without them)."""
    key = key or rate
    extra = {view["after_row"]: view for view in matrix.get("views", [])} if views else {}
    rows = []
    for i, label in enumerate(matrix["row_labels"]):
        rows.append((label, [*matrix[key][i], *(matrix[f"general_{key}"][g][i] for g in matrix["general"])]))
        if i in extra:
            rows.extend((f"↳ {view_label}", cells) for view_label, cells in matrix_rows(extra[i], rate, key))
    return rows


def matrix_csv(matrix: dict, rate: str) -> str:
    """One line per matrix row: label, each task's rate, each general set's rate; then each
    cell's 95 % interval (``<column> ci95 low``, ``<column> ci95 high``) where the matrix holds
    them for ``rate`` (``<rate>_ci95``: WER cells, or a sweep's error-rate cells)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = [column_label(matrix, column, rate) for column in matrix_columns(matrix)]
    with_ci = f"{rate}_ci95" in matrix
    bounds = [f"{c} ci95 {end}" for c in columns for end in ("low", "high")] if with_ci else []
    writer.writerow(["row", *columns, *bounds])
    rows = matrix_rows(matrix, rate, views=True)
    cis = matrix_rows(matrix, rate, f"{rate}_ci95", views=True) if with_ci else [(label, []) for label, _ in rows]
    for (label, cells), (_, intervals_) in zip(rows, cis):
        writer.writerow([label, *cells, *(bound for ci in intervals_ for bound in (ci or [None, None]))])
    return buffer.getvalue()


def scalar_values(metrics: dict) -> dict[str, float | None]:
    """The scalar figures of metrics.json: the continual metrics, then ``general/<name>``
    (the set's change)."""
    values = {key: metrics.get(key) for key in SCALAR_METRICS}
    values.update({f"general/{name}": change["change"] for name, change in (metrics.get("general") or {}).items()})
    return values


def metrics_csv(metrics: dict) -> str:
    """One line per scalar metric: value and 95 % interval over utterances; for a sweep,
    also the standard deviation and 95 % interval over seeds."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    seeds = metrics.get("seeds")
    writer.writerow(["metric", "value", "ci95 low", "ci95 high", *(["std over seeds", "seeds ci95 low", "seeds ci95 high"] if seeds else [])])
    if metrics.get("complete") and "error" not in metrics:
        for key, value in scalar_values(metrics).items():
            ci = (metrics.get("ci95") or {}).get(key) or [None, None]
            over_seeds = seeds[key] if seeds else None
            writer.writerow([key, value, *ci, *([over_seeds["std"], *over_seeds["ci95"]] if seeds else [])])
    return buffer.getvalue()


def metric_intervals(folders: list[Path], matrix: dict) -> dict:
    """``ci95`` of metrics.json: each scalar metric's interval over utterances (of the mean
    over ``folders``, the seed folders), or ``{"error": why}`` when the hypothesis files are
    unusable."""
    try:
        return intervals(read_run_errors(folders, matrix), BOOTSTRAP_RESAMPLES)["metrics"]
    except UtteranceErrorsError as error:
        return {"error": str(error)}


def seed_folders(folder: Path) -> list[Path]:
    """The seed folders of a sweep (named in its sweep.json), or ``[folder]`` for one run."""
    path = Path(folder) / SWEEP_FILE
    return [Path(folder) / name for name in _load_json(path)["folders"]] if path.exists() else [Path(folder)]


def write_results(output_dir: Path, rows: list[dict], tasks: list[str], general: list[str], dev: list[str]) -> dict:
    """(Re)write matrix.json, the CSVs and metrics.json; returns the metrics."""
    matrix = build_matrix(rows, tasks, general, dev)
    write_json(output_dir / "matrix.json", matrix)
    for rate in ("wer", "cer"):
        write_text(output_dir / f"matrix_{rate}.csv", matrix_csv(matrix, rate))
    if table_rate(matrix, "wer") == HEADLINE:
        write_text(output_dir / f"matrix_{HEADLINE}.csv", matrix_csv(matrix, HEADLINE))
    metrics = build_metrics(matrix)
    if metrics["complete"] and "error" not in metrics:
        metrics["ci95"] = metric_intervals([output_dir], matrix)
    write_json(output_dir / "metrics.json", metrics)
    write_text(output_dir / "metrics.csv", metrics_csv(metrics))
    return metrics


def read_results(output_dir: Path) -> tuple[dict, dict]:
    """(matrix, metrics) of a results directory; FileNotFoundError naming what is missing."""
    output_dir = Path(output_dir)
    missing = [name for name in ("matrix.json", "metrics.json") if not (output_dir / name).exists()]
    if missing:
        raise FileNotFoundError(f"{output_dir}: not a clasr results directory (missing {', '.join(missing)})")
    return _load_json(output_dir / "matrix.json"), _load_json(output_dir / "metrics.json")


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: damaged JSON ({error})") from None
