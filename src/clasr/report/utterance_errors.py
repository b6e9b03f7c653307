"""Per-utterance errors of a results directory (or of a sweep's seed folders), read from the
hypothesis files ``hyps/row<i>/<kind>_<name>.jsonl`` into :class:`clasr.metrics.run_stats.RunErrors`.

Each set's errors are those of its own metric (matrix.json's ``metrics``: word errors and
reference words for WER, characters for CER without spaces, mixed units for MER), so the
intervals and paired tests are those of the error rates the continual metrics are computed on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clasr.metrics.run_stats import RunErrors, SetErrors
from clasr.metrics.wer import rate_fields


class UtteranceErrorsError(ValueError):
    """The hypothesis files are missing, damaged or do not cover the same utterances."""


def _read_hypotheses(path: Path, metric: str = "wer") -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(ids, errors, reference units) of one hypothesis file, counted as ``metric`` counts them."""
    error_field, reference_field = rate_fields(metric)
    if not path.exists():
        raise UtteranceErrorsError(f"{path}: missing (the per-utterance errors are needed for intervals and paired tests)")
    ids, errors, words = [], [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
            ids.append(str(row["id"]))
            errors.append(int(row[error_field]))
            words.append(int(row[reference_field]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise UtteranceErrorsError(f"{path}: line {number}: not a hypothesis row ({error})") from None
    return tuple(ids), np.array(errors, dtype=np.int64), np.array(words, dtype=np.int64)


def _set_errors(folders: list[Path], rows: int, kind: str, name: str, metric: str) -> SetErrors:
    """One set over every seed folder and row, counted as its ``metric`` counts; every file
    must list the same utterances with the same reference counts."""
    errors = []
    first: tuple | None = None
    for folder in folders:
        per_row = []
        for row in range(rows):
            path = folder / "hyps" / f"row{row}" / f"{kind}_{name}.jsonl"
            ids, row_errors, words = _read_hypotheses(path, metric)
            if first is None:
                first = (ids, words, path)
            elif ids != first[0] or not np.array_equal(words, first[1]):
                raise UtteranceErrorsError(f"{path}: scores other utterances than {first[2]}")
            per_row.append(row_errors)
        errors.append(per_row)
    assert first is not None
    return SetErrors(name, first[0], np.array(errors, dtype=np.int64), first[1])


def read_run_errors(folders: list[Path], matrix: dict) -> RunErrors:
    """The per-utterance errors of one run (one folder) or of a sweep's seed folders, over
    the rows, tasks and general sets of ``matrix`` (their matrix.json), each set in its own
    metric (WER for a matrix written before sets had one)."""
    rows = len(matrix["row_labels"])
    metric = lambda column: matrix.get("metrics", {}).get(column, "wer")  # noqa: E731
    tasks = [_set_errors(folders, rows, "test", t, metric(t)) for t in matrix["tasks"]]
    general = [_set_errors(folders, rows, "general", g, metric(f"general:{g}")) for g in matrix["general"]]
    return RunErrors(tasks, general, tuple(matrix["row_labels"]))
