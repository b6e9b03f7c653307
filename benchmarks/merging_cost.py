"""What the merging strategies cost with full fine-tuning of real tiny.en: the saved strategy state
and the time of the merge after each task (no training: each task vector is a seeded random
step of every trainable parameter, which costs the merge what a trained one does).

    .venv/bin/python benchmarks/merging_cost.py [--tasks 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from clasr.models.whisper import load_whisper
from clasr.strategies.base import TaskContext
from clasr.strategies.dare import Dare, DareConfig
from clasr.strategies.task_arithmetic import TaskArithmetic, TaskArithmeticConfig
from clasr.strategies.ties import Ties, TiesConfig

STRATEGIES = {
    "task_arithmetic": lambda: TaskArithmetic(TaskArithmeticConfig()),
    "ties (k 0.2)": lambda: Ties(TiesConfig()),
    "dare (p 0.9) + ties": lambda: Dare(DareConfig(merge="ties")),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3)
    args = parser.parse_args()
    model = load_whisper("tiny.en").model
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"tiny.en: {trained:,} trainable parameters ({trained * 4 / 1e6:.1f} MB float32); torch threads {torch.get_num_threads()}")
    print("| strategy | merge seconds per task (tasks 1..T) | saved state after T tasks | per-task vectors kept instead |")
    print("|---|---|---|---|")
    for name, make in STRATEGIES.items():
        strategy, seconds = make(), []
        for index in range(1, args.tasks + 1):
            task = TaskContext(index, f"t{index}", [], None, index)
            strategy.before_task(model, task)
            generator = torch.Generator().manual_seed(index)
            with torch.no_grad():
                for p in model.parameters():
                    if p.requires_grad:
                        p.add_(1e-3 * torch.randn(p.shape, generator=generator))
            start = time.perf_counter()
            strategy.after_task(model, task)
            seconds.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "strategy.safetensors"
            save_file({k: v.contiguous() for k, v in strategy.state_dict().items()}, str(path))
            size = path.stat().st_size / 1e6
        per_task = (1 + args.tasks) * trained * 4 / 1e6
        print(f"| {name} | {' / '.join(f'{s:.1f}' for s in seconds)} | {size:.0f} MB | {per_task:.0f} MB (θ_0 + {args.tasks} τ) |")
        strategy.before_task(model, TaskContext(args.tasks + 1, "reset", [], None, 0))  # back to θ_0


if __name__ == "__main__":
    main()
