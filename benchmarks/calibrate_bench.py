"""Calibrate the built-in benchmark's domains: which ones are worth a task in the demo?

    .venv/bin/python benchmarks/calibrate_bench.py [--output results/calibration] [--lr 1e-5 ...]

Generates every candidate domain (``clasr.bench.default.CANDIDATE_DOMAINS``), then for each
one and each learning rate fine-tunes tiny.en on that domain alone, from the foundation
model, with the demo's settings, and scores the domain's **dev** split and the general set
before and after (never the test splits). Prints one line per (domain, lr): zero-shot dev
WER, dev WER after fine-tuning, general WER before → after. A domain is worth keeping when
zero-shot is clearly above what fine-tuning reaches (something to learn) and the general
set gets worse (fine-tuning forgets).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

from clasr.bench.default import CALIBRATION_SPEC, DEMO_EXPERIMENT, GENERAL_DOMAIN
from clasr.bench.generate import make_benchmark
from clasr.experiment.config import parse_config
from clasr.experiment.runner import run_experiment
from clasr.report.results import read_results


def calibration_config(domain: str, folders: dict[str, Path], lr: float, output: Path) -> dict:
    plain = copy.deepcopy(DEMO_EXPERIMENT)
    plain["train"]["learning_rate"] = lr
    plain.update(
        name=f"calibrate-{domain}",
        output_dir=str(output / f"{domain}-lr{lr:g}"),
        strategy={"name": "ft"},
        tasks=[{"name": domain, "data": str(folders[domain]), "train": {"split": "train"}, "test": {"split": "dev"}}],
        general=[{"name": GENERAL_DOMAIN.name, "data": str(folders[GENERAL_DOMAIN.name]), "test": {"split": "test"}}],
    )
    return plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("results/calibration"))
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-5])
    parser.add_argument("--domains", nargs="*", help="candidate names (default: all)")
    args = parser.parse_args()
    folders = {domain.name: Path(domain.folder) for domain in make_benchmark(CALIBRATION_SPEC)}
    names = args.domains or [d.name for d in CALIBRATION_SPEC.domains]
    lines = []
    for name in names:
        for lr in args.lr:
            start = time.perf_counter()
            config = parse_config(calibration_config(name, folders, lr, args.output), source="calibration")
            run_experiment(config)
            matrix, _ = read_results(config.output_dir)
            general = matrix["general_wer"][GENERAL_DOMAIN.name]
            line = {
                "domain": name, "lr": lr, "zero_shot_dev": matrix["wer"][0][0], "ft_dev": matrix["wer"][1][0],
                "general_before": general[0], "general_after": general[1],
                "seconds": round(time.perf_counter() - start, 1),
            }
            lines.append(line)
            print(json.dumps(line), flush=True)
    print("\n| domain | lr | zero-shot dev WER | FT dev WER | general WER before → after |")
    print("|---|---|---|---|---|")
    for l in lines:
        print(f"| {l['domain']} | {l['lr']:g} | {100 * l['zero_shot_dev']:.1f} | {100 * l['ft_dev']:.1f} | "
              f"{100 * l['general_before']:.1f} → {100 * l['general_after']:.1f} |")


if __name__ == "__main__":
    main()
