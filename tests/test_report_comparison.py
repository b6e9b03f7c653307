"""clasr compare's table from result files only: row times from timings.json (never the
checkpoint), sums over a sweep's seeds, a clear error for a damaged file, headers with each
set's metric when a set is not scored by WER."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clasr.report.comparison import comparison_markdown, comparison_rows, read_run
from clasr.report.results import write_results


def _run_folder(folder, row_seconds, metric="wer", timings=True):
    """A finished two-task run: rows 0–2 with WER cells, and its timings.json."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, seconds in enumerate(row_seconds):
        cell = {"wer": 0.1 * (i + 1), "metric": metric, "error_rate": 0.1 * (i + 1)}
        rows.append({"label": "foundation" if i == 0 else f"after t{i}", "seconds": seconds,
                     "cells": {"test/t1": dict(cell), "test/t2": dict(cell), "general/g": dict(cell)}})
    write_results(folder, rows, ["t1", "t2"], ["g"], [])
    if timings:
        (folder / "timings.json").write_text(json.dumps({"rows": [{"row": i, "seconds": s} for i, s in enumerate(row_seconds)]}))
    return folder


def test_seconds_are_the_task_rows_from_timings(tmp_path):
    run = read_run("ft", _run_folder(tmp_path / "x-ft", [50.0, 7.25, 3.5]))
    assert run.seconds == pytest.approx(10.75)  # the foundation row's 50 s are shared, not counted
    assert comparison_rows([run])[1][-1][-1] == "11s"


def test_a_sweep_sums_its_seeds_and_a_missing_timing_shows_a_dash(tmp_path):
    sweep = tmp_path / "sweep"
    _run_folder(sweep / "seed0", [1.0, 2.0, 3.0])
    _run_folder(sweep / "seed1", [1.0, 4.0, 5.0])
    _run_folder(sweep, [1.0, 2.0, 3.0], timings=False)  # the sweep's own aggregate files
    (sweep / "sweep.json").write_text(json.dumps({"folders": ["seed0", "seed1"]}))
    assert read_run("s", sweep).seconds == pytest.approx(14.0)
    (sweep / "seed1" / "timings.json").unlink()
    unfinished = read_run("s", sweep)
    assert unfinished.seconds is None and comparison_rows([unfinished])[1][-1][-1] == "—"


def test_damaged_timings_are_named(tmp_path):
    folder = _run_folder(tmp_path / "r", [1.0, 2.0, 3.0])
    (folder / "timings.json").write_text('{"rows": [')
    with pytest.raises(ValueError, match="timings.json"):
        read_run("r", folder)


def test_sets_not_scored_by_wer_show_their_metric(tmp_path):
    run = read_run("ft", _run_folder(tmp_path / "cer", [1.0, 2.0, 3.0], metric="cer_nospace"))
    header, _ = comparison_rows([run])
    assert header[2:5] == ["t1 [cer_nospace]", "t2 [cer_nospace]", "general:g [cer_nospace]"]
    wer_header, _ = comparison_rows([read_run("ft", _run_folder(tmp_path / "wer", [1.0, 2.0, 3.0]))])
    assert wer_header[2:5] == ["t1", "t2", "g"]
    assert "t1 [cer_nospace]" in comparison_markdown([run])


def test_the_comparison_does_not_import_the_experiment_layer():
    code = "import sys, clasr.report.comparison; print(sorted(m for m in sys.modules if m.startswith('clasr.experiment')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_each_general_set_s_change_has_a_column_with_its_interval(tmp_path):
    """Δ<set> on a run's last line: G[T] − G[0] signed, with its 95 % interval over utterances;
    for a sweep, mean±std over seeds."""
    from test_seeds import _fake_run, _fake_sweep

    _fake_run(tmp_path / "one", 0)
    _fake_sweep(tmp_path / "sweep")
    runs = [read_run("one", tmp_path / "one"), read_run("sweep", tmp_path / "sweep")]
    header, lines = comparison_rows(runs)
    assert header[-6:] == ["Avg WER", "BWT", "learn", "FWT", "Δg", "time"]
    for run, line in zip(runs, (lines[2], lines[4])):
        change, (low, high) = run.metrics["general"]["g"]["change"], run.metrics["ci95"]["general/g"]
        assert change == pytest.approx(run.matrix["general_wer"]["g"][-1] - run.matrix["general_wer"]["g"][0])
        expected = f"{100 * change:+.1f}"
        if run.name == "sweep":
            expected += f"±{100 * run.metrics['seeds']['general/g']['std']:.1f}"
        assert line[-2] == f"{expected} [{100 * low:.1f}, {100 * high:.1f}]"
    assert lines[1][-2] == "" and "| Δg | time |" in comparison_markdown(runs)
