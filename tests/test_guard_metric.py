"""The guard scores each guarded general set by its configured metric (CER without spaces for
ja/zh/…, MER for a code-switched set), not always by WER, and names the metric in its record."""

from __future__ import annotations

import torch

from clasr.evaluate import evaluate
from clasr.experiment import runner
from clasr.experiment.config import parse_config
from clasr.experiment.sets import load_sets
from clasr.guard import GuardConfig, GuardedSet, TaskGuard
from clasr.models.whisper import tiny_random_multilingual_whisper
from clasr.report.guard import guard_markdown


def _config(folder, **general) -> dict:
    task = {"name": "t", "data": str(folder), "train": {"split": "train"}, "test": {"split": "test"}}
    sets = {"data": str(folder), "test": {"split": "test"}, "dev": {"split": "train"}}
    return {"tasks": [task], "guard": "rollback", "general": [{**sets, **g} for g in general.values()]}


def test_guarded_sets_carry_their_metric(toy_dataset):
    config = parse_config(_config(toy_dataset, ja={"name": "ja", "language": "ja"}, en={"name": "en"},
                                  mix={"name": "mix", "language": "de", "metric": "mer"}))
    assert {s.name: (s.language, s.metric) for s in load_sets(config).guard} == {
        "ja": ("ja", "cer_nospace"), "en": ("en", "wer"), "mix": ("de", "mer")}


def test_the_guard_scorer_returns_the_sets_metric(toy_dataset, one_thread):
    bundle = tiny_random_multilingual_whisper(seed=5)
    config = parse_config({**_config(toy_dataset, ja={"name": "ja", "language": "ja"}), "evaluation": {"engine": "torch"}})
    [guarded] = load_sets(config).guard
    independent = evaluate(bundle, guarded.utterances, guarded.normalizer, language="ja", engine="torch")
    assert independent.score.cer_nospace != independent.score.wer  # the test can tell the two apart
    assert runner.guard_scorer(bundle, config)(guarded) == independent.score.cer_nospace


def test_the_record_and_log_name_each_sets_metric():
    sets = [GuardedSet("ja", [], "whisper_basic", "ja", "cer_nospace"), GuardedSet("en", [], "whisper_english")]
    logged = []
    checks = {"ja": iter([0.10, 0.30]), "en": iter([0.05, 0.05])}  # each set's rate at steps 0 and 1
    guard = TaskGuard(GuardConfig(mode="stop", every_steps=1), torch.nn.Linear(2, 2), sets,
                      lambda guarded: next(checks[guarded.name]), log=logged.append)
    guard.start()
    assert guard.after_step(1, last=False)  # ja's CER rose 20 points: stop
    facts = guard.facts()
    assert facts["metrics"] == {"ja": "cer_nospace", "en": "wer"}
    assert facts["curve"] == [{"step": 0, "error_rate": {"ja": 0.10, "en": 0.05}, "loss": {}},  # no loss scorer
                              {"step": 1, "error_rate": {"ja": 0.30, "en": 0.05}, "loss": {}}]
    assert "ja CER_NOSPACE 30.0%, en WER 5.0%" in logged[-1]
    markdown = guard_markdown([{"label": "after t", **facts}])
    assert "ja (0, cer_nospace), en (0)" in markdown and "0: 10.00/5.00  1: 30.00/5.00" in markdown
