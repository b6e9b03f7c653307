"""Continual metrics and their intervals are computed on each set's own metric (its
``error_rate``: WER, CER without spaces, MER), named in the reports; English-only runs keep
exactly the WER figures they had."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clasr.metrics.continual import continual_metrics
from clasr.metrics.run_stats import RunErrors, SetErrors, intervals
from clasr.metrics.wer import rate_fields
from clasr.report.markdown import metrics_markdown
from clasr.report.results import BOOTSTRAP_RESAMPLES, read_results, write_results
from clasr.report.show import metrics_table

TASKS = ["t1", "t2"]


def _references(rng, n: int) -> list[dict]:
    """Reference counts of n utterances, words and characters disagreeing (as they do for ja)."""
    refs = []
    for _ in range(n):
        words, chars = int(rng.integers(1, 6)), int(rng.integers(8, 30))
        refs.append({"ref_words": words, "ref_chars": chars + words - 1, "ref_chars_nospace": chars, "ref_mixed": chars})
    return refs


def _counts(rng, refs: list[dict]) -> list[dict]:
    """One row's error counts of the utterances ``refs``."""
    return [{**r, "word_errors": int(rng.integers(0, r["ref_words"] + 2)),
             "char_errors": int(rng.integers(0, r["ref_chars"] // 2)),
             "char_errors_nospace": int(rng.integers(0, r["ref_chars_nospace"] // 3)),
             "mixed_errors": int(rng.integers(0, r["ref_mixed"] // 3))} for r in refs]


def _fake_run(out: Path, metrics: dict[str, str], seed: int = 0, n: int = 12) -> dict:
    """A finished 2-task run with one general set: hypothesis files and committed rows whose
    cells are the corpus rates of those files (as the runner writes them)."""
    rng = np.random.default_rng(seed)
    keys = {"test/t1": metrics["t1"], "test/t2": metrics["t2"], "general/g": metrics["general:g"]}
    references = {key: _references(np.random.default_rng(len(key)), n) for key in keys}  # the same utterances in every seed
    rows = []
    for row in range(len(TASKS) + 1):
        cells = {}
        for key, metric in keys.items():
            counts = _counts(rng, references[key])
            path = out / "hyps" / f"row{row}" / f"{key.replace('/', '_')}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps({"id": f"u{i}", **c}) + "\n" for i, c in enumerate(counts)))
            rate = lambda m: sum(c[rate_fields(m)[0]] for c in counts) / sum(c[rate_fields(m)[1]] for c in counts)  # noqa: E731
            cells[key] = {"wer": rate("wer"), "cer": rate("cer"), "cer_nospace": rate("cer_nospace"), "mer": rate("mer"),
                          "error_rate": rate(metric), "metric": metric, "wer_ci95": [0.0, 1.0]}
        rows.append({"label": "foundation" if row == 0 else f"after {TASKS[row - 1]}", "cells": cells})
    return write_results(out, rows, TASKS, ["g"], [])


def _errors(out: Path, metrics: dict[str, str]) -> RunErrors:
    """The per-utterance errors of ``out`` in each set's metric, read independently of clasr."""
    def one(kind: str, name: str, metric: str) -> SetErrors:
        error_field, unit_field = rate_fields(metric)
        per_row = [[json.loads(line) for line in (out / "hyps" / f"row{r}" / f"{kind}_{name}.jsonl").read_text().splitlines()]
                   for r in range(len(TASKS) + 1)]
        errors = np.array([[[u[error_field] for u in row] for row in per_row]])
        return SetErrors(name, tuple(u["id"] for u in per_row[0]), errors, np.array([u[unit_field] for u in per_row[0]]))

    tasks = [one("test", t, metrics[t]) for t in TASKS]
    return RunErrors(tasks, [one("general", "g", metrics["general:g"])], ("foundation", "after t1", "after t2"))


def test_english_only_figures_are_the_wer_figures(tmp_path):
    metrics = dict.fromkeys(["t1", "t2", "general:g"], "wer")
    written = _fake_run(tmp_path, metrics)
    matrix, _ = read_results(tmp_path)
    expected = continual_metrics(matrix["wer"], matrix["general_wer"])
    for key in ("average_wer", "backward_transfer", "forgetting", "learning", "forward_transfer"):
        assert written[key] == pytest.approx(expected[key], abs=1e-12)
    assert written["general"]["g"] == pytest.approx(expected["general"]["g"])
    assert written["ci95"] == intervals(_errors(tmp_path, metrics), BOOTSTRAP_RESAMPLES)["metrics"]
    assert "Continual metrics in WER points" in metrics_markdown(written)
    assert metrics_table(written).title.startswith("Continual metrics (WER points")


def test_a_cer_scored_set_counts_in_its_metric(tmp_path):
    metrics = {"t1": "wer", "t2": "cer_nospace", "general:g": "mer"}
    written = _fake_run(tmp_path, metrics, seed=1)
    matrix, on_disk = read_results(tmp_path)
    expected = continual_metrics(matrix["error_rate"], matrix["general_error_rate"])
    by_wer = continual_metrics(matrix["wer"], matrix["general_wer"])
    assert written["average_wer"] == pytest.approx(expected["average_wer"], abs=1e-12)
    assert written["average_wer"] != pytest.approx(by_wer["average_wer"], abs=1e-3)  # WER would be another figure
    # by hand, in error-rate units: BWT = R[1][t1] − R[2][t1] (t1 is a WER set), Average = mean of row 2
    R = matrix["error_rate"]
    assert written["backward_transfer"] == pytest.approx(R[1][0] - R[2][0], abs=1e-12)
    assert written["average_wer"] == pytest.approx((R[2][0] + R[2][1]) / 2, abs=1e-12)
    assert written["general"]["g"]["change"] == pytest.approx(matrix["general_error_rate"]["g"][2] - matrix["general_error_rate"]["g"][0])
    assert written["ci95"] == intervals(_errors(tmp_path, metrics), BOOTSTRAP_RESAMPLES)["metrics"]
    assert on_disk["set_metrics"] == metrics and on_disk["rate"] == "error_rate"
    assert "error rate (wer: t1; cer_nospace: t2; mer: general:g)" in metrics_markdown(written)
    assert "cer_nospace: t2" in metrics_table(written).title


def test_a_sweep_with_a_cer_scored_set_keeps_error_rate_statistics(tmp_path):
    from clasr.report.markdown import matrix_markdown
    from clasr.report.sweep import write_sweep_results

    metrics = {"t1": "wer", "t2": "cer_nospace", "general:g": "wer"}
    per_seed = [_fake_run(tmp_path / f"seed{k}", metrics, seed=10 + k) for k in range(3)]
    aggregate = write_sweep_results(tmp_path, [0, 1, 2])
    matrix, _ = read_results(tmp_path)
    seeds = [read_results(tmp_path / f"seed{k}")[0] for k in range(3)]
    assert aggregate["average_wer"] == pytest.approx(np.mean([m["average_wer"] for m in per_seed]))
    assert aggregate["set_metrics"] == metrics and aggregate["rate"] == "error_rate"
    assert matrix["error_rate_std"][2][1] == pytest.approx(np.std([m["error_rate"][2][1] for m in seeds], ddof=1))
    assert "wer_ci95" not in matrix and "wer_std" not in matrix  # no error-rate interval filed as a WER one
    low, high = matrix["error_rate_ci95"][2][1]
    assert low <= matrix["error_rate"][2][1] <= high
    assert "t2 [cer_nospace]" in matrix_markdown(matrix) and " (" in matrix_markdown(matrix).splitlines()[2]
