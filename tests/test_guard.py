"""The general-ability guard: when it checks, when it triggers, what stop / rollback / warn do,
that a guard that never triggers changes nothing, and that guarded runs resume exactly."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from clasr.experiment import runner
from clasr.experiment.config import ConfigError, load_config, parse_config
from clasr.data.manifest import DataError, Selection, read_dataset
from clasr.experiment.runner import run_experiment
from clasr.experiment.sets import load_sets
from clasr.guard import GuardConfig, GuardedSet, TaskGuard
from clasr.report.guard import read_guard
from conftest import SHARED_DATA, require_shared_data, write_dataset

SETS = [GuardedSet("g", [], "basic"), GuardedSet("h", [], "basic")]


class ScriptedScorer:
    """A fake scorer: the k-th check of a task returns ``script[k]`` (one WER for every set, or a
    dict per set) — a general set made to degrade on cue."""

    def __init__(self, script):
        self.script, self.calls = script, {}

    def __call__(self, guarded_set: GuardedSet) -> float:
        k = self.calls[guarded_set.name] = self.calls.get(guarded_set.name, -1) + 1
        value = self.script[k]
        return value[guarded_set.name] if isinstance(value, dict) else value


def _toy_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    model[1].weight.requires_grad_(False)  # frozen: the guard never touches it
    return model


def _drive(guard: TaskGuard, model, steps: int) -> tuple[int, dict[int, dict]]:
    """Train-like loop: each step moves every trainable parameter; returns (steps made, weights after each step)."""
    guard.start()
    seen = {0: {k: v.clone() for k, v in model.state_dict().items()}}
    for step in range(1, steps + 1):
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.1 * step)
        seen[step] = {k: v.clone() for k, v in model.state_dict().items()}
        if guard.after_step(step, step == steps):
            return step, seen
    return steps, seen


def _guard(mode, script, model, **settings):
    config = GuardConfig(mode=mode, **{"every_steps": 2, "threshold": 0.05, **settings})
    return TaskGuard(config, model, SETS, ScriptedScorer(script), log=lambda message: None)


def test_checks_every_n_steps_and_at_the_last_step():
    model = _toy_model()
    guard = _guard("warn", [0.1] * 10, model, every_steps=3)
    assert _drive(guard, model, 7)[0] == 7
    assert [c["step"] for c in guard.facts()["curve"]] == [0, 3, 6, 7]


def test_triggers_only_when_a_set_rises_more_than_the_threshold():
    model = _toy_model()
    # set h rises by exactly the threshold (not more), then by more; set g never rises
    script = [{"g": 0.2, "h": 0.1}, {"g": 0.1, "h": 0.15}, {"g": 0.0, "h": 0.150001}]
    guard = _guard("stop", script, model)
    steps, _ = _drive(guard, model, 10)
    assert steps == 4 and guard.facts()["triggered_at"] == 4 and guard.facts()["ended_at"] == 4


def test_stop_ends_the_task_at_the_trigger_and_keeps_its_weights():
    model = _toy_model()
    guard = _guard("stop", [0.1, 0.1, 0.3, 0.0], model)
    steps, seen = _drive(guard, model, 10)
    assert steps == 4
    assert all(torch.equal(v, seen[4][k]) for k, v in model.state_dict().items())
    assert guard.facts()["rolled_back_to"] is None


def test_warn_trains_on_and_records_the_first_trigger():
    model = _toy_model()
    guard = _guard("warn", [0.1, 0.3, 0.1, 0.4, 0.4, 0.4], model)
    steps, _ = _drive(guard, model, 10)
    facts = guard.facts()
    assert steps == 10 and facts["triggered_at"] == 2 and facts["ended_at"] is None
    assert [c["error_rate"]["g"] for c in facts["curve"]] == [0.1, 0.3, 0.1, 0.4, 0.4, 0.4]


@pytest.mark.parametrize(
    "script, best",
    [
        ([0.10, 0.08, 0.09, 0.30], 2),  # the lowest WER before the trigger
        ([0.10, 0.12, 0.10, 0.30], 4),  # equal to the start: the later step (it learned more of the task)
        ([0.10, 0.14, 0.30], 0),  # never better than the start: back to the task's start
    ],
)
def test_rollback_restores_the_best_step_exactly(script, best):
    model = _toy_model()
    guard = _guard("rollback", script, model)
    steps, seen = _drive(guard, model, 20)
    assert steps == 2 * (len(script) - 1)
    assert guard.facts()["rolled_back_to"] == best
    for name, value in model.state_dict().items():
        assert torch.equal(value, seen[best][name]), name


def test_rollback_picks_the_best_mean_over_the_guarded_sets():
    model = _toy_model()
    script = [{"g": 0.1, "h": 0.1}, {"g": 0.0, "h": 0.15}, {"g": 0.09, "h": 0.09}, {"g": 0.1, "h": 0.3}]
    guard = _guard("rollback", script, model, threshold=0.1)
    _drive(guard, model, 20)
    assert guard.facts()["rolled_back_to"] == 2  # mean 0.075, though set h was at its worst before the trigger


def test_scoring_does_not_shift_the_random_stream():
    def scorer(guarded_set):
        torch.rand(5)  # a scorer that draws random numbers (sampling, dropout left on, …)
        return 0.1

    model = _toy_model()
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    TaskGuard(GuardConfig(mode="warn"), model, SETS, scorer, log=lambda m: None).start()
    assert torch.equal(torch.rand(4), expected)


def test_guard_section_shorthands_and_errors(tmp_path):
    base = {
        "tasks": [{"name": "a", "data": "x", "train": {}, "test": {}}],
        "general": [{"name": "g", "data": "y", "test": {}, "dev": {"max_utterances": 3}}, {"name": "h", "data": "z", "test": {}}],
    }
    assert parse_config(base).guard is None
    for off in (False, "off", {"mode": "off", "every_steps": 3}):  # YAML reads a bare `off` as false
        assert parse_config({**base, "guard": off}).guard is None
    config = parse_config({**base, "guard": "rollback"})
    assert config.guard.mode == "rollback" and [g.name for g in config.guarded_sets()] == ["g"]
    with pytest.raises(ConfigError, match="guard: .*unknown guard mode 'sometimes'"):
        parse_config({**base, "guard": "sometimes"})
    with pytest.raises(ConfigError, match="guard.sets: h not among the general sets with a dev selection"):
        parse_config({**base, "guard": {"sets": ["h"]}})
    with pytest.raises(ConfigError, match="guard: nothing to score; add general.<i>.dev .* or name data of your own as guard.anchor"):
        parse_config({**base, "general": base["general"][1:], "guard": "warn"})
    with pytest.raises(ConfigError, match=r"guard: nothing to score; guard.sets: \[\] names no general set; name data"):
        parse_config({**base, "guard": {"sets": []}})
    anchor = {"data": "mine", "split": "dev", "language": "de"}
    only_anchor = parse_config({**base, "general": base["general"][1:], "guard": {"anchor": anchor}})
    assert only_anchor.guarded_sets() == [] and only_anchor.guard.anchor.selection().split == "dev"
    with pytest.raises(ConfigError, match="guard.anchor.language: .*unknown language 'german'"):
        parse_config({**base, "guard": {"anchor": {**anchor, "language": "german"}}})
    with pytest.raises(ConfigError, match="a guarded general set is already named 'anchor'"):
        renamed = [{**base["general"][0], "name": "anchor"}]
        parse_config({**base, "general": renamed, "guard": {"anchor": anchor}})


def test_the_guard_scores_an_anchor_set_the_user_names(tmp_path):
    """``guard.anchor``: data of the user's own, read relative to the config file, cut to
    ``guard.utterances`` and scored as a set of its language; beside the general sets' dev
    selections, or alone with ``sets: []``."""
    write_dataset(tmp_path / "toy", seed=1)
    base = {
        "model": {"name": "tiny.en"},
        "tasks": [{"name": "a", "data": "toy", "train": {"split": "train"}, "test": {"split": "test"}}],
        "general": [{"name": "g", "data": "toy", "test": {"split": "test"}, "dev": {"split": "train", "max_utterances": 2}}],
    }
    for guard, expected in (
        ({"utterances": 3, "anchor": {"data": "toy", "split": "train"}}, ["g", "anchor"]),
        ({"utterances": 3, "sets": [], "anchor": {"data": "toy", "split": "train", "metric": "cer"}}, ["anchor"]),
    ):
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({**base, "guard": guard}))
        config = load_config(path)
        assert config.guard.anchor.data == (tmp_path / "toy").resolve()
        guarded = {s.name: s for s in load_sets(config).guard}
        assert list(guarded) == expected
        train, _ = read_dataset(tmp_path / "toy", Selection(split="train"))
        assert [u.id for u in guarded["anchor"].utterances] == [u.id for u in train[:3]]
        assert (guarded["anchor"].language, guarded["anchor"].metric) == ("en", guard["anchor"].get("metric", "wer"))
    path.write_text(yaml.safe_dump({**base, "guard": {"anchor": {"data": "missing"}}}))
    with pytest.raises(DataError, match=r"^guard/anchor: .*missing: no such dataset folder"):
        load_sets(load_config(path))


# --- through the runner, with the tiny random Whisper -------------------------------------------


def _config(tmp_path, checkpoint, guard, tasks=("a", "b"), **train):
    data = {
        "name": "toy",
        "output_dir": str(tmp_path / "out"),
        "model": {"name": str(checkpoint), "window_seconds": 2.0},
        "strategy": {"name": "ft"},
        "train": {"learning_rate": 1e-3, "epochs": 2, "batch_size": 2, "warmup_ratio": 0.0, "schedule": "constant", **train},
        "evaluation": {"batch_size": 8, "limits": {"max_new_tokens": 6}},
        "tasks": [
            {"name": name, "data": str(write_dataset(tmp_path / name, seed=i + 1)), "train": {"split": "train"}, "test": {"split": "test"}}
            for i, name in enumerate(tasks)
        ],
        "general": [{"name": "g", "data": str(tmp_path / tasks[0]), "test": {"split": "test"}, "dev": {"split": "train", "max_utterances": 3}}],
        "guard": guard,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _weights(out):
    return load_file(str(out / "progress" / "model.safetensors"))


def _scripted(monkeypatch, script):
    """Every task's guard scores with a fresh ScriptedScorer (so a resumed task sees the same script)."""
    monkeypatch.setattr(runner, "guard_scorer", lambda bundle, config: ScriptedScorer(script))


def test_a_guard_that_never_triggers_leaves_the_run_bit_identical(tmp_path, tiny_checkpoint, one_thread):
    """The real scorer (decoding the guarded set) runs between steps, and nothing changes."""
    run_experiment(load_config(_config(tmp_path / "off", tiny_checkpoint, "off")))
    guard = {"mode": "rollback", "every_steps": 1, "threshold": 100.0}
    run_experiment(load_config(_config(tmp_path / "on", tiny_checkpoint, guard)))
    off, on = _weights(tmp_path / "off" / "out"), _weights(tmp_path / "on" / "out")
    assert off.keys() == on.keys() and all(torch.equal(off[k], on[k]) for k in off)
    record = read_guard(tmp_path / "on" / "out")
    assert [entry["label"] for entry in record] == ["after a", "after b"]
    assert all(entry["triggered_at"] is None for entry in record)
    assert [c["step"] for c in record[0]["curve"]] == list(range(9))  # 8 train utterances, batch 2, 2 epochs
    assert not (tmp_path / "off" / "out" / "guard.json").exists()
    assert json.loads((tmp_path / "off" / "out" / "matrix.json").read_text()) == json.loads(
        (tmp_path / "on" / "out" / "matrix.json").read_text()
    )


def test_rollback_in_a_run_equals_training_stopped_at_the_best_step(tmp_path, tiny_checkpoint, one_thread, monkeypatch):
    _scripted(monkeypatch, [0.5, 0.4, 0.45, 0.7, 0.9])  # best at step 2, triggered at step 6
    run_experiment(load_config(_config(tmp_path / "guarded", tiny_checkpoint, {"mode": "rollback", "every_steps": 2}, tasks=("a",))))
    record = read_guard(tmp_path / "guarded" / "out")
    assert (record[0]["triggered_at"], record[0]["rolled_back_to"]) == (6, 2)
    run_experiment(load_config(_config(tmp_path / "short", tiny_checkpoint, "off", tasks=("a",), max_steps=2)))
    rolled, short = _weights(tmp_path / "guarded" / "out"), _weights(tmp_path / "short" / "out")
    assert all(torch.equal(rolled[k], short[k]) for k in short)
    from typer.testing import CliRunner

    from clasr.cli import app

    shown = CliRunner().invoke(app, ["show", str(tmp_path / "guarded" / "out"), "--markdown"])
    assert shown.exit_code == 0 and "| after a | rollback, +10.0 pts, every 2 steps, g (3)" in shown.output
    # a guard that acts measures its signal alone: no reference loss beside the error rate
    assert "| triggered at step 6; rolled back to step 2 | 0: 50.00  2: 40.00  4: 45.00  6: 70.00 |" in shown.output
    shown = CliRunner().invoke(app, ["show", str(tmp_path / "guarded" / "out")])  # terminal tables, folded cells
    assert shown.exit_code == 0 and "General-ability guard" in shown.output and "rolled back" in shown.output


def test_a_guarded_run_resumes_to_the_same_result(tmp_path, tiny_checkpoint, one_thread, monkeypatch):
    _scripted(monkeypatch, [0.5, 0.4, 0.9, 0.9, 0.9])  # every task: rolled back to step 2 at step 4
    guard = {"mode": "rollback", "every_steps": 2}
    whole = tmp_path / "whole"
    run_experiment(load_config(_config(whole, tiny_checkpoint, guard)))

    resumed = tmp_path / "resumed"
    path = _config(resumed, tiny_checkpoint, guard)
    original = runner.train_task

    def crash_in_task_2(*args, **kwargs):
        if kwargs["description"].startswith("task 2"):
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "train_task", crash_in_task_2)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(load_config(path))
    monkeypatch.setattr(runner, "train_task", original)
    run_experiment(load_config(path))

    a, b = _weights(whole / "out"), _weights(resumed / "out")
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda record: [{k: v for k, v in e.items() if k != "seconds"} for e in record]  # noqa: E731
    assert strip(read_guard(whole / "out")) == strip(read_guard(resumed / "out"))
    assert [e["rolled_back_to"] for e in read_guard(resumed / "out")] == [2, 2]
    matrix = lambda root: json.loads((root / "out" / "matrix.json").read_text())["wer"]  # noqa: E731
    assert matrix(whole) == matrix(resumed)


# --- the short-utterance sequence (examples/an4_short_sequence.yaml) -----------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "an4_short_sequence.yaml"
AN4 = SHARED_DATA / "an4" / "metadata.jsonl"


def _make_an4_short_module():
    spec = importlib.util.spec_from_file_location("make_an4_short", EXAMPLE.parents[1] / "benchmarks" / "make_an4_short.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _example_tasks() -> list[dict]:
    return yaml.safe_load(EXAMPLE.read_text())["tasks"]


def test_the_short_sequence_example_validates_and_guards_a_disjoint_dev():
    config = load_config(EXAMPLE, {"guard": "rollback"})
    assert [t.name for t in config.tasks] == ["short1", "short2", "short3"]
    general = config.general[0]
    assert general.dev.skip + general.dev.max_utterances <= general.test.skip and general.dev.split == general.test.split
    assert load_config(EXAMPLE).guard is None


@pytest.mark.skipif(not AN4.exists(), reason="needs ../shared/data/an4")
def test_short_an4_tasks_are_short_speaker_disjoint_and_cover_every_kept_row():
    script = _make_an4_short_module()
    MAX_WORDS, short_rows = script.MAX_WORDS, script.short_rows
    rows = [json.loads(line) for line in AN4.read_text().splitlines() if line.strip()]
    short = short_rows(rows)
    assert short == short_rows(rows)  # deterministic
    assert len(short) == sum(1 <= len(r["text"].split()) <= MAX_WORDS for r in rows)
    by_split = {}
    for row in short:
        by_split.setdefault(row["split"], set()).add(row["speaker"])
    assert sorted(by_split) == [f"t{k}_{s}" for k in (1, 2, 3) for s in ("test", "train")]
    speaker_sets = list(by_split.values())
    assert all(a.isdisjoint(b) for i, a in enumerate(speaker_sets) for b in speaker_sets[i + 1 :])


@pytest.mark.slow
def test_the_guard_rolls_back_sequential_lora_that_forgets_how_to_transcribe_sentences(tmp_path):
    """Real tiny.en, real speech (issue 20): LoRA at lr 3e-3 on AN4's one- to three-word
    utterances leaks AN4's spelled-letter format into ARCTIC sentences. The guard (5 points on
    8 dev prompts) must see the rise (measured: 11.1 → 19.4 % at step 6), roll back to a step
    within the threshold, and so keep the general test prompts (disjoint from the dev ones)
    near the foundation's WER."""
    require_shared_data("an4")
    arctic = require_shared_data("arctic_kathleen")
    _make_an4_short_module().make_an4_short(SHARED_DATA / "an4", tmp_path / "an4_short")
    config = load_config(
        EXAMPLE,
        {
            "output_dir": str(tmp_path / "out"),
            "tasks": [{**task, "data": str(tmp_path / "an4_short")} for task in _example_tasks()[:1]],
            "general": [{"name": "arctic", "data": str(arctic), "test": {"split": "test", "skip": 16, "max_utterances": 8}, "dev": {"split": "test", "max_utterances": 8}}],
            "adapter": {"type": "lora", "r": 8, "alpha": 16},
            "train.learning_rate": 3e-3,
            "guard": {"mode": "rollback", "every_steps": 2, "threshold": 0.05},
        },
    )
    metrics = run_experiment(config)
    entry = read_guard(tmp_path / "out")[0]
    start = entry["curve"][0]["error_rate"]["arctic"]
    worst = max(check["error_rate"]["arctic"] for check in entry["curve"])
    best = next(c for c in entry["curve"] if c["step"] == entry["rolled_back_to"])["error_rate"]["arctic"]
    assert entry["triggered_at"] is not None and worst > start + entry["threshold"]  # the rise happened and was seen
    assert entry["rolled_back_to"] < entry["triggered_at"] and best <= start + entry["threshold"]
    assert metrics["general"]["arctic"]["change"] < 0.05  # held-out prompts: no collapse after the task
