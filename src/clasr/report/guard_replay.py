"""Replay a recorded guard curve under other guard settings, to choose the guard's defaults on dev.

A run with ``guard: warn`` never intervenes, so its ``guard.json`` curve is the whole
guard-off trajectory of each task: every guarded set's error rate E_s(k) at each checked
step k. Any setting whose checks fall on recorded steps (``every_steps`` a multiple of the
recorded interval; the last step is always recorded) sees exactly that curve until it acts,
so what it would have done — the step whose weights it keeps,

    k_kept = the last step                               (off, warn, or never triggered)
           = k_trig, the first checked k with E_g(k) − E_g(0) > threshold      (stop)
           = argmin over checked k ≤ k_trig of E_g(k), the latest of equal ones (rollback)

— follows from the curve alone. The decision runs through :class:`clasr.guard.TaskGuard`
itself (a scorer that reads the curve), so the replay cannot drift from the guard. The
signal E_g is the guard's, either recorded quantity — the error rate or the reference loss
(a ``warn`` run records both at every check) — of one recorded set, or of several
recorded sets pooled as one set of all their utterances (a corpus error rate
Σ rate_s · words_s / Σ words_s, or the mean loss over all their tokens
Σ loss_s · tokens_s / Σ tokens_s), so that a run that guarded two halves of 8 utterances
replays 8 and 16. Other recorded sets (a held-out dev set, each task's dev split) are read at
k_kept to score the outcome.

Exact for a task that starts from the recorded trajectory: the first task, and a later task
only if the setting did not end an earlier one early (a rollback changes where the next task
starts, which a recording cannot show).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from clasr.guard import GuardConfig, GuardedSet, TaskGuard
from clasr.report.guard import curve_losses, curve_rates

REPLAY_MODES = ("off", "stop", "rollback")


@dataclass(frozen=True)
class GuardSignal:
    """The sets the replayed guard watches, pooled as one set: name → its weight (reference
    word count for the error rate, scored token count for the loss), and which quantity."""

    weights: Mapping[str, int]
    kind: str = "error_rate"

    def rate(self, rates: Mapping[str, float]) -> float:
        """Σ_s value_s · weight_s / Σ_s weight_s (the pooled utterances' corpus error rate, or mean token loss)."""
        return sum(rates[s] * n for s, n in self.weights.items()) / sum(self.weights.values())


def recorded_steps(entry: dict, kind: str = "error_rate") -> dict[int, dict[str, float]]:
    """One ``guard.json`` entry's curve: step → error rate (or reference loss) per recorded set."""
    read = curve_rates if kind == "error_rate" else curve_losses
    curve = {check["step"]: read(check) for check in entry["curve"]}
    if not all(curve.values()):
        raise ValueError(f"{entry.get('label', 'a task')}: the recording has no {kind.replace('_', ' ')} at every checked step")
    return curve


@dataclass(frozen=True)
class Replay:
    """What a replayed guard did in one task: the step whose weights it kept, the step where
    the task ended, and how many times it scored its signal (0 when off)."""

    kept: int
    ended: int
    checks: int


def replay(entry: dict, signal: GuardSignal, mode: str, threshold: float, every_steps: int) -> Replay:
    """What a guard of ``mode``, ``threshold`` and ``every_steps`` on ``signal`` would have
    done, replayed on a recorded (never intervening) ``entry`` of ``guard.json``."""
    if mode not in REPLAY_MODES:
        raise ValueError(f"mode {mode!r}: replay one of {', '.join(REPLAY_MODES)}")
    curve = recorded_steps(entry, signal.kind)
    last = max(curve)
    if mode == "off":
        return Replay(last, last, 0)
    missing = [k for k in range(0, last, every_steps) if k not in curve]
    if missing:
        raise ValueError(
            f"{entry.get('label', 'a task')}: every_steps {every_steps} checks step {missing[0]}, "
            f"which the recording (steps {sorted(curve)}) did not score"
        )
    at = {"step": 0}
    guard = TaskGuard(
        GuardConfig(mode=mode, signal=signal.kind, threshold=threshold, every_steps=every_steps),
        torch.nn.Linear(1, 1),  # the replay only needs what the guard decides, not weights
        [GuardedSet("signal", [], "none")],
        scorer=lambda _: signal.rate(curve[at["step"]]),
        log=lambda _: None,
        loss_scorer=lambda _: (signal.rate(curve[at["step"]]), 0),
    )
    guard.start()
    for step in range(1, last + 1):
        at["step"] = step
        if guard.after_step(step, last=step == last):
            return Replay(guard.rolled_back_to if mode == "rollback" else step, step, len(guard.curve))
    return Replay(last, last, len(guard.curve))
