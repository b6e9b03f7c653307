"""The general-ability guard: watch what the foundation model could already do while a task trains.

Strategies protect past *tasks*; nothing else looks at the general sets during training, and a
task can wreck them within a few steps (sequential LoRA on one-word commands learned to stop
after the first word of any sentence). The guard scores a few dozen utterances of each
guarded set ``s`` (a general set's ``dev`` selection, or ``anchor``: data the user names) with the model being trained, at the
task's start (step 0), every ``every_steps`` optimizer steps and at the task's last step:

    rise_s(k) = E_s(k) − E_s(0)
    triggered at the first checked step k with max_s rise_s(k) > threshold

where E_s is the guard's ``signal`` on set s: by default its error rate in its own metric, as
the set is scored in the matrix (WER, CER without spaces for languages written without them
(zh, ja, …), or MER for code-switched sets); with ``signal: loss``, the mean token loss of its
reference transcripts under teacher forcing (nats per token, :mod:`clasr.reference_loss`),
which needs no decoding. A check measures the signal alone, except in ``warn`` mode, which
records both (the loss when a loss scorer is given), so that a ``warn`` run's curve can be
replayed under either signal without doubling the cost of a guard that acts.

and then, by ``mode``: ``warn`` logs and trains on; ``stop`` ends the task at step k;
``rollback`` puts back the trainable parameters of the task's best checked step

    k* = argmin_k mean_s E_s(k)   (the latest of equal steps; k* = 0 is the task's start; E the signal)

and ends the task there. Only the trainable parameters move within a task (an adapter's own
parameters, or the fine-tuned ones), so they alone are kept in memory; the optimizer state is
not, since the task ends at the rollback. Scoring runs under a forked RNG, so a guard that never
triggers leaves training bit-identical to a run without it. What the guard saw and did —
the curve (step, error rate and loss per set, each set's metric and token count), the trigger
step, where it stopped or rolled back to, and its time — is the task's :meth:`TaskGuard.facts`.

The guard watches the model as trained (θ̃ within the task), whatever the strategy later
deploys; it knows nothing about strategies or adapters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Callable, Literal, Sequence

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from clasr.data.selection import Selection
from clasr.metrics.text import check_normalizer
from clasr.metrics.wer import check_metric
from clasr.models.language import check_language_code

GUARD_MODES = ("off", "warn", "stop", "rollback")
GUARD_SIGNALS = ("error_rate", "loss")
DEFAULT_THRESHOLDS = {"error_rate": 0.10}


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
    signal: Literal["error_rate", "loss"] = Field(
        "error_rate", description="what the threshold watches: each guarded set's error rate (decoded) or reference loss (no decoding)"
    )
    every_steps: int = Field(5, ge=1, description="optimizer steps between two checks")
    threshold: float | None = Field(
        None, ge=0,
        description="rise of the signal over the task's start that triggers: error rate (its metric: WER, CER…; "
        "0.05 = 5 points) or loss (nats per token); default by signal",
    )
    utterances: int = Field(16, ge=1, description="at most this many utterances of each guarded set (the first ones)")
    sets: list[str] | None = Field(
        None, description="general sets whose dev selection is guarded; default: every one with a dev ([] with an anchor: none)"
    )
    anchor: GuardAnchor | None = Field(
        None, description="data of your own the guard also scores, as the guarded set 'anchor' ({data, split, …})"
    )

    @model_validator(mode="after")
    def _threshold_of_the_signal(self) -> "GuardConfig":
        if self.threshold is None:
            if self.signal not in DEFAULT_THRESHOLDS:
                raise ValueError(f"guard.threshold: signal {self.signal!r} has no default threshold; set one")
            self.threshold = DEFAULT_THRESHOLDS[self.signal]
        return self


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
LossScorer = Callable[[GuardedSet], tuple[float, int]]  # (reference loss in nats per token, tokens scored)


@dataclass
class _Check:
    step: int
    rates: dict[str, float]  # guarded set → its error rate ({} when only the loss is measured)
    losses: dict[str, float]  # guarded set → its reference loss ({} without a loss scorer)

    def signal(self, signal: str) -> dict[str, float]:
        return self.rates if signal == "error_rate" else self.losses

    def mean(self, signal: str) -> float:
        values = self.signal(signal)
        return sum(values.values()) / len(values)


@dataclass
class TaskGuard:
    """One task's guard: :meth:`start` before the first step, then :meth:`after_step` as
    ``train_task``'s step callback. ``scorer`` decodes (called only when the signal is the
    error rate, or at every check in ``warn`` mode); ``loss_scorer`` is called when the signal is
    the loss, or at every check in ``warn`` mode when given."""

    config: GuardConfig
    model: torch.nn.Module
    sets: Sequence[GuardedSet]
    scorer: Scorer
    log: Callable[[str], None] = print
    loss_scorer: LossScorer | None = None
    curve: list[_Check] = field(default_factory=list)
    triggered_at: int | None = None
    ended_at: int | None = None
    rolled_back_to: int | None = None
    seconds: float = 0.0
    _best: _Check | None = field(default=None, init=False, repr=False)
    _best_parameters: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)  # rollback only
    _tokens: dict[str, int] = field(default_factory=dict, init=False, repr=False)  # guarded set → tokens its loss scores

    def __post_init__(self) -> None:
        if self.config.signal == "loss" and self.loss_scorer is None:
            raise ValueError("guard.signal: loss needs a loss scorer")

    def start(self) -> None:
        """Score the task's start (step 0): the reference of every rise, and the first best step."""
        self.log(f"guard at the task's start: {self._describe(self._check(0))}")

    def after_step(self, step: int, last: bool) -> bool:
        """Check at every ``every_steps``-th step and at the last one; True ends the task now."""
        if self.ended_at is not None or not (step % self.config.every_steps == 0 or last):
            return False
        check = self._check(step)
        signal, start = check.signal(self.config.signal), self.curve[0].signal(self.config.signal)
        rise = max(signal[s] - start[s] for s in signal)
        if rise <= self.config.threshold:
            self.log(f"guard at step {step}: {self._describe(check)} (start: {self._describe(self.curve[0])})")
            return False
        if self.triggered_at is None:
            self.triggered_at = step
        noun = "error rate" if self.config.signal == "error_rate" else "reference loss"
        self.log(
            f"guard: a general set's {noun} rose {self._amount(rise)} over the task's start at step {step} "
            f"(threshold {self._amount(self.config.threshold)}): {self._describe(check)}"
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
            "signal": self.config.signal,
            "threshold": self.config.threshold,
            "every_steps": self.config.every_steps,
            "sets": {s.name: len(s.utterances) for s in self.sets},
            "metrics": {s.name: s.metric for s in self.sets},
            "tokens": dict(self._tokens),
            "curve": [{"step": c.step, "error_rate": c.rates, "loss": c.losses} for c in self.curve],
            "triggered_at": self.triggered_at,
            "ended_at": self.ended_at,
            "rolled_back_to": self.rolled_back_to,
            "seconds": round(self.seconds, 3),
        }

    def _check(self, step: int) -> _Check:
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # scoring must not shift the training's random stream
            rates = {s.name: float(self.scorer(s)) for s in self.sets} if self._measures("error_rate") else {}
            check = _Check(step, rates, self._losses() if self._measures("loss") else {})
        self.curve.append(check)
        if self._best is None or check.mean(self.config.signal) <= self._best.mean(self.config.signal):
            self._best = check
            if self.config.mode == "rollback":
                self._best_parameters = {
                    name: p.detach().clone() for name, p in self.model.named_parameters() if p.requires_grad
                }
        self.seconds += time.perf_counter() - start
        return check

    def _measures(self, signal: str) -> bool:
        """Whether a check measures ``signal``: the guard's own, or both when it only records (warn)."""
        return self.config.signal == signal or self.config.mode == "warn"

    def _losses(self) -> dict[str, float]:
        losses = {}
        for guarded_set in self.sets if self.loss_scorer else ():
            losses[guarded_set.name], self._tokens[guarded_set.name] = self.loss_scorer(guarded_set)
        return losses

    def _roll_back(self) -> None:
        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, saved in self._best_parameters.items():
                named[name].copy_(saved)
        self.rolled_back_to = self._best.step
        self.log(f"guard: rolled back to step {self._best.step} ({self._describe(self._best)}); task ends")

    def _amount(self, rise: float) -> str:
        return f"{100 * rise:.1f} points" if self.config.signal == "error_rate" else f"{rise:.3f} nats per token"

    def _describe(self, check: _Check) -> str:
        metrics = {s.name: s.metric for s in self.sets}
        return ", ".join(
            " ".join([name]
                     + ([f"{metrics[name].upper()} {100 * check.rates[name]:.1f}%"] if name in check.rates else [])
                     + ([f"loss {check.losses[name]:.3f}"] if name in check.losses else []))
            for name in metrics
        )
