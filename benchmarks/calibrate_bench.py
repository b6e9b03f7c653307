"""Calibrate the built-in benchmark's domains: which ones are worth a task in the demo?

    .venv/bin/python benchmarks/calibrate_bench.py [--output results/calibration] [--lr 1e-5 3e-5] [--domains ...]

Generates every domain of the built-in benchmark, then for each domain and learning rate
fine-tunes tiny.en on that domain alone, from the foundation model, with the demo's other
settings, and scores **dev** splits only (never the test splits): the domain's dev split,
the synthetic general set's dev split and, from a clone, the bundled real-speech set's
train split (never trained on). Prints one line per (domain, lr): zero-shot dev WER, dev
WER after fine-tuning, general WER before → after. A domain is worth a task when zero-shot
is clearly above what fine-tuning reaches; the learning rate is the one with the lower
dev WER after fine-tuning.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

from clasr.bench.default import DEFAULT_SPEC, DEMO_EXPERIMENT
from clasr.bench.demo import REAL_GENERAL_NAME, bundled_real_speech, demo_config
from clasr.bench.generate import make_benchmark
from clasr.bench.spec import BenchmarkSpec
from clasr.experiment.runner import run_experiment
from clasr.report.results import read_results


def calibrate(name: str, lr: float, folders: dict[str, Path], output: Path) -> dict:
    domain = next(d for d in DEFAULT_SPEC.domains if d.name == name)
    spec = BenchmarkSpec(domains=(domain,), general=DEFAULT_SPEC.general)
    settings = copy.deepcopy(DEMO_EXPERIMENT)
    settings["train"]["learning_rate"] = lr
    config = demo_config(spec, folders, "ft", output / f"{name}-lr{lr:g}", settings, bundled_real_speech(), "dev")
    start = time.perf_counter()
    run_experiment(config)
    matrix, _ = read_results(config.output_dir)
    general = {g: [matrix["general_wer"][g][0], matrix["general_wer"][g][1]] for g in matrix["general"]}
    return {"domain": name, "lr": lr, "zero_shot_dev": matrix["wer"][0][0], "ft_dev": matrix["wer"][1][0],
            "general_before_after": general, "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("results/calibration"))
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-5, 3e-5])
    parser.add_argument("--domains", nargs="*", help="domain names (default: all)")
    args = parser.parse_args()
    folders = {domain.name: Path(domain.folder) for domain in make_benchmark(DEFAULT_SPEC)}
    lines = []
    for name in args.domains or [d.name for d in DEFAULT_SPEC.domains]:
        for lr in args.lr:
            lines.append(calibrate(name, lr, folders, args.output / "ft"))
            print(json.dumps(lines[-1]), flush=True)
    general_names = list(lines[0]["general_before_after"])
    print("\n| domain | lr | zero-shot dev WER | FT dev WER | " + " | ".join(f"{g} before → after" for g in general_names) + " |")
    print("|---|---|---|---|" + "---|" * len(general_names))
    for line in lines:
        general = " | ".join(f"{100 * b:.1f} → {100 * a:.1f}" for b, a in line["general_before_after"].values())
        print(f"| {line['domain']} | {line['lr']:g} | {100 * line['zero_shot_dev']:.1f} | {100 * line['ft_dev']:.1f} | {general} |")
    print(f"\n({REAL_GENERAL_NAME}: the bundled ARCTIC mini set's train split, never trained on)")


if __name__ == "__main__":
    main()
