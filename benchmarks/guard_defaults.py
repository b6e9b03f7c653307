"""Choose the guard's defaults on dev: replay recorded ``warn`` runs under every candidate setting.

    .venv/bin/python benchmarks/guard_defaults.py results/guard-dev-lora results/guard-dev-ft \
        [--signal guard_a --signal guard_a,guard_b] [--kind error_rate --kind loss] [--heldout heldout] [--top 12]

Each RUN is ``examples/an4_short_guard_dev.yaml`` (or any run whose guard was ``warn``, whose
guarded sets include the signal sets, a held-out dev set and ``dev_<task>`` for each task).
For each candidate — mode off / stop / rollback, kind (the guard's ``signal``: the error
rate, or the reference loss, which runs record since it existed), threshold, every_steps
(multiples of the recorded interval) and signal sets (the guarded sets pooled: ``guard_a``
is 8 utterances, ``guard_a,guard_b`` 16) — :func:`clasr.report.guard_replay.replay` gives
the step each task would have kept, and the objective reads the recording (always the error
rates) there:

    J = mean over runs and tasks of [ E_dev_task(k_kept) + (E_heldout(k_kept) − E_heldout(0)) ]

the task's dev error rate (what it learned) plus the rise of the held-out general dev set
(what it broke), both in points, equally weighted. The held-out set is never the guard's
signal, and no test set is read. Lower is better; ties go to the cheaper setting (fewer
decodes). Every task is replayed from the recorded guard-off trajectory (exact for task 1;
see the module's caveat for later tasks).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from clasr.experiment.config import load_config
from clasr.experiment.sets import load_sets
from clasr.metrics.text import get_normalizer
from clasr.report.guard import read_guard
from clasr.report.guard_replay import GuardSignal, recorded_steps, replay

THRESHOLDS = {"error_rate": (0.02, 0.05, 0.10, 0.20), "loss": (0.02, 0.05, 0.10, 0.20, 0.50, 1.00)}  # points / nats per token


def signal(run: Path, names: list[str], kind: str, record: list[dict]) -> tuple[GuardSignal, int]:
    """The pooled signal of the guarded sets ``names`` (weights: each one's normalized
    reference word count for the error rate, its scored token count for the loss) and its
    utterance count."""
    sets = {s.name: s for s in load_sets(load_config(run / "config.yaml")).guard}
    missing = [n for n in names if n not in sets]
    if missing:
        raise SystemExit(f"{run}: no guarded set {missing[0]!r} (guarded: {', '.join(sets)})")
    if kind == "loss":
        if not all(n in record[0].get("tokens", {}) for n in names):
            raise SystemExit(f"{run}: the recording has no reference loss of {', '.join(names)} (recorded before it existed?)")
        weights = {n: record[0]["tokens"][n] for n in names}
    else:
        weights = {n: sum(len(get_normalizer(sets[n].normalizer)(u.text).split()) for u in sets[n].utterances) for n in names}
    return GuardSignal(weights, kind), sum(len(sets[n].utterances) for n in names)


def outcome(entry: dict, step: int, heldout: str) -> tuple[float, float]:
    """(the task's dev error rate, the held-out set's rise over the task's start) at ``step`` (error rates)."""
    curve = recorded_steps(entry)
    task = entry["label"].removeprefix("after ")
    return curve[step][f"dev_{task}"], curve[step][heldout] - curve[0][heldout]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--signal", action="append", help="guarded sets pooled as the guard's signal (comma-separated)")
    parser.add_argument("--kind", action="append", choices=sorted(THRESHOLDS), help="the guard's signal (default: both)")
    parser.add_argument("--heldout", default="heldout")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    signals = [s.split(",") for s in (args.signal or ["guard_a", "guard_a,guard_b"])]
    records = {run: read_guard(run) for run in args.runs}
    for run, record in records.items():
        if not record or any(e["mode"] != "warn" for e in record):
            raise SystemExit(f"{run}: needs a guard.json of a warn run (the guard-off trajectory)")
    interval = min(e["every_steps"] for r in records.values() for e in r)
    rows = []
    for kind, names in itertools.product(args.kind or sorted(THRESHOLDS), signals):
        signals_by_run = {run: signal(run, names, kind, record) for run, record in records.items()}
        pooled = {run: pooled for run, (pooled, _) in signals_by_run.items()}
        utterances = signals_by_run[args.runs[0]][1]
        label = f"{kind} of {'+'.join(names)}"
        for mode, threshold, every in itertools.product(("stop", "rollback"), THRESHOLDS[kind], (interval, 2 * interval, 3 * interval)):
            rows.append(_score(records, pooled, args.heldout, label, utterances, mode, threshold, every))
        if not any(r["mode"] == "off" for r in rows):
            rows.append(_score(records, pooled, args.heldout, label, 0, "off", 0.0, interval))
    rows.sort(key=lambda r: (round(r["J"], 9), r["decodes"]))
    runs = " / ".join(run.name for run in records)
    print(f"| mode | threshold | every | signal (utts) | J | J per run ({runs}) | task dev WER | held-out rise | kept steps | utts scored/task |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    shown = rows[: args.top] + [r for r in rows[args.top:] if r["mode"] == "off"][:1]
    for r in shown:
        print(f"| {r['mode']} | {r['threshold']:.2f} | {r['every']} | {r['signal']} ({r['utterances']}) | {100 * r['J']:.2f} | "
              f"{r['per_run']} | {100 * r['dev']:.2f} | {100 * r['rise']:+.2f} | {r['kept']} | {r['decodes']:.0f} |")


def _score(records, signals, heldout, signal, utterances, mode, threshold, every) -> dict:
    dev, rise, kept, checks, per_run = [], [], [], [], []
    for run, record in records.items():
        run_j = []
        for entry in record:
            done = replay(entry, signals[run], mode, threshold, every)
            d, r = outcome(entry, done.kept, heldout)
            dev.append(d)
            rise.append(r)
            run_j.append(d + r)
            kept.append(done.kept)
            checks.append(done.checks)
        per_run.append(f"{100 * sum(run_j) / len(run_j):.1f}")
    n = len(dev)
    return {
        "mode": mode, "threshold": threshold, "every": every, "signal": signal if mode != "off" else "—",
        "utterances": utterances, "J": (sum(dev) + sum(rise)) / n, "per_run": " / ".join(per_run),
        "dev": sum(dev) / n, "rise": sum(rise) / n, "kept": "/".join(map(str, kept)), "decodes": utterances * sum(checks) / n,
    }


if __name__ == "__main__":
    main()
