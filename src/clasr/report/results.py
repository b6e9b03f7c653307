"""The plain files of a results directory, derived from the committed run state.

    matrix.json        row labels, task and general-set names, WER / CER / CER-nospace
                       matrices (rows × tasks) and general-set columns, dev matrices if any,
                       ``wer_ci95``: each WER cell's 95 % bootstrap interval, and ``views``: the
                       strategy's extra labelled rows (e.g. an adapter before centralization),
                       each placed after its row and never counted in the metrics
    matrix_wer.csv     the same WER figures as a table (one line per row of the matrix)
    matrix_cer.csv
    metrics.json       Average WER, BWT, forgetting, learning, general-set change, with the
                       definitions; ``complete: false`` until every row is finished

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

RATES = ("wer", "cer", "cer_nospace")


def percent(value: float | None) -> str:
    """A rate (fraction) as percent with two decimals; "—" for a missing cell."""
    return "—" if value is None else f"{100 * value:.2f}"


def _column(rows: list[dict], key: str, rate: str) -> list[float | None]:
    return [row["cells"].get(key, {}).get(rate) for row in rows]


def build_matrix(rows: list[dict], tasks: list[str], general: list[str], dev: list[str]) -> dict:
    """The matrices of every rate from the committed rows (a missing cell is None)."""
    matrix: dict = {
        "row_labels": [row["label"] for row in rows],
        "tasks": tasks,
        "general": general,
        "dev": dev,
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


def build_metrics(matrix: dict, rate: str = "wer") -> dict:
    """Continual metrics of a complete matrix; ``complete: false`` while rows are missing."""
    n_tasks = len(matrix["tasks"])
    complete = len(matrix[rate]) == n_tasks + 1
    if not complete:
        return {"complete": False, "rows_done": len(matrix[rate]), "rows_expected": n_tasks + 1}
    try:
        metrics = continual_metrics(matrix[rate], matrix[f"general_{rate}"] or None)
    except ValueError as error:  # e.g. a set whose references all normalise to nothing (rate NaN)
        return {"complete": True, "rate": rate, "error": str(error)}
    return {"complete": True, "rate": rate, **metrics, "definitions": METRIC_DEFINITIONS}


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
    """One line per matrix row: label, each task's rate, each general set's rate."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", *matrix_columns(matrix)])
    for label, cells in matrix_rows(matrix, rate, views=True):
        writer.writerow([label, *cells])
    return buffer.getvalue()


def write_results(output_dir: Path, rows: list[dict], tasks: list[str], general: list[str], dev: list[str]) -> dict:
    """(Re)write matrix.json, the CSVs and metrics.json; returns the metrics."""
    matrix = build_matrix(rows, tasks, general, dev)
    write_json(output_dir / "matrix.json", matrix)
    for rate in ("wer", "cer"):
        write_text(output_dir / f"matrix_{rate}.csv", matrix_csv(matrix, rate))
    metrics = build_metrics(matrix)
    write_json(output_dir / "metrics.json", metrics)
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
