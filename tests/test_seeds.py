"""Sweeps of seeds: the aggregate from the seed folders, the command line, and resuming."""

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from clasr.cli import app
from clasr.experiment import runner
from clasr.experiment.config import load_config
from clasr.experiment.seeds import run_seeds
from clasr.report.results import read_results, write_results
from clasr.report.sweep import write_sweep_results
from conftest import write_dataset

SETS = {"test/a": 20, "test/b": 16, "general/g": 12}


def _fake_run(folder, seed, worse=0):
    """A finished two-task run written from synthetic per-utterance errors (no model):
    hypothesis files and the result files derived from them. ``worse`` adds errors to
    task a's final cell."""
    rng = np.random.default_rng(100 + seed)
    words = {key: np.random.default_rng(len(key) + n).integers(2, 12, n) for key, n in SETS.items()}
    rows = []
    for row in range(3):
        cells = {}
        for key, n in SETS.items():
            errors = rng.binomial(words[key], 0.1 + 0.05 * row)
            if key == "test/a" and row == 2:
                errors = errors + worse
            path = folder / "hyps" / f"row{row}" / f"{key.replace('/', '_')}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps({"id": f"u{u}", "word_errors": int(e), "ref_words": int(w)}) + "\n"
                                    for u, (e, w) in enumerate(zip(errors, words[key]))))
            wer = errors.sum() / words[key].sum()
            cells[key] = {"wer": wer, "cer": wer / 2, "cer_nospace": wer / 3, "wer_ci95": [wer - 0.01, wer + 0.01]}
        rows.append({"label": ["foundation", "after a", "after b"][row], "cells": cells})
    write_results(folder, rows, ["a", "b"], ["g"], [])


def _fake_sweep(folder, seeds=(0, 1, 2), worse=0):
    for seed in seeds:
        _fake_run(folder / f"seed{seed}", seed, worse)
    return write_sweep_results(folder, list(seeds))


def test_the_aggregate_is_the_mean_over_seeds_with_both_intervals(tmp_path):
    metrics = _fake_sweep(tmp_path / "sweep")
    per_seed = [read_results(tmp_path / "sweep" / f"seed{k}") for k in range(3)]
    matrix, saved = read_results(tmp_path / "sweep")
    assert saved == metrics and matrix["sweep"] == {"seeds": [0, 1, 2]}
    assert matrix["wer"][2][0] == pytest.approx(np.mean([m["wer"][2][0] for m, _ in per_seed]))
    assert matrix["general_wer"]["g"][1] == pytest.approx(np.mean([m["general_wer"]["g"][1] for m, _ in per_seed]))
    bwt = [x["backward_transfer"] for _, x in per_seed]
    assert metrics["backward_transfer"] == pytest.approx(np.mean(bwt))
    assert metrics["seeds"]["backward_transfer"]["values"] == bwt
    assert metrics["seeds"]["backward_transfer"]["std"] == pytest.approx(np.std(bwt, ddof=1))
    low, high = metrics["seeds"]["backward_transfer"]["ci95"]
    assert low < np.mean(bwt) < high
    for key in ("average_wer", "backward_transfer", "forgetting", "learning", "forward_transfer", "general/g"):
        low, high = metrics["ci95"][key]
        assert low <= high, key
    low, high = matrix["wer_ci95"][2][0]
    assert low < matrix["wer"][2][0] < high
    assert matrix["wer_std"][0][0] == pytest.approx(np.std([m["wer"][0][0] for m, _ in per_seed], ddof=1))
    assert (tmp_path / "sweep" / "metrics.csv").read_text().splitlines()[0].endswith("seeds ci95 low,seeds ci95 high")
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text())["folders"] == ["seed0", "seed1", "seed2"]


def test_a_single_run_records_its_metric_intervals(tmp_path):
    _fake_run(tmp_path / "run", 0)
    _, metrics = read_results(tmp_path / "run")
    assert set(metrics["ci95"]) == {"average_wer", "backward_transfer", "forgetting", "learning", "forward_transfer", "general/g"}
    low, high = metrics["ci95"]["average_wer"]
    assert low < metrics["average_wer"] < high
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert lines[0] == "metric,value,ci95 low,ci95 high" and lines[5].startswith("forward_transfer,")
    assert "a ci95 low" in (tmp_path / "run" / "matrix_wer.csv").read_text().splitlines()[0]


def test_show_and_paired_compare_read_sweeps(tmp_path):
    _fake_sweep(tmp_path / "x-good")
    _fake_sweep(tmp_path / "x-bad", worse=2)
    cli = CliRunner()
    shown = cli.invoke(app, ["show", str(tmp_path / "x-good")])
    assert shown.exit_code == 0, shown.output
    assert "mean over seeds [0, 1, 2]" in shown.output and "95 % (seeds)" in shown.output
    shown = cli.invoke(app, ["show", str(tmp_path / "x-good"), "--markdown"])
    assert "| forward_transfer |" in shown.output and "| general/g |" in shown.output
    compared = cli.invoke(app, ["compare", str(tmp_path / "x-good"), str(tmp_path / "x-bad"), "--paired", "--markdown"])
    assert compared.exit_code == 0, compared.output
    lines = {line.split(" | ")[0].strip("| "): line for line in compared.output.splitlines() if line.startswith("| ")}
    assert "| after b: a | good | bad |" in compared.output and "Holm over all" in compared.output
    assert lines["after b: a"].endswith("| A better |")
    assert lines["average_wer"].endswith("| A better |")
    assert lines["after a: a"].endswith("| no detectable difference at 95 % |")


def test_paired_compare_refuses_runs_on_other_utterances(tmp_path):
    _fake_run(tmp_path / "one", 0)
    _fake_run(tmp_path / "two", 1)
    path = tmp_path / "two" / "hyps" / "row1" / "test_b.jsonl"
    rows = path.read_text().splitlines()
    path.write_text("\n".join(rows[:-1]) + "\n")
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "one"), str(tmp_path / "two"), "--paired"])
    assert result.exit_code == 2
    assert "paired tests refused" in result.output and "test_b.jsonl: scores other utterances" in result.output
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "one"), str(tmp_path / "two")])
    assert result.exit_code == 0  # without --paired the side-by-side table still works


def test_seeds_option_takes_a_list(tmp_path, monkeypatch):
    import clasr.experiment.seeds as seeds_module

    calls = []

    def fake_sweep(config, seeds, foundation_from):
        calls.append((seeds, foundation_from))
        _fake_sweep(config.output_dir, seeds)

    monkeypatch.setattr(seeds_module, "run_seeds", fake_sweep)
    config = _config(tmp_path)
    result = CliRunner().invoke(app, ["run", str(config), "--seeds", "0", "1", "2", "--output", str(tmp_path / "sweep")])
    assert result.exit_code == 0, result.output
    assert calls == [([0, 1, 2], None)]
    assert "mean over seeds [0, 1, 2]" in result.output


def _config(tmp_path):
    a = write_dataset(tmp_path / "a", n_train=4, n_test=2, seed=1)
    b = write_dataset(tmp_path / "b", n_train=4, n_test=2, seed=2)
    data = {
        "name": "toy",
        "output_dir": str(tmp_path / "out"),
        "model": {"name": str(tmp_path / "no-model"), "window_seconds": 2.0},
        "train": {"learning_rate": 1e-3, "epochs": 1, "batch_size": 4, "warmup_ratio": 0.0},
        "evaluation": {"batch_size": 8, "limits": {"max_new_tokens": 4}},
        "tasks": [
            {"name": "a", "data": str(a), "train": {"split": "train"}, "test": {"split": "test"}},
            {"name": "b", "data": str(b), "train": {"split": "train"}, "test": {"split": "test"}},
        ],
        "general": [{"name": "g", "data": str(a), "test": {"split": "train", "max_utterances": 2}}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Crash(Exception):
    pass


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_without_rerunning_finished_seeds(tmp_path, tiny_checkpoint, monkeypatch):
    config = load_config(_config(tmp_path), {"model.name": str(tiny_checkpoint)})
    trained, scored = [], []
    train_task, evaluate_row = runner.train_task, runner.evaluate_row

    def counting_train(*args, **kwargs):
        trained.append((kwargs["seed"], kwargs["description"]))
        if crash and kwargs["description"].startswith("task 2") and len(trained) == 4:
            raise Crash
        return train_task(*args, **kwargs)

    monkeypatch.setattr(runner, "train_task", counting_train)
    monkeypatch.setattr(runner, "evaluate_row", lambda *a, **k: scored.append((a[3].name, a[4])) or evaluate_row(*a, **k))
    crash = True
    with pytest.raises(Crash):
        run_seeds(config, [0, 1])
    assert [d for _, d in trained] == ["task 1 a", "task 2 b", "task 1 a", "task 2 b"]
    assert trained[0][0] != trained[2][0]  # each seed trains with its own seed
    assert [row for folder, row in scored] == [0, 1, 2, 1]  # seed 1 reused seed 0's row 0
    assert not (tmp_path / "out" / "metrics.json").exists()

    crash = False
    trained.clear()
    scored.clear()
    metrics = run_seeds(config, [0, 1])
    assert [d for _, d in trained] == ["task 2 b"] and [row for _, row in scored] == [2]
    assert metrics["complete"] and metrics["seeds"]["seeds"] == [0, 1]
    seed0, _ = read_results(tmp_path / "out" / "seed0")
    seed1, _ = read_results(tmp_path / "out" / "seed1")
    assert seed0["wer"][0] == seed1["wer"][0]
    assert (tmp_path / "out" / "seed1" / "hyps" / "row0" / "test_a.jsonl").read_text() == (
        tmp_path / "out" / "seed0" / "hyps" / "row0" / "test_a.jsonl").read_text()
    before = (tmp_path / "out" / "metrics.json").read_text()
    trained.clear()
    assert run_seeds(config, [0, 1]) == metrics and trained == []
    assert (tmp_path / "out" / "metrics.json").read_text() == before


def test_a_single_run_is_refused_in_a_sweep_folder_and_a_sweep_in_a_run_folder(tmp_path):
    from clasr.experiment.config import ConfigError
    from clasr.experiment.seeds import run_single

    _fake_sweep(tmp_path / "sweep", seeds=(0, 1))
    config = load_config(_config(tmp_path), {"output_dir": str(tmp_path / "sweep")})
    with pytest.raises(ConfigError, match="holds a sweep of seeds: rerun it with --seeds"):
        run_single(config)
    (tmp_path / "run" / "progress").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds a single run"):
        run_seeds(config.model_copy(update={"output_dir": tmp_path / "run"}), [0, 1])
    with pytest.raises(ConfigError, match="distinct seeds"):
        run_seeds(config, [1, 1])


def test_the_demo_with_seeds_runs_a_sweep_per_strategy_and_reports_paired_tests(tmp_path, monkeypatch):
    """The demo's wiring with the runs replaced by synthetic sweeps (no model, no voices):
    each strategy a sweep of the seeds, later ones sharing the first's foundation row, and a
    report with the intervals and the paired tests against the first strategy."""
    from types import SimpleNamespace

    import clasr.bench.demo as demo
    from clasr.bench.default import DEMO_SPEC

    calls = []

    def fake_sweep(config, seeds, foundation_from):
        calls.append((config.name, seeds, foundation_from))
        _fake_sweep(config.output_dir, seeds, worse=2 if config.name.endswith("ft") else 0)

    domains = [SimpleNamespace(name=d.name, folder=str(tmp_path / d.name)) for d in DEMO_SPEC.all_domains()]
    monkeypatch.setattr(demo, "make_benchmark", lambda *a, **k: domains)
    monkeypatch.setattr(demo, "run_seeds", fake_sweep)
    runs = demo.run_demo(tmp_path / "demo", ("ft", "ihr"), seeds=[0, 1])
    assert calls == [("demo-ft", [0, 1], None), ("demo-ihr", [0, 1], tmp_path / "demo" / "ft")]
    assert runs[0].metrics["seeds"]["seeds"] == [0, 1]
    text = (demo.write_report(runs, DEMO_SPEC, tmp_path / "demo") / "README.md").read_text()
    assert "Mean over seeds [0, 1]" in text and "## Paired tests against ft" in text
    assert "| after b: a | ft | ihr |" in text and "B better |" in text
    assert "after b: a,ft,ihr," in (tmp_path / "demo" / "report" / "paired.csv").read_text()
