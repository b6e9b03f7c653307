"""Merging baselines (issue 14.5) against FT and FTA, and centralization's products vs factors
(issue 14.2), on the demo sequence's dev splits, float32 (``train.bf16: false``).

    .venv/bin/python benchmarks/merging_dev.py [--output results/tune-merging] [--only RUN …] [--set KEY=VALUE …]
        [--seeds 0 1 2]

1. ``swap`` trains every task once from θ_0 and keeps each task vector τ_t = θ̃_t − θ_0.
2. Every merging run (task arithmetic, TIES, DARE at the settings in ``MERGES``) is an ordinary
   run of its strategy — same evaluation, results files and metrics — whose training of task t
   is replaced by loading θ_0 + τ_t from the swap run: a merging strategy trains task t from
   θ_0 with the task's seed, exactly as swap does, so these are the task vectors its own run
   trains (up to the float32 rounding of θ_0 + (θ̃_t − θ_0)). Merges then cost evaluation only.
3. FT, FTA and centralization (LoRA r 8 on q, v at lr 3e-3, K = 3, products and factors) train
   as usual.

Every run reuses the first run's foundation row. With ``--seeds`` every run is a sweep of those
seeds (``<run>/seed<k>/`` and the aggregate, as ``clasr run --seeds`` writes it), each merge of
seed k replaying the task vectors of ``swap/seed<k>``, so ``clasr compare … --paired`` can test
the runs against each other. Prints the dev comparison table and each run's (first seed's)
stored strategy state (``progress/strategy.safetensors``).
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
import yaml
from safetensors.torch import load_file

from clasr.bench.default import DEMO_SPEC
from clasr.bench.demo import bundled_real_speech, demo_config
from clasr.bench.generate import make_benchmark
from clasr.experiment import runner
from clasr.experiment.config import ExperimentConfig, apply_overrides, parse_config
from clasr.experiment.runner import run_experiment
from clasr.experiment.seeds import seed_config
from clasr.report.comparison import comparison_markdown, read_run
from clasr.report.sweep import seed_folder_name, write_sweep_results
from clasr.train import TrainStats

FLOAT32 = {"train.bf16": False}  # as the dev tables were made (AMD CPUs without native bf16: autocast ~5x slower there)
LORA_CENTRALIZE = {"strategy.name": "centralize", "strategy.every": 3, "adapter.type": "lora", "train.learning_rate": 3e-3}
TRAINED = {  # run name → (demo strategy, overrides)
    "swap": ("swap", {}),
    "ft": ("ft", {}),
    "fta": ("fta", {}),
    "centralize-k3-products": ("ft", {**LORA_CENTRALIZE, "strategy.average": "products"}),
    "centralize-k3-factors": ("ft", {**LORA_CENTRALIZE, "strategy.average": "factors"}),
}
MERGES = {  # run name → strategy settings; replayed from the swap run's task vectors
    "ta-0.3": {"name": "task_arithmetic", "scale": 0.3},
    "ta-0.5": {"name": "task_arithmetic", "scale": 0.5},
    "ta-1.0": {"name": "task_arithmetic", "scale": 1.0},
    "ties-k0.2-1.0": {"name": "ties", "top_k": 0.2, "scale": 1.0},
    "ties-k0.2-0.5": {"name": "ties", "top_k": 0.2, "scale": 0.5},
    "dare-p0.9-ta-0.5": {"name": "dare", "drop_rate": 0.9, "merge": "task_arithmetic", "scale": 0.5},
    "dare-p0.9-ties-1.0": {"name": "dare", "drop_rate": 0.9, "merge": "ties", "scale": 1.0},
}
ORDER = [  # most informative first: each finished run is kept, and the table is printed after every run
    "swap", "ta-0.5", "ties-k0.2-1.0", "dare-p0.9-ta-0.5", "ft", "centralize-k3-products", "centralize-k3-factors",
    "fta", "ta-0.3", "ta-1.0", "ties-k0.2-0.5", "dare-p0.9-ties-1.0",
]


def task_vectors(swap_run: Path) -> dict[str, dict[str, torch.Tensor]]:
    """τ_t per task name from a swap run's saved state (keys ``update@<task>@<parameter>``)."""
    vectors: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(swap_run / "progress" / "strategy.safetensors")).items():
        kind, *rest = key.split("@")
        if kind == "update":
            vectors.setdefault(rest[0], {})[rest[1]] = value
    return vectors


@contextmanager
def replayed_training(vectors: dict[str, dict[str, torch.Tensor]]) -> Iterator[None]:
    """Within the block, the runner's training of task t adds τ_t to the model (which the merging
    strategy has just reset to θ_0) instead of training."""

    def replay(model, utterances, *args, description: str = "", **kwargs) -> TrainStats:
        task = next(name for name in vectors if description.endswith(f" {name}"))
        parameters = dict(model.named_parameters())
        with torch.no_grad():
            for name, delta in vectors[task].items():
                parameters[name].add_(delta)
        return TrainStats(optimizer_steps=0, utterances=len(utterances), seconds=0.0)

    original = runner.train_task
    runner.train_task = replay
    try:
        yield
    finally:
        runner.train_task = original


def run_once(config: ExperimentConfig, name: str, swap_run: Path, foundation: Path | None) -> None:
    """One run of ``config``; a merge replays the task vectors of ``swap_run`` (the same seed's swap)."""
    if name in MERGES:
        with replayed_training(task_vectors(swap_run)):
            run_experiment(config, foundation_from=foundation)
    else:
        run_experiment(config, foundation_from=foundation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("results/tune-merging"))
    parser.add_argument("--only", nargs="+", choices=ORDER, help="these runs (swap first when a merge needs it)")
    parser.add_argument("--set", dest="fixed", action="append", default=[], help="KEY.PATH=VALUE for every run")
    parser.add_argument("--seeds", type=int, nargs="+", help="every run a sweep of these seeds")
    args = parser.parse_args()
    fixed = {**FLOAT32, **{k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.fixed)}}
    folders = {d.name: Path(d.folder) for d in make_benchmark(DEMO_SPEC)}
    names = [n for n in ORDER if n in (args.only or ORDER)]
    foundation = None
    for name in names:
        strategy, overrides = TRAINED.get(name, ("ft", {}))
        base = demo_config(DEMO_SPEC, folders, strategy, args.output, real_general=bundled_real_speech(),
                           scored_split="dev").to_plain()
        plain = apply_overrides(base, {**fixed, **overrides, "output_dir": str(args.output / name)})
        if name in MERGES:
            plain["strategy"] = MERGES[name]
        config = parse_config(plain, source=name)
        for seed in args.seeds or [None]:
            seeded = config if seed is None else seed_config(config, seed)
            run_once(seeded, name, args.output / "swap" / ("" if seed is None else seed_folder_name(seed)), foundation)
            foundation = foundation or Path(seeded.output_dir)
        if args.seeds:
            write_sweep_results(args.output / name, args.seeds)
        done = names[: names.index(name) + 1]
        print(comparison_markdown([read_run(n, args.output / n) for n in done]), flush=True)
    for name in names:
        first = args.output / name / (seed_folder_name(args.seeds[0]) if args.seeds else "")
        state = first / "progress" / "strategy.safetensors"
        size = state.stat().st_size / 1e6 if state.exists() else 0.0
        print(f"{name}: strategy state {size:.1f} MB")


if __name__ == "__main__":
    main()
