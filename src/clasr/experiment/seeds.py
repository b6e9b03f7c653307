"""A sweep of seeds: one run per seed, sharing the foundation row, plus their aggregate.

``clasr run CONFIG --seeds 0 1 2`` runs the config once per seed into ``<output>/seed<k>/``
(an ordinary results directory each, resumable on its own) and writes the aggregate of the
seed folders into ``<output>/`` (:mod:`clasr.report.sweep`). Row 0 scores the untouched
model with greedy decoding, which no seed changes, so every seed after the first reuses
the first seed's row 0 (:func:`clasr.experiment.runner.foundation_row` checks it). Running
the sweep again resumes: finished seeds are neither retrained nor re-evaluated, an
interrupted one continues after its last finished row.
"""

from __future__ import annotations

from pathlib import Path

from clasr.distributed import is_main_process
from clasr.experiment.config import ConfigError, ExperimentConfig
from clasr.experiment.runner import run_experiment
from clasr.progress import console
from clasr.report.results import SWEEP_FILE, seed_folders
from clasr.report.sweep import seed_folder_name, write_sweep_results


def seed_config(config: ExperimentConfig, seed: int) -> ExperimentConfig:
    """``config`` with ``seed`` and the output folder ``<output_dir>/seed<k>``."""
    return config.model_copy(update={"seed": seed, "output_dir": Path(config.output_dir) / seed_folder_name(seed)})


def foundation_source(folder: Path) -> Path:
    """The results folder whose row 0 to reuse: a run, or a sweep's first seed folder."""
    return seed_folders(folder)[0]


def run_single(config: ExperimentConfig, foundation_from: Path | None = None) -> dict:
    """:func:`run_experiment` of one seed, refused in a sweep's folder; ``foundation_from``
    may be a sweep (its first seed's row 0 is reused)."""
    if (Path(config.output_dir) / SWEEP_FILE).exists():
        raise ConfigError(f"{config.output_dir} holds a sweep of seeds: rerun it with --seeds, or use another output folder")
    return run_experiment(config, foundation_source(foundation_from) if foundation_from else None)


def run_seeds(config: ExperimentConfig, seeds: list[int], foundation_from: Path | None = None) -> dict:
    """Run (or resume) ``config`` once per seed, then write the aggregate; returns its metrics.

    ``foundation_from`` (a run or a sweep) provides row 0 of the first seed's run; the other
    seeds reuse the first seed's.
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: expected distinct seeds, got {seeds}")
    out = Path(config.output_dir)
    if (out / "progress").exists():
        raise ConfigError(f"{out} holds a single run; a sweep of seeds needs another output folder")
    first = seed_config(config, seeds[0]).output_dir
    for index, seed in enumerate(seeds):
        console.rule(f"seed {seed} ({index + 1} of {len(seeds)})")
        source = first if index else (foundation_source(foundation_from) if foundation_from else None)
        run_experiment(seed_config(config, seed), foundation_from=source)
    if not is_main_process():  # the aggregate is written once
        return {}
    try:
        return write_sweep_results(out, list(seeds))
    except ValueError as error:  # a seed folder's files are unusable
        raise ConfigError(str(error)) from None
