"""The general-ability guard: watch what the foundation model could already do while a task trains.

Strategies protect past *tasks*; nothing else looks at the general sets during training, and a
task can wreck them within a few steps (sequential LoRA on one-word commands learned to stop
after the first word of any sentence). The guard scores a few dozen utterances of each
guarded set ``s`` (a general set's ``dev`` selection, or ``anchor``: data the user names) with the model being trained, at the
task's start (step 0), every ``every_steps`` optimizer steps and at the task's last step:

    rise_s(k) = E_s(k) − E_s(0)
    triggered at the first checked step k with max_s rise_s(k) > threshold

where E_s is the set's error rate in its own metric, as the set is scored in the matrix: WER,
CER without spaces for languages written without them (zh, ja, …), or MER for code-switched
sets.

and then, by ``mode``: ``warn`` logs and trains on; ``stop`` ends the task at step k;
``rollback`` puts back the trainable parameters of the task's best checked step

    k* = argmin_k mean_s E_s(k)   (the latest of equal steps; k* = 0 is the task's start)

and ends the task there. Only the trainable parameters move within a task (an adapter's own
parameters, or the fine-tuned ones), so they alone are kept in memory; the optimizer state is
not, since the task ends at the rollback. Scoring runs under a forked RNG, so a guard that never
triggers leaves training bit-identical to a run without it. What the guard saw and did —
the curve (step, error rate per set, each set's metric), the trigger step, where it stopped or rolled back to, and its
time — is the task's :meth:`TaskGuard.facts`.

The guard watches the model as trained (θ̃ within the task), whatever the strategy later
deploys; it knows nothing about strategies or adapters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Callable, Literal, Sequence

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from clasr.data.selection import Selection
from clasr.metrics.text import check_normalizer
from clasr.metrics.wer import check_metric
from clasr.models.language import check_language_code

GUARD_MODES = ("off", "warn", "stop", "rollback")


class GuardAnchor(Selection):
    """Data the user names for the guard besides (or instead of) the general sets' dev
    selections — a dataset folder (relative to the config file), a selection of its rows, and
    how it is scored (by default as a general set in its language is)."""

    data: Path
    language: Annotated[str, AfterValidator(check_language_code)] | None = None
    normalizer: Annotated[str, AfterValidator(check_normalizer)] | None = None
    metric: Annotated[str, AfterValidator(check_metric)] | None = None

    def selection(self) -> Selection:
        return Selection(**self.model_dump(exclude={"data", "language", "normalizer", "metric"}))


class GuardConfig(BaseModel):
    """The ``guard:`` section of an experiment (``guard: rollback`` is short for ``{mode: rollback}``).

    The defaults when on (``stop``, 10 points, every 5 steps, 16 utterances) were chosen on dev
    (``examples/an4_short_guard_dev.yaml`` replayed by ``benchmarks/guard_defaults.py``): no
    setting lowered the dev objective below the guard off, every setting that triggered raised
    it, ``rollback`` most (its best step was the task's start, so the task learned nothing),
    and 10 points was the lowest threshold that never triggered on 16 utterances. The guard
    stays off unless set."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["warn", "stop", "rollback"] = "stop"
    every_steps: int = Field(5, ge=1, description="optimizer steps between two checks")
    threshold: float = Field(
        0.10, ge=0,
        description="rise of a guarded set's error rate (its metric: WER, CER…) over the task's start that triggers (0.05 = 5 points)",
    )
    utterances: int = Field(16, ge=1, description="at most this many utterances of each guarded set (the first ones)")
    sets: list[str] | None = Field(
        None, description="general sets whose dev selection is guarded; default: every one with a dev ([] with an anchor: none)"
    )
    anchor: GuardAnchor | None = Field(
        None, description="data of your own the guard also scores, as the guarded set 'anchor' ({data, split, …})"
    )


@dataclass
class GuardedSet:
    """A set the guard scores: its name (the general set's), utterances, and how they are
    decoded and scored (as the general set's test: its language, normalizer and metric)."""

    name: str
    utterances: list
    normalizer: str
    language: str = "en"
    metric: str = "wer"


Scorer = Callable[[GuardedSet], float]  # error rate (the set's metric) of the model as it is now


@dataclass
class _Check:
    step: int
    rates: dict[str, float]  # guarded set → its error rate

    @property
    def mean(self) -> float:
        return sum(self.rates.values()) / len(self.rates)


@dataclass
class TaskGuard:
    """One task's guard: :meth:`start` before the first step, then :meth:`after_step` as
    ``train_task``'s step callback."""

    config: GuardConfig
    model: torch.nn.Module
    sets: Sequence[GuardedSet]
    scorer: Scorer
    log: Callable[[str], None] = print
    curve: list[_Check] = field(default_factory=list)
    triggered_at: int | None = None
    ended_at: int | None = None
    rolled_back_to: int | None = None
    seconds: float = 0.0
    _best: _Check | None = field(default=None, init=False, repr=False)
    _best_parameters: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)  # rollback only

    def start(self) -> None:
        """Score the task's start (step 0): the reference of every rise, and the first best step."""
        self.log(f"guard at the task's start: {self._describe(self._check(0))}")

    def after_step(self, step: int, last: bool) -> bool:
        """Check at every ``every_steps``-th step and at the last one; True ends the task now."""
        if self.ended_at is not None or not (step % self.config.every_steps == 0 or last):
            return False
        check = self._check(step)
        rise = max(check.rates[s] - self.curve[0].rates[s] for s in check.rates)
        if rise <= self.config.threshold:
            self.log(f"guard at step {step}: {self._describe(check)} (start: {self._describe(self.curve[0])})")
            return False
        if self.triggered_at is None:
            self.triggered_at = step
        self.log(
            f"guard: a general set's error rate rose {100 * rise:.1f} points over the task's start at step {step} "
            f"(threshold {100 * self.config.threshold:.1f}): {self._describe(check)}"
        )
        if self.config.mode == "warn":
            return False
        self.ended_at = step
        if self.config.mode == "rollback":
            self._roll_back()
        return True

    def facts(self) -> dict:
        """What the guard saw and did in this task (plain JSON)."""
        return {
            "mode": self.config.mode,
            "threshold": self.config.threshold,
            "every_steps": self.config.every_steps,
            "sets": {s.name: len(s.utterances) for s in self.sets},
            "metrics": {s.name: s.metric for s in self.sets},
            "curve": [{"step": c.step, "error_rate": c.rates} for c in self.curve],
            "triggered_at": self.triggered_at,
            "ended_at": self.ended_at,
            "rolled_back_to": self.rolled_back_to,
            "seconds": round(self.seconds, 3),
        }

    def _check(self, step: int) -> _Check:
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # scoring must not shift the training's random stream
            check = _Check(step, {s.name: float(self.scorer(s)) for s in self.sets})
        self.curve.append(check)
        if self._best is None or check.mean <= self._best.mean:
            self._best = check
            if self.config.mode == "rollback":
                self._best_parameters = {
                    name: p.detach().clone() for name, p in self.model.named_parameters() if p.requires_grad
                }
        self.seconds += time.perf_counter() - start
        return check

    def _roll_back(self) -> None:
        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, saved in self._best_parameters.items():
                named[name].copy_(saved)
        self.rolled_back_to = self._best.step
        self.log(f"guard: rolled back to step {self._best.step} ({self._describe(self._best)}); task ends")

    def _describe(self, check: _Check) -> str:
        metrics = {s.name: s.metric for s in self.sets}
        return ", ".join(f"{name} {metrics[name].upper()} {100 * rate:.1f}%" for name, rate in check.rates.items())
