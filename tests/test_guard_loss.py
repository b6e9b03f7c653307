"""The guard's loss signal: the reference loss against a brute-force computation, the guard
triggering and rolling back on it without decoding, its record and replay, and its config."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from typer.testing import CliRunner

from clasr.cli import app
from clasr.data.batching import load_utterance_audio
from clasr.experiment import runner
from clasr.experiment.config import ConfigError, load_config, parse_config
from clasr.experiment.runner import run_experiment
from clasr.guard import GuardConfig, GuardedSet, TaskGuard
from clasr.reference_loss import reference_loss
from clasr.report.guard import read_guard
from clasr.report.guard_replay import GuardSignal, Replay, replay
from conftest import toy_task
from test_guard import SETS, _config, _drive, _scripted, _toy_model, _weights


def _with_dropout(model: torch.nn.Module, p: float) -> None:
    """Whisper's layers read their dropout rates from float attributes at every forward pass."""
    for module in model.modules():
        for name in ("dropout", "activation_dropout", "attention_dropout"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, p)


def _brute_force_loss(bundle, collator, utterances) -> tuple[float, int]:
    """Σ −log softmax(logits)[y_i] over every transcript token and the end token, one utterance
    at a time (no padding), divided by their count."""
    total, tokens = 0.0, 0
    with torch.no_grad():
        for utterance in utterances:
            feats, _ = collator.features([load_utterance_audio(utterance)])
            target = collator.target_ids(utterance.text) + [collator.eot]
            inputs = torch.tensor([collator.prompt + target[:-1]])
            logits = bundle.model(input_features=feats, decoder_input_ids=inputs).logits[0]
            log_probs = logits.double().log_softmax(-1)[len(collator.prompt) - 1:]
            total -= float(sum(log_probs[i, token] for i, token in enumerate(target)))
            tokens += len(target)
    return total / tokens, tokens


def test_reference_loss_is_the_mean_token_loss_of_every_transcript(tmp_path, one_thread):
    bundle, utterances, collator = toy_task(tmp_path / "toy", seed=3, n_train=7)
    _with_dropout(bundle.model, 0.5)
    bundle.model.eval()
    expected, expected_tokens = _brute_force_loss(bundle, collator, utterances)
    bundle.model.train()
    loss, tokens = reference_loss(bundle.model, collator, utterances, batch_size=3)  # padded batches of 3, 3, 1
    assert tokens == expected_tokens and loss == pytest.approx(expected, rel=1e-5)
    assert bundle.model.training  # its mode is given back
    assert reference_loss(bundle.model, collator, utterances, batch_size=7)[0] == pytest.approx(loss, rel=1e-5)  # no dropout
    with pytest.raises(ValueError, match="no utterances"):
        reference_loss(bundle.model, collator, [], batch_size=3)


class ScriptedLoss:
    """A fake loss scorer: the k-th check returns ``script[k]`` for every set, and 10 tokens."""

    def __init__(self, script):
        self.script, self.calls = script, {}

    def __call__(self, guarded_set: GuardedSet) -> tuple[float, int]:
        k = self.calls[guarded_set.name] = self.calls.get(guarded_set.name, -1) + 1
        return self.script[k], 10


def _never_decode(guarded_set):
    raise AssertionError("the loss signal must not decode")


def test_the_loss_signal_triggers_and_rolls_back_without_decoding():
    model = _toy_model()
    config = GuardConfig(mode="rollback", signal="loss", threshold=0.2, every_steps=2)
    guard = TaskGuard(config, model, SETS, _never_decode, log=lambda m: None, loss_scorer=ScriptedLoss([1.0, 0.9, 1.1, 1.3]))
    steps, seen = _drive(guard, model, 20)
    facts = guard.facts()
    assert steps == 6 and facts["triggered_at"] == 6 and facts["rolled_back_to"] == 2  # 1.3 − 1.0 > 0.2; best 0.9
    assert all(torch.equal(v, seen[2][k]) for k, v in model.state_dict().items())
    assert facts["signal"] == "loss" and facts["tokens"] == {"g": 10, "h": 10}
    assert [c["error_rate"] for c in facts["curve"]] == [{}] * 4
    assert [c["loss"]["h"] for c in facts["curve"]] == [1.0, 0.9, 1.1, 1.3]


def _never_score_the_loss(guarded_set):
    raise AssertionError("a guard that acts on the error rate must not score the loss")


def test_an_acting_guard_measures_only_its_signal():
    model = _toy_model()
    guard = TaskGuard(GuardConfig(mode="stop", every_steps=2), model, SETS, lambda s: 0.1, log=lambda m: None,
                      loss_scorer=_never_score_the_loss)
    assert _drive(guard, model, 4)[0] == 4
    assert [c["loss"] for c in guard.facts()["curve"]] == [{}] * 3 and guard.facts()["tokens"] == {}


@pytest.mark.parametrize("signal, threshold", [("error_rate", 0.1), ("loss", 100.0)])
def test_warn_records_both_signals_and_acts_on_neither(signal, threshold):
    """A warn run is a recording to replay: each check decodes and scores the loss, whatever its signal."""
    model = _toy_model()
    guard = TaskGuard(GuardConfig(mode="warn", signal=signal, threshold=threshold, every_steps=2), model, SETS,
                      lambda s: 0.1, log=lambda m: None, loss_scorer=ScriptedLoss([1.0, 5.0, 200.0]))
    assert _drive(guard, model, 4)[0] == 4  # warn trains on even where the loss rose past the threshold
    assert [(c["error_rate"]["g"], c["loss"]["g"]) for c in guard.facts()["curve"]] == [(0.1, 1.0), (0.1, 5.0), (0.1, 200.0)]
    assert guard.facts()["tokens"] == {"g": 10, "h": 10}


def test_loss_signal_settings_and_errors(tmp_path):
    assert GuardConfig().threshold == 0.10 and GuardConfig(signal="loss", threshold=0.3).threshold == 0.3
    with pytest.raises(ValueError, match="guard.signal: loss needs a loss scorer"):
        TaskGuard(GuardConfig(signal="loss", threshold=0.1), _toy_model(), SETS, lambda s: 0.0)
    base = {
        "tasks": [{"name": "a", "data": "x", "train": {}, "test": {}}],
        "general": [{"name": "g", "data": "y", "test": {}, "dev": {}, "language": "auto"}],
    }
    assert parse_config({**base, "guard": {"mode": "warn"}}).guard.signal == "error_rate"
    with pytest.raises(ConfigError, match=r"guard.signal: loss .*name the language of general.0.language \(not 'auto'\)"):
        parse_config({**base, "guard": {"signal": "loss", "threshold": 0.1}})
    with pytest.raises(ConfigError, match="guard.signal"):
        parse_config({**base, "guard": {"signal": "perplexity"}})


def test_replay_reads_either_recorded_signal_pooled_by_its_weights():
    curve = [{"step": 2 * i, "error_rate": {"a": 0.1, "b": 0.1}, "loss": {"a": la, "b": lb}}
             for i, (la, lb) in enumerate([(1.0, 2.0), (1.6, 2.0), (1.6, 2.0)])]
    entry = {"label": "after t", "curve": curve}
    assert replay(entry, GuardSignal({"a": 1}), "stop", 0.05, 2) == Replay(kept=4, ended=4, checks=3)  # WER flat
    assert replay(entry, GuardSignal({"a": 1}, "loss"), "stop", 0.5, 2) == Replay(kept=2, ended=2, checks=2)
    pooled = GuardSignal({"a": 10, "b": 30}, "loss")  # a's rise of 0.6 nats over a quarter of the tokens: 0.15
    assert pooled.rate({"a": 1.6, "b": 2.0}) - pooled.rate({"a": 1.0, "b": 2.0}) == pytest.approx(0.15)
    assert replay(entry, pooled, "stop", 0.2, 2) == Replay(kept=4, ended=4, checks=3)
    old = {"label": "after t", "curve": [{"step": 0, "error_rate": {"a": 0.1}}, {"step": 2, "error_rate": {"a": 0.1}}]}
    with pytest.raises(ValueError, match="after t: the recording has no loss at every checked step"):
        replay(old, GuardSignal({"a": 1}, "loss"), "stop", 0.5, 2)


def test_a_run_guarded_on_the_loss_records_it_and_trains_as_without_a_guard(tmp_path, tiny_checkpoint, one_thread, monkeypatch):
    """The real loss scorer runs between steps: the weights and matrix equal an unguarded run's,
    the curve holds every set's loss, and nothing is decoded for the guard."""
    monkeypatch.setattr(runner, "guard_scorer", lambda bundle, config: _never_decode)
    run_experiment(load_config(_config(tmp_path / "off", tiny_checkpoint, "off", tasks=("a",))))
    guard = {"mode": "rollback", "signal": "loss", "every_steps": 2, "threshold": 1000.0}
    run_experiment(load_config(_config(tmp_path / "on", tiny_checkpoint, guard, tasks=("a",))))
    off, on = _weights(tmp_path / "off" / "out"), _weights(tmp_path / "on" / "out")
    assert all(torch.equal(off[k], on[k]) for k in off)
    [entry] = read_guard(tmp_path / "on" / "out")
    assert entry["signal"] == "loss" and entry["triggered_at"] is None and entry["tokens"]["g"] > 3
    assert [c["step"] for c in entry["curve"]] == [0, 2, 4, 6, 8]
    assert all(c["error_rate"] == {} and c["loss"]["g"] > 0 for c in entry["curve"])
    assert len({c["loss"]["g"] for c in entry["curve"]}) > 1  # the loss follows the training
    saved = yaml.safe_load((tmp_path / "on" / "out" / "config.yaml").read_text())
    assert saved["guard"]["signal"] == "loss"


def test_a_warn_run_records_the_loss_beside_the_error_rate_and_shows_both(tmp_path, tiny_checkpoint, one_thread, monkeypatch):
    _scripted(monkeypatch, [0.5, 0.4, 0.45, 0.7, 0.9])
    run_experiment(load_config(_config(tmp_path / "warn", tiny_checkpoint, {"mode": "warn", "every_steps": 2}, tasks=("a",))))
    [entry] = read_guard(tmp_path / "warn" / "out")
    assert entry["triggered_at"] == 6 and entry["ended_at"] is None and entry["tokens"]["g"] > 3
    assert all(set(c["error_rate"]) == set(c["loss"]) == {"g"} for c in entry["curve"])
    shown = CliRunner().invoke(app, ["show", str(tmp_path / "warn" / "out"), "--markdown"])
    loss = r"loss \d+\.\d{3}"
    assert shown.exit_code == 0
    assert re.search(rf"\| 0: 50.00 {loss}  2: 40.00 {loss}  4: 45.00 {loss}  6: 70.00 {loss}  8: 90.00 {loss} \|", shown.output)
