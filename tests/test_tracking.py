"""Experiment tracking: the config key, and what a TensorBoard run holds after training
(read back from the event files, compared with the training's own figures)."""

from pathlib import Path

import pytest
from accelerate import Accelerator
from accelerate.tracking import get_available_trackers

from clasr.experiment.config import ConfigError, parse_config
from clasr.tracking import TrackingConfig, accelerator_options, end_run, flat_config, log_row, start_run
from clasr.train import TrainConfig, train_task
from conftest import toy_task

tensorboard = pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _config(tmp_path, **extra) -> dict:
    return {"output_dir": str(tmp_path / "out"), "tasks": [
        {"name": "a", "data": str(tmp_path), "train": {"split": "train"}, "test": {"split": "test"}}
    ]} | extra


def test_tracking_is_off_by_default_and_tensorboard_when_the_section_is_given(tmp_path):
    assert parse_config(_config(tmp_path)).tracking is None
    assert parse_config(_config(tmp_path, tracking={})).tracking.log_with == ["tensorboard"]


def test_an_unknown_or_missing_tracker_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"tracking\.log_with.*unknown tracker"):
        parse_config(_config(tmp_path, tracking={"log_with": ["tensorbored"]}))
    installed = {str(t) for t in get_available_trackers()}
    absent = next((n for n in ("wandb", "mlflow", "comet_ml", "aim") if n not in installed), None)
    if absent:
        with pytest.raises(ConfigError, match=rf"tracking\.log_with.*{absent}.*not installed"):
            parse_config(_config(tmp_path, tracking={"log_with": [absent]}))


def test_flat_config_joins_key_paths_and_stringifies_what_hparams_cannot_hold():
    plain = {"train": {"learning_rate": 1e-3, "bf16": False}, "general": [], "guard": None, "name": "x"}
    assert flat_config(plain) == {"train.learning_rate": 1e-3, "train.bf16": False, "general": "[]", "guard": "None", "name": "x"}


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_tensorboard_run_holds_every_step_and_row(tmp_path, one_thread):
    bundle, utterances, collator = toy_task(tmp_path / "data", seed=0)
    tracking = TrackingConfig()
    accelerator = Accelerator(**accelerator_options(tracking, tmp_path / "out"))
    start_run(accelerator, tracking, "toy", {"train": {"learning_rate": 1e-3}})
    config = TrainConfig(learning_rate=1e-3, batch_size=2, max_steps=3, warmup_ratio=0.5)
    stats = train_task(bundle.model, utterances, collator, config, accelerator, steps_before=10)
    cells = {"a": {"wer": 0.5, "cer": 0.25, "error_rate": 0.5, "utterances": 4}}
    log_row(accelerator, 1, cells, {"average_wer": 0.5, "general": {"g": {"change": -0.1}}, "ci95": {"x": [0, 1]}})
    end_run(accelerator)

    runs = list((tmp_path / "out" / "tracking").iterdir())
    assert [r.name for r in runs] == ["toy"]  # one tracker run, named by the project
    scalars = _scalars(runs[0])
    assert [step for step, _ in scalars["train/loss"]] == [11, 12, 13]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx(stats.losses, rel=1e-6)
    # warm-up over round(0.5 · 3) = 2 steps from 0, then linear decay: the rates steps 1, 2, 3 used
    assert [v for _, v in scalars["train/learning_rate"]] == pytest.approx([0.0, 5e-4, 1e-3], abs=1e-9)  # float32 events
    assert all(v > 0 for _, v in scalars["train/utterances_per_second"])
    assert scalars["row/a/wer"] == [(1, 0.5)] and scalars["row/a/cer"] == [(1, 0.25)]
    assert scalars["metrics/average_wer"] == [(1, 0.5)]
    assert scalars["metrics/general/g/change"] == [(1, pytest.approx(-0.1))]
    assert not any(tag.startswith("metrics/ci95") for tag in scalars)


def test_a_run_with_tracking_logs_every_row_and_step_and_resumes_with_tracking_off(tmp_path, tiny_checkpoint, one_thread):
    import json

    import yaml

    from clasr.experiment.config import load_config
    from clasr.experiment.runner import run_experiment
    from conftest import write_dataset

    data = write_dataset(tmp_path / "a", seed=1)
    config = {
        "name": "tracked", "output_dir": str(tmp_path / "out"), "tracking": {},
        "model": {"name": str(tiny_checkpoint), "window_seconds": 2.0},
        "train": {"learning_rate": 1e-3, "batch_size": 4, "warmup_ratio": 0.0, "max_steps": 2},
        "evaluation": {"batch_size": 8, "limits": {"max_new_tokens": 2}},
        "tasks": [{"name": n, "data": str(data), "train": {"split": "train"}, "test": {"split": "test"}} for n in "ab"],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run_experiment(load_config(path))
    scalars = _scalars(tmp_path / "out" / "tracking" / "tracked")
    matrix = json.loads((tmp_path / "out" / "matrix.json").read_text())
    assert [step for step, _ in scalars["train/loss"]] == [1, 2, 3, 4]  # two tasks of two steps, one axis
    assert [v for _, v in scalars["row/test/a/wer"]] == pytest.approx([row[0] for row in matrix["wer"]], rel=1e-6)
    assert [step for step, _ in scalars["row/test/b/wer"]] == [0, 1, 2]
    config["tracking"] = None  # result-neutral: the finished run is still this run
    path.write_text(yaml.safe_dump(config))
    assert run_experiment(load_config(path))["complete"]
