"""Each strategy's own work next to its training, per task, from finished results folders.

    .venv/bin/python benchmarks/strategy_overhead.py results/an4_then_arctic-{ft,ihr,ewc,er} \
        [--baseline results/an4_then_arctic-ft]

One Markdown row per run and task: training seconds and optimizer steps, the strategy's
before/after-task seconds (curvature, Fisher, merge, …) and their share of that task's
training, training time relative to the baseline run's same task (replay and joint training
pay in training, not in after-task work), and what the strategy keeps (factor or state bytes,
stored utterances, stored values). Timings come from each run's own state: compare runs only
where they ran under the same load.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MEMORY_FACTS = ("factor_memory_bytes", "state_bytes", "stored_utterances", "stored_values")


def task_rows(folder: Path) -> list[dict]:
    state = json.loads((folder / "progress" / "state.json").read_text(encoding="utf-8"))
    return [row for row in state["rows"][1:] if row.get("train")]


def kept(facts: dict) -> str:
    parts = []
    for key in MEMORY_FACTS:
        if key in facts:
            value = facts[key]
            parts.append(f"{value / 1e6:.0f} MB" if key.endswith("bytes") else f"{value:,} {key.split('_')[1]}")
    return ", ".join(parts) or "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--baseline", type=Path, help="run whose per-task training time is the 1.00×")
    args = parser.parse_args()
    baseline = [row["train"]["seconds"] for row in task_rows(args.baseline)] if args.baseline else []
    print("| run | task | steps | training | strategy's work | share | training vs baseline | kept |")
    print("|---|---|---|---|---|---|---|---|")
    for folder in args.runs:
        for i, row in enumerate(task_rows(folder)):
            train = row["train"]["seconds"]
            extra = sum((row.get("strategy_seconds") or {}).values())
            ratio = f"{train / baseline[i]:.2f}×" if i < len(baseline) else "—"
            print(
                f"| {folder.name} | {row['label'].removeprefix('after ')} | {row['train']['optimizer_steps']} "
                f"| {train:.0f} s | {extra:.1f} s | {100 * extra / train:.1f} % | {ratio} "
                f"| {kept(row.get('strategy') or {})} |"
            )


if __name__ == "__main__":
    main()
