"""The alarm a run raises, row by row, when it loses what the foundation model could do.

After each row k, every general set g's change from the foundation row,

    ΔG_g(k) = G_g[k] − G_g[0]      (error-rate points; positive = ability lost)

gets a 95 % percentile-bootstrap interval over the set's utterances, both rows scored on
the same resample (a paired interval: the rows decode the same utterances; Σ errors / Σ
units per replicate, :mod:`clasr.metrics.stats`). A set whose whole interval lies above
zero has lost more than the noise of its utterances can explain, and the run says so at
once — with how many of its utterances decoded to the token limit (the signature of a
looping model) — rather than leaving the loss to be found in the finished matrix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clasr.metrics.stats import percentile_interval, resample_counts, resampled_rates
from clasr.report.utterance_errors import read_run_errors


@dataclass(frozen=True)
class GeneralLoss:
    """A general set that lost ability at the row labelled ``row_label`` (rates as fractions)."""

    name: str
    metric: str
    row_label: str
    initial: float
    now: float
    interval: tuple[float, float]  # of now − initial
    utterances: int
    token_limit_hits: tuple[int, int]  # the foundation row's, this row's

    def message(self) -> str:
        points = lambda x: f"{100 * x:.2f}"  # noqa: E731
        low, high = self.interval
        loops = "" if self.token_limit_hits[1] <= self.token_limit_hits[0] else (
            f"; {self.token_limit_hits[1]} of them decoded to the token limit (foundation: {self.token_limit_hits[0]})"
        )
        return (
            f"general-ability loss {self.row_label}: {self.name} {self.metric.upper()} {points(self.initial)} → "
            f"{points(self.now)} % (+{points(self.now - self.initial)} points, 95 % [{points(low)}, {points(high)}] "
            f"over its {self.utterances} utterances{loops})"
        )


def general_losses(out: Path, rows: list[dict], n_resamples: int = 1000, seed: int = 0) -> list[GeneralLoss]:
    """The general sets whose latest row in ``out`` (matrix.json and hyps/ written for every
    row of ``rows``, the run's committed rows) lost ability beyond their utterances' noise."""
    matrix = json.loads((Path(out) / "matrix.json").read_text(encoding="utf-8"))
    last = len(rows) - 1
    if last < 1 or not matrix["general"]:
        return []
    rng = np.random.default_rng(seed)
    losses = []
    for errors in read_run_errors([Path(out)], {**matrix, "tasks": []}).general:  # the general sets' files only
        pair = errors.errors[0, [0, last]]  # (2 rows, utterances) of the one seed
        counts = resample_counts(len(errors.words), n_resamples, rng)
        replicates = resampled_rates(pair, errors.words, counts)
        low, high = percentile_interval(replicates[:, 1] - replicates[:, 0])
        if low > 0:
            losses.append(_loss(errors.name, matrix, rows, pair, errors.words, (float(low), float(high))))
    return losses


def _loss(name: str, matrix: dict, rows: list[dict], pair: np.ndarray, words: np.ndarray,
          interval: tuple[float, float]) -> GeneralLoss:
    initial, now = (float(e.sum() / words.sum()) for e in pair)
    hits = tuple(int(row["cells"][f"general/{name}"].get("token_limit_hits", 0)) for row in (rows[0], rows[-1]))
    return GeneralLoss(
        name, matrix.get("metrics", {}).get(f"general:{name}", "wer"), rows[-1]["label"], initial, now, interval,
        len(words), hits,
    )
