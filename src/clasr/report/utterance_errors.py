"""Per-utterance word errors of a results directory (or of a sweep's seed folders), read
from the hypothesis files ``hyps/row<i>/<kind>_<name>.jsonl`` into
:class:`clasr.metrics.run_stats.RunErrors`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clasr.metrics.run_stats import RunErrors, SetErrors


class UtteranceErrorsError(ValueError):
    """The hypothesis files are missing, damaged or do not cover the same utterances."""


def _read_hypotheses(path: Path) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(ids, word errors, reference words) of one hypothesis file."""
    if not path.exists():
        raise UtteranceErrorsError(f"{path}: missing (the per-utterance errors are needed for intervals and paired tests)")
    ids, errors, words = [], [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
            ids.append(str(row["id"]))
            errors.append(int(row["word_errors"]))
            words.append(int(row["ref_words"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise UtteranceErrorsError(f"{path}: line {number}: not a hypothesis row ({error})") from None
    return tuple(ids), np.array(errors, dtype=np.int64), np.array(words, dtype=np.int64)


def _set_errors(folders: list[Path], rows: int, kind: str, name: str) -> SetErrors:
    """One set over every seed folder and row; every file must list the same utterances
    with the same reference word counts."""
    errors = []
    first: tuple | None = None
    for folder in folders:
        per_row = []
        for row in range(rows):
            path = folder / "hyps" / f"row{row}" / f"{kind}_{name}.jsonl"
            ids, row_errors, words = _read_hypotheses(path)
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
    the rows, tasks and general sets of ``matrix`` (their matrix.json)."""
    rows = len(matrix["row_labels"])
    tasks = [_set_errors(folders, rows, "test", t) for t in matrix["tasks"]]
    general = [_set_errors(folders, rows, "general", g) for g in matrix["general"]]
    return RunErrors(tasks, general, tuple(matrix["row_labels"]))
