from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clasr.cli import app
from conftest import write_dataset

cli = CliRunner()


@pytest.mark.parametrize(
    "command", [[], ["run"], ["eval"], ["show"], ["demo"], ["bench"], ["bench", "make"], ["data", "transform"]]
)
def test_help_explains_each_command(command):
    result = cli.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_run_with_a_bad_config_names_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tasks": [{"name": "a", "data": "x", "train": {"skip": -1}, "test": {}}]}))
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "tasks.0.train.skip" in result.output
    assert "Traceback" not in result.output


def test_run_with_missing_data_names_the_folder(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tasks": [{"name": "a", "data": "nowhere", "train": {}, "test": {}}], "output_dir": str(tmp_path / "o")}))
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "nowhere" in result.output


def test_show_on_a_non_results_folder_fails_clearly(tmp_path):
    result = cli.invoke(app, ["show", str(tmp_path)])
    assert result.exit_code == 2 and "not a clasr results directory" in result.output


def test_eval_then_run_then_show(tmp_path, tiny_checkpoint):
    data = write_dataset(tmp_path / "d")
    result = cli.invoke(app, ["eval", "--model", str(tiny_checkpoint), "--data", str(data),  # its own 2 s window
                              "--hypotheses", str(tmp_path / "h.jsonl")])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "h.jsonl").read_text().splitlines()) == 4
    config = {
        "output_dir": str(tmp_path / "out"),
        "model": {"name": str(tiny_checkpoint), "window_seconds": 2.0},
        "train": {"max_steps": 1, "batch_size": 4},
        "evaluation": {"limits": {"max_new_tokens": 4}},
        "tasks": [{"name": "t", "data": str(data), "train": {"split": "train"}, "test": {"split": "test"}}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = cli.invoke(app, ["run", str(tmp_path / "c.yaml"), "--strategy", "fta"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["strategy"]["name"] == "fta"
    result = cli.invoke(app, ["show", str(tmp_path / "out")])
    assert result.exit_code == 0 and "average_wer" in result.output and "after t" in result.output
    assert "R[T][j]" in result.output.replace("\n", " ") or "R[T][j]" in result.output
    result = cli.invoke(app, ["show", "--markdown", str(tmp_path / "out")])
    assert result.exit_code == 0 and "| row | t |" in result.output and "| metric | value | 95 % (utterances) |" in result.output
    assert "| average_wer |" in result.output and "| backward_transfer | — | — |" in result.output  # one task: no BWT


def test_show_on_a_damaged_results_file_names_it(tmp_path):
    (tmp_path / "matrix.json").write_text("{")
    (tmp_path / "metrics.json").write_text("{}")
    result = cli.invoke(app, ["show", str(tmp_path)])
    assert result.exit_code == 2 and "matrix.json: damaged JSON" in result.output


def test_set_overrides_nested_keys_and_composes_with_strategy(tmp_path):
    from clasr.experiment.config import ConfigError, apply_overrides

    data = {"train": {"epochs": 2}, "strategy": {"name": "ft"}}
    out = apply_overrides(data, {"strategy": {"name": "ihr"}, "strategy.past": "sum", "train.learning_rate": 1e-3})
    assert out == {"train": {"epochs": 2, "learning_rate": 1e-3}, "strategy": {"name": "ihr", "past": "sum"}}
    assert data["train"] == {"epochs": 2}  # the input is not modified
    with pytest.raises(ConfigError, match="train.epochs is not a section"):
        apply_overrides(data, {"train.epochs.x": 1})
    saved = {"adapter": None}  # how a results folder's config.yaml writes an unset section
    assert apply_overrides(saved, {"adapter.type": "lora"}) == {"adapter": {"type": "lora"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tasks": [{"name": "a", "data": "x", "train": {}, "test": {}}]}))
    result = cli.invoke(app, ["run", str(path), "--set", "train.batch_size=zero"])
    assert result.exit_code == 2 and "train.batch_size" in result.output
    from clasr.experiment.config import load_config

    tasks = [{"name": "a", "data": "x", "train": {}, "test": {}}]
    path.write_text(yaml.safe_dump({"strategy": {"name": "fta", "alpha": 0.3}, "tasks": tasks}))
    centralize = load_config(path, {"strategy.every": 3, "adapter.type": "lora"}, strategy="centralize")
    assert centralize.strategy.model_dump() == {"name": "centralize", "every": 3, "average": "products", "preset": None}
    assert load_config(path, {"strategy.past": "sum"}, strategy="ihr").strategy.past == "sum"
    assert load_config(path, {}, strategy="fta").strategy.alpha == 0.3  # same name: options kept
    assert load_config(path, {}, strategy="ft").strategy.name == "ft"
    result = cli.invoke(app, ["run", str(path), "--set", "novalue"])
    assert result.exit_code == 2 and "expected KEY.PATH=VALUE" in result.output


def test_bench_make_with_a_bad_spec_names_the_key(tmp_path):
    spec = {"domains": [{"name": "a", "description": "x", "topic": "weather",
                         "voices": [{"engine": "espeak", "name": "en-us"}],
                         "transforms": [{"type": "noise", "color": "red", "snr_db": 5}]}]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = cli.invoke(app, ["bench", "make", "--spec", str(path), "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 2 and "transforms.0.color" in result.output and "Traceback" not in result.output


def test_data_transform_writes_a_new_set_and_names_bad_steps(tmp_path):
    source = write_dataset(tmp_path / "clean", n_train=2, n_test=1)
    chain = "[{type: telephone}, {type: noise, color: pink, snr_db: 10}]"
    result = cli.invoke(app, ["data", "transform", str(source), str(tmp_path / "phone"), "--chain", chain])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "phone" / "metadata.jsonl").read_text().splitlines()
    assert len(rows) == 3 and "telephone" in rows[0]
    bad = cli.invoke(app, ["data", "transform", str(source), str(tmp_path / "x"), "--chain", "[{type: reverb, rt60: 99}]"])
    assert bad.exit_code == 2 and "transforms.0.rt60" in bad.output and not (tmp_path / "x").exists()


def test_compared_runs_are_named_without_their_shared_prefix():
    from clasr.report.comparison import run_names

    assert run_names([Path("r/an4-ft"), Path("r/an4-ihr-sum")]) == ["ft", "ihr-sum"]
    assert run_names([Path("a/ft"), Path("b/fta")]) == ["ft", "fta"]  # no shared prefix up to a "-"
    assert run_names([Path("x-a"), Path("x-a-b")]) == ["a", "a-b"]
    assert run_names([Path("x-")]) == ["x-"] and run_names([Path("x-"), Path("x-")]) == ["x-", "x-"]
