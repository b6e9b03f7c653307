"""The run's alarm on a general set's loss: its paired interval against a brute-force
bootstrap, silence where the change is noise, and the runner raising it after every row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clasr.experiment import runner
from clasr.experiment.config import load_config
from clasr.experiment.runner import run_experiment
from clasr.report.general_alarm import GeneralLoss, general_losses
from test_guard import _config


def _write_set(out, name, rows_errors, words):
    """hyps/row<k>/general_<name>.jsonl for each row's per-utterance word errors."""
    for k, errors in enumerate(rows_errors):
        path = out / "hyps" / f"row{k}" / f"general_{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [{"id": f"u{i}", "word_errors": int(e), "ref_words": int(w), "hit_token_limit": False}
                 for i, (e, w) in enumerate(zip(errors, words))]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def _run_folder(tmp_path, sets: dict, hits=(0, 0)):
    """A results folder of two rows whose general sets are ``sets``: name → (row errors, words)."""
    for name, (rows_errors, words) in sets.items():
        _write_set(tmp_path, name, rows_errors, words)
    matrix = {"row_labels": ["foundation", "after t"], "tasks": [], "general": list(sets),
              "metrics": {f"general:{name}": "wer" for name in sets}}
    (tmp_path / "matrix.json").write_text(json.dumps(matrix), encoding="utf-8")
    rows = [{"label": label, "cells": {f"general/{name}": {"token_limit_hits": h} for name in sets}}
            for label, h in zip(matrix["row_labels"], hits)]
    return rows


def _brute_force_interval(before, after, words, n_resamples=1000, seed=0):
    """The paired percentile interval drawn one replicate at a time (the same random stream)."""
    rng = np.random.default_rng(seed)
    changes = []
    for _ in range(n_resamples):
        drawn = rng.integers(0, len(words), len(words))
        changes.append((after[drawn].sum() - before[drawn].sum()) / words[drawn].sum())
    return np.percentile(changes, [2.5, 97.5])


def test_a_set_that_lost_ability_is_named_with_its_paired_interval(tmp_path):
    rng = np.random.default_rng(5)
    words = rng.integers(3, 12, 30)
    before = rng.integers(0, 2, 30)
    after = before + rng.integers(0, 4, 30)  # every utterance as bad or worse
    rows = _run_folder(tmp_path, {"read": ([before, after], words)}, hits=(0, 3))
    [loss] = general_losses(tmp_path, rows)
    assert loss.name == "read" and loss.row_label == "after t" and loss.utterances == 30
    assert loss.initial == pytest.approx(before.sum() / words.sum()) and loss.now == pytest.approx(after.sum() / words.sum())
    assert loss.interval == pytest.approx(tuple(_brute_force_interval(before, after, words)))
    assert loss.token_limit_hits == (0, 3)
    message = loss.message()
    assert "general-ability loss after t: read WER" in message and "over its 30 utterances" in message
    assert "3 of them decoded to the token limit (foundation: 0)" in message


def test_noise_and_gains_raise_no_alarm(tmp_path):
    words = np.full(20, 10)
    base = np.arange(20) % 3
    swapped = np.roll(base, 1)  # the same errors on other utterances: the change is 0
    better = np.maximum(base - 1, 0)
    one_worse = base.copy()
    one_worse[0] += 1  # 1 word in 200: its interval reaches 0
    rows = _run_folder(tmp_path, {"same": ([base, swapped], words), "better": ([base, better], words),
                                  "one": ([base, one_worse], words)})
    assert general_losses(tmp_path, rows) == []
    assert general_losses(tmp_path, rows[:1]) == []  # the foundation row alone: nothing to compare


def test_no_loop_clause_when_the_token_limit_hits_did_not_grow():
    loss = GeneralLoss("g", "cer", "after a", 0.1, 0.3, (0.1, 0.3), 8, (2, 2))
    assert loss.message() == ("general-ability loss after a: g CER 10.00 → 30.00 % (+20.00 points, "
                              "95 % [10.00, 30.00] over its 8 utterances)")


def test_the_runner_checks_every_row_as_it_is_committed(tmp_path, tiny_checkpoint, one_thread, monkeypatch):
    seen = []

    def spy(out, rows):
        seen.append((len(rows), general_losses(out, rows)))  # the hypothesis files of every row are there
        return [GeneralLoss("g", "wer", rows[-1]["label"], 0.1, 0.5, (0.2, 0.6), 3, (0, 1))] if len(rows) == 3 else []

    monkeypatch.setattr(runner, "general_losses", spy)
    printed = []
    monkeypatch.setattr(runner.console, "print", lambda *a, **k: printed.append(" ".join(map(str, a))))
    run_experiment(load_config(_config(tmp_path / "run", tiny_checkpoint, "off")))
    assert [n for n, _ in seen] == [1, 2, 3]
    alarms = [line for line in printed if "general-ability loss" in line]
    assert len(alarms) == 1 and "after b: g WER 10.00 → 50.00 %" in alarms[0]
    assert any("a guard (`guard: stop`)" in line for line in printed)
