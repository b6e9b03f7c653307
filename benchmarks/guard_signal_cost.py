"""What one guard check costs with each signal: decoding (the error rate) against the reference
loss (teacher forcing, no decoding), on the same guarded sets and model, in one run.

    .venv/bin/python benchmarks/guard_signal_cost.py [examples/an4_short_sequence.yaml] [--repeats 3] [--utterances 16]

Loads the config's model and its guarded sets (the guard switched on at ``--utterances`` per
set) and times the two scorers the runner gives the guard (:func:`clasr.experiment.runner.guard_scorer`
and :func:`~clasr.experiment.runner.guard_loss_scorer`), alternating, ``--repeats`` times after
one warm-up of each, each check after a tiny change of the weights (as in training, where
CTranslate2 converts the current weights at every check); prints the median seconds of a check
with each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from clasr.experiment.config import ConfigError, load_config
from clasr.experiment.runner import guard_loss_scorer, guard_scorer
from clasr.experiment.sets import load_sets
from clasr.models.whisper import load_whisper


def step_weights(model: torch.nn.Module) -> None:
    """A tiny change of one weight, as a training step makes: a decoding engine that converts the
    current weights (CTranslate2) must convert them again, as it does at every guard check."""
    with torch.no_grad():
        model.proj_out.weight[0, 0] += 1e-6


def check_seconds(scorer, sets, model: torch.nn.Module) -> float:
    step_weights(model)
    start = time.perf_counter()
    for guarded_set in sets:
        scorer(guarded_set)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, nargs="?", default=Path("examples/an4_short_sequence.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--utterances", type=int, default=16)
    args = parser.parse_args()
    if args.repeats < 1 or args.utterances < 1:
        raise SystemExit(f"--repeats and --utterances must be ≥ 1, got {args.repeats} and {args.utterances}")
    try:
        config = load_config(args.config, {"guard": {"mode": "warn", "utterances": args.utterances}})
    except ConfigError as error:
        raise SystemExit(f"{error}") from None
    sets = load_sets(config).guard
    bundle = load_whisper(config.model.name, config.model.window_seconds)
    scorers = {"error rate (decoding)": guard_scorer(bundle, config), "reference loss": guard_loss_scorer(bundle, config)}
    times = {name: [] for name in scorers}
    for repeat in range(args.repeats + 1):
        for name, scorer in scorers.items():
            seconds = check_seconds(scorer, sets, bundle.model)
            if repeat:  # the first round warms up
                times[name].append(seconds)
    utterances = sum(len(s.utterances) for s in sets)
    print(f"{args.config}: {config.model.name}, guarded sets {', '.join(s.name for s in sets)} ({utterances} utterances)")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"{name:>22}: {median:.2f} s a check (median of {args.repeats}; {1000 * median / utterances:.0f} ms an utterance)")
    print(f"ratio decoding / loss: {medians['error rate (decoding)'] / medians['reference loss']:.1f}")


if __name__ == "__main__":
    main()
