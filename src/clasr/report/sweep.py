"""The aggregate of a sweep of seeds, written from the seed folders' result files only.

A sweep folder holds one results folder per seed (``seed<k>/``) and, beside them, the files
of one results directory (:mod:`clasr.report.results`) describing the mean over seeds:

    sweep.json         the seeds and their folders
    matrix.json        every cell the mean over seeds (None where a seed lacks it);
                       ``wer_ci95``: the 95 % bootstrap interval of the mean over utterances
                       (each set resampled once per replicate, the same resample for every
                       row and seed); ``wer_std``: the standard deviation over seeds;
                       ``wer_seeds_ci95``: the 95 % t interval of the mean over seeds
                       (``error_rate_*`` instead, of each set's own metric, when some set
                       is not scored by WER)
    metrics.json       each metric's mean, its ``ci95`` over utterances, and ``seeds``: per
                       metric the per-seed values, std and 95 % t interval over seeds
    matrix_wer.csv, matrix_cer.csv, metrics.csv

so ``clasr show`` and ``clasr compare`` read a sweep as they read a run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clasr.atomic import write_json, write_text
from clasr.metrics.continual import METRIC_DEFINITIONS
from clasr.metrics.run_stats import intervals
from clasr.metrics.stats import seed_interval
from clasr.report.results import (
    BOOTSTRAP_RESAMPLES,
    HEADLINE,
    SWEEP_FILE,
    matrix_csv,
    metrics_csv,
    read_results,
    scalar_values,
    table_rate,
)
from clasr.report.utterance_errors import UtteranceErrorsError, read_run_errors

_AVERAGED_KEYS = ("tasks", "average_wer", "backward_transfer", "forgetting", "learning", "forward_transfer")


def seed_folder_name(seed: int) -> str:
    return f"seed{seed}"


def _mean(values: list):
    """Element-wise mean of equally shaped nested lists / dicts of numbers; None where any is None."""
    first = values[0]
    if isinstance(first, dict):
        return {key: _mean([v[key] for v in values]) for key in first}
    if isinstance(first, list):
        return [_mean(list(items)) for items in zip(*values)]
    if any(v is None for v in values) or isinstance(first, str):
        return first if isinstance(first, str) else None
    return float(np.mean(values))


def _per_cell(matrices: list[dict], reduce, rate: str) -> dict:
    """``reduce`` applied to each ``rate`` cell's per-seed values, laid out as ``rate`` and
    ``general_<rate>`` are."""
    rows = len(matrices[0]["row_labels"])
    tasks = [[reduce([m[rate][i][j] for m in matrices]) for j in range(len(matrices[0]["tasks"]))] for i in range(rows)]
    general = {g: [reduce([m[f"general_{rate}"][g][i] for m in matrices]) for i in range(rows)] for g in matrices[0]["general"]}
    return {"tasks": tasks, "general": general}


def _seed_statistics(values: list) -> tuple | None:
    return None if any(v is None for v in values) else seed_interval(np.array(values))


def aggregate_matrix(matrices: list[dict], cells: list[list[list[float]]]) -> dict:
    """The mean matrix of finished seed runs, with the per-cell intervals over utterances
    (``cells``, from :func:`clasr.metrics.run_stats.intervals`: each set's own metric) and over
    seeds, named ``wer_*`` when every set is scored by WER, else ``error_rate_*``."""
    matrix = _mean([{k: v for k, v in m.items() if k not in ("views", "wer_ci95", "general_wer_ci95")} for m in matrices])
    rate = table_rate(matrices[0], "wer")
    statistics = _per_cell(matrices, _seed_statistics, rate)
    for key, pick in ((f"{rate}_std", lambda s: s[1]), (f"{rate}_seeds_ci95", lambda s: [s[2], s[3]])):
        matrix[key] = [[None if s is None else pick(s) for s in row] for row in statistics["tasks"]]
        matrix[f"general_{key}"] = {g: [None if s is None else pick(s) for s in col] for g, col in statistics["general"].items()}
    n_tasks = len(matrix["tasks"])
    matrix[f"{rate}_ci95"] = [row[:n_tasks] for row in cells]
    matrix[f"general_{rate}_ci95"] = {g: [row[n_tasks + k] for row in cells] for k, g in enumerate(matrix["general"])}
    return matrix


def aggregate_metrics(metrics: list[dict], folders: list[Path], seeds: list[int], intervals_: dict) -> dict:
    """Means over seeds, the interval of the mean over utterances and the spread over seeds."""
    failed = [f"{folder.name}: {m['error']}" for folder, m in zip(folders, metrics) if "error" in m]
    if failed:
        return {"complete": True, "rate": HEADLINE, "error": "; ".join(failed)}
    named = {"rate": HEADLINE, "set_metrics": metrics[0].get("set_metrics", {})}
    aggregate = {"complete": True, **named, **{k: _mean([m[k] for m in metrics]) for k in _AVERAGED_KEYS}}
    aggregate["general"] = _mean([m["general"] for m in metrics])
    per_seed = [scalar_values(m) for m in metrics]
    spread = {"seeds": seeds}
    for key in per_seed[0]:
        values = [p[key] for p in per_seed]
        statistics = _seed_statistics(values)
        spread[key] = {"values": values, "std": None if statistics is None else statistics[1],
                       "ci95": None if statistics is None else [statistics[2], statistics[3]]}
    aggregate["seeds"] = spread
    aggregate["ci95"] = intervals_
    aggregate["definitions"] = METRIC_DEFINITIONS
    return aggregate


def write_sweep_results(output_dir: Path, seeds: list[int]) -> dict:
    """(Re)write the sweep's aggregate files from the seed folders; returns its metrics."""
    output_dir = Path(output_dir)
    folders = [output_dir / seed_folder_name(seed) for seed in seeds]
    results = [read_results(folder) for folder in folders]
    unfinished = [folder.name for folder, (_, metrics) in zip(folders, results) if not metrics.get("complete")]
    if unfinished:
        raise ValueError(f"{output_dir}: seed runs not finished: {', '.join(unfinished)}")
    shapes = {(tuple(m["tasks"]), tuple(m["general"]), len(m["wer"])) for m, _ in results}
    if len(shapes) > 1:
        raise ValueError(f"{output_dir}: the seed folders hold matrices of different shapes; {shapes}")
    try:  # intervals of the mean over seeds; the hypothesis files must be usable
        found = intervals(read_run_errors(folders, results[0][0]), BOOTSTRAP_RESAMPLES)
    except UtteranceErrorsError as error:
        raise ValueError(str(error)) from None
    matrix = aggregate_matrix([m for m, _ in results], found["cells"])
    matrix["sweep"] = {"seeds": seeds}
    metrics = aggregate_metrics([x for _, x in results], folders, seeds, found["metrics"])
    write_json(output_dir / SWEEP_FILE, {"seeds": seeds, "folders": [f.name for f in folders]})
    write_json(output_dir / "matrix.json", matrix)
    for rate in {"wer", "cer", table_rate(matrix, "wer")}:
        write_text(output_dir / f"matrix_{rate}.csv", matrix_csv(matrix, rate))
    write_json(output_dir / "metrics.json", metrics)
    write_text(output_dir / "metrics.csv", metrics_csv(metrics))
    return metrics
