"""Replaying a recorded guard curve (clasr.report.guard_replay) against hand-computed cases and a
brute-force reading of the guard's rule."""

from __future__ import annotations

import random

import pytest

from clasr.report.guard_replay import GuardSignal, Replay, replay

ONE = GuardSignal({"a": 1})


def _entry(*rates_a: float, step: int = 2, **others: list[float]) -> dict:
    """A guard.json entry with set ``a`` (and ``others``) recorded every ``step`` steps."""
    return {
        "label": "after t",
        "curve": [
            {"step": step * i, "error_rate": {"a": r, **{name: values[i] for name, values in others.items()}}}
            for i, r in enumerate(rates_a)
        ],
    }


def test_rollback_keeps_the_best_checked_step_up_to_the_trigger():
    entry = _entry(0.10, 0.08, 0.20, 0.30)  # steps 0 2 4 6: rise +0.10 at step 4 passes 0.05
    assert replay(entry, ONE, "rollback", 0.05, 2) == Replay(kept=2, ended=4, checks=3)
    assert replay(entry, ONE, "stop", 0.05, 2) == Replay(kept=4, ended=4, checks=3)
    assert replay(entry, ONE, "off", 0.05, 2) == Replay(kept=6, ended=6, checks=0)
    assert replay(entry, ONE, "rollback", 0.25, 2) == Replay(kept=6, ended=6, checks=4)  # never passes


def test_equal_best_steps_keep_the_latest_and_a_longer_interval_skips_steps():
    entry = _entry(0.10, 0.10, 0.30, 0.30)
    assert replay(entry, ONE, "rollback", 0.05, 2).kept == 2
    assert replay(entry, ONE, "rollback", 0.05, 4) == Replay(kept=0, ended=4, checks=2)  # steps 0, 4 only


def test_the_last_step_is_checked_even_off_the_interval():
    entry = _entry(0.10, 0.10, 0.10, 0.10, 0.40)  # steps 0..8; every 6 checks 0, 6 and the last (8)
    assert replay(entry, ONE, "stop", 0.05, 6) == Replay(kept=8, ended=8, checks=3)


def test_a_check_the_recording_did_not_score_is_refused():
    with pytest.raises(ValueError, match="every_steps 3 checks step 3"):
        replay(_entry(0.1, 0.1, 0.1, 0.1), ONE, "rollback", 0.05, 3)


def test_pooled_signal_is_the_corpus_rate_of_all_utterances():
    pooled = GuardSignal({"a": 10, "b": 30})
    assert pooled.rate({"a": 0.5, "b": 0.1}) == pytest.approx((5 + 3) / 40)
    # a alone rises 20 points at step 2; pooled with b (flat, 3× the words) it rises 5: under 0.06
    entry = _entry(0.0, 0.2, 0.2, b=[0.1, 0.1, 0.1])
    assert replay(entry, GuardSignal({"a": 1}), "stop", 0.06, 2) == Replay(kept=2, ended=2, checks=2)
    assert replay(entry, pooled, "stop", 0.06, 2) == Replay(kept=4, ended=4, checks=3)


def _brute_force(rates: list[float], step: int, mode: str, threshold: float, every: int) -> Replay:
    """The guard's rule read literally: check steps 0, every, 2·every, … and the last one."""
    last = step * (len(rates) - 1)
    checked = sorted({*range(0, last + 1, every), last})
    at = {k: rates[k // step] for k in checked}
    for n, k in enumerate(checked):
        if k and at[k] - at[0] > threshold:
            if mode == "stop":
                return Replay(k, k, n + 1)
            best = min(checked[: n + 1], key=lambda j: (at[j], -j))
            return Replay(best, k, n + 1)
    return Replay(last, last, len(checked))


def test_replay_equals_the_rule_read_literally_on_random_curves():
    rng = random.Random(0)
    for _ in range(300):
        rates = [round(rng.uniform(0, 0.4), 2) for _ in range(rng.randint(2, 9))]
        mode, threshold, every = rng.choice(["stop", "rollback"]), rng.choice([0.0, 0.02, 0.05, 0.1]), 2 * rng.randint(1, 3)
        assert replay(_entry(*rates), ONE, mode, threshold, every) == _brute_force(rates, 2, mode, threshold, every), (
            rates, mode, threshold, every)
