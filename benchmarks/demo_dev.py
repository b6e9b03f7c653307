"""The demo on its dev splits: how its settings were chosen (issue 13, item 5).

    .venv/bin/python benchmarks/demo_dev.py --output results/demo-dev-e2 [--epochs 2] [--window 12]
        [--training-window fitted] [--strategy ft --strategy fta --strategy ihr]

Runs ``clasr demo``'s strategies over the demo's domains scored on their dev splits (the
real set's train split, never trained on, stands in for its test split) with the demo's
settings but for the options given, and writes the demo's report, headline test included, to
``OUTPUT/report/``. Never scores a test split.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from clasr.bench.default import DEMO_EXPERIMENT, DEMO_SPEC, DEMO_STRATEGIES
from clasr.bench.demo import bundled_real_speech, run_demo, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--window", type=float, default=DEMO_EXPERIMENT["model"]["window_seconds"])
    parser.add_argument("--epochs", type=int, default=DEMO_EXPERIMENT["train"]["epochs"])
    parser.add_argument("--training-window", choices=("model", "fitted"),
                        default=DEMO_EXPERIMENT["train"].get("encoder_window", "model"))
    parser.add_argument("--strategy", action="append", dest="strategies")
    args = parser.parse_args()
    settings = copy.deepcopy(DEMO_EXPERIMENT)
    settings["model"]["window_seconds"] = args.window
    settings["train"] |= {"epochs": args.epochs, "encoder_window": args.training_window}
    strategies = tuple(args.strategies or DEMO_STRATEGIES)
    runs = run_demo(args.output, strategies, DEMO_SPEC, settings=settings, real_general=bundled_real_speech(),
                    scored_split="dev")
    print(f"report: {write_report(runs, DEMO_SPEC, args.output, settings) / 'README.md'}")


if __name__ == "__main__":
    main()
