"""Tune a strategy's options on the demo sequence's dev splits (never the test splits).

    .venv/bin/python benchmarks/tune_on_dev.py ewc --grid strategy.strength=1e4,1e6 [--output results/tune]
        [--spec demo|lengths] [--set KEY.PATH=VALUE …] [--name PREFIX] [--foundation-from results/tune/RUN]
        [--seeds 0 1 2]

Runs the tasks of ``--spec`` in order (the demo's model, training and evaluation settings)
once per grid value, scoring every task's dev split, the synthetic general set's dev split
and the real set's stand-in (the bundled ARCTIC mini set's train split), then prints one
comparison table (Average WER, BWT, learning on dev) and the objective of each value,
J = Average WER + mean general-set change (:mod:`clasr.report.dev_objective`): the value
with the lowest J is the dev choice. ``--spec demo`` is the demo's three domains;
``--spec lengths`` is short commands → an accent → 20–30 s passages
(:mod:`clasr.bench.length_domains`), at Whisper's 30 s window. Since issue 13, item 5 the
demo's settings score at 12 s and train at the fitted window (figures made before were at
8 s). All runs share the first run's
foundation row, or that of ``--foundation-from`` (an earlier tuning run). Runs are named
``PREFIX-<key><value>`` (PREFIX defaults to the strategy; name it when ``--set`` changes the
method, e.g. an adapter). With ``--seeds`` each value is a sweep of those seeds (as ``clasr run
--seeds`` writes it), so ``clasr compare … --paired`` can test the values against each other.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from clasr.bench.default import DEMO_SPEC, DOMAINS, GENERAL_DOMAIN
from clasr.bench.demo import bundled_real_speech, demo_config
from clasr.bench.generate import make_benchmark
from clasr.bench.length_domains import COMMANDS_DOMAIN, PASSAGES_DOMAIN
from clasr.bench.spec import BenchmarkSpec
from clasr.experiment.config import apply_overrides, parse_config
from clasr.experiment.runner import run_experiment
from clasr.experiment.seeds import run_seeds
from clasr.report.comparison import comparison_markdown, read_run
from clasr.report.dev_objective import dev_objective, mean_general_change

LENGTHS_SPEC = BenchmarkSpec(domains=(COMMANDS_DOMAIN, DOMAINS["caribbean"], PASSAGES_DOMAIN), general=(GENERAL_DOMAIN,))
"""Utterances of 1 s, 4 s and 20–30 s in sequence: defaults that hold across lengths (issue 20)."""
SPECS = {  # lengths: trained at the 30 s window, as its documented runs were (the demo now trains at the fitted one)
    "demo": (DEMO_SPEC, {}),
    "lengths": (LENGTHS_SPEC, {"model.window_seconds": 30, "train.encoder_window": "model"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strategy")
    parser.add_argument("--grid", required=True, help="KEY.PATH=V1,V2,… (values read as YAML)")
    parser.add_argument("--set", dest="fixed", action="append", default=[], help="KEY.PATH=VALUE for every run")
    parser.add_argument("--output", type=Path, default=Path("results/tune"))
    parser.add_argument("--spec", choices=sorted(SPECS), default="demo", help="the task sequence tuned on")
    parser.add_argument("--name", help="run-name prefix (default: the strategy)")
    parser.add_argument("--foundation-from", type=Path, help="reuse this tuning run's foundation row")
    parser.add_argument("--seeds", type=int, nargs="+", help="each value a sweep of these seeds")
    args = parser.parse_args()
    key, _, values = args.grid.partition("=")
    spec, spec_settings = SPECS[args.spec]
    fixed = spec_settings | {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.fixed)}
    folders = {d.name: Path(d.folder) for d in make_benchmark(spec)}
    runs = []
    for value in values.split(","):
        base = demo_config(spec, folders, args.strategy, args.output, real_general=bundled_real_speech(),
                           scored_split="dev").to_plain()
        name = f"{args.name or args.strategy}-{key.rsplit('.', 1)[-1]}{value}"
        plain = apply_overrides(base, {**fixed, key: yaml.safe_load(value), "output_dir": str(args.output / name)})
        foundation = args.output / runs[0] if runs else args.foundation_from
        config = parse_config(plain, source="tune")
        if args.seeds:
            run_seeds(config, args.seeds, foundation_from=foundation)
        else:
            run_experiment(config, foundation_from=foundation)
        runs.append(name)
    summaries = [read_run(name, args.output / name) for name in runs]
    print(comparison_markdown(summaries))
    print(objective_markdown(summaries))


def objective_markdown(summaries) -> str:
    """Per run: Average WER, mean general change and J (points); the lowest J marked."""
    scores = {s.name: dev_objective(s.metrics) for s in summaries}
    best = min(scores, key=scores.get)
    lines = ["| run | Avg WER | general change | J = Avg WER + general change |", "|---|---|---|---|"]
    for s in summaries:
        mark = " **(dev choice)**" if s.name == best else ""
        lines.append(f"| {s.name} | {100 * s.metrics['average_wer']:.2f} | {100 * mean_general_change(s.metrics):+.2f} "
                     f"| {100 * scores[s.name]:.2f}{mark} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
