import json
import math

import pytest
import torch
import yaml

from clasr.experiment import runner
from clasr.experiment.config import ConfigError, load_config, parse_config
from clasr.experiment.runner import run_experiment
from clasr.report.comparison import read_run
from clasr.report.markdown import matrix_markdown
from clasr.report.results import read_results
from conftest import write_dataset


def _config(tmp_path, checkpoint, strategy="ft"):
    a = write_dataset(tmp_path / "a", seed=1)
    b = write_dataset(tmp_path / "b", seed=2)
    data = {
        "name": "toy",
        "output_dir": str(tmp_path / "out"),
        "model": {"name": str(checkpoint), "window_seconds": 2.0},
        "strategy": {"name": strategy},
        "train": {"learning_rate": 1e-3, "epochs": 1, "batch_size": 4, "warmup_ratio": 0.0},
        "evaluation": {"batch_size": 8, "limits": {"max_new_tokens": 6}},
        "tasks": [
            {"name": "a", "data": str(a), "train": {"split": "train"}, "test": {"split": "test"}},
            {"name": "b", "data": str(b), "train": {"split": "train"}, "test": {"split": "test"}, "dev": {"split": "train", "max_utterances": 2}},
        ],
        "general": [{"name": "g", "data": str(a), "test": {"split": "train", "max_utterances": 3}}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _count_training(monkeypatch):
    calls = []
    original = runner.train_task

    def counting(*args, **kwargs):
        calls.append(kwargs["description"])
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "train_task", counting)
    return calls


def test_run_writes_matrix_metrics_hypotheses_and_model(tmp_path, tiny_checkpoint, monkeypatch):
    calls = _count_training(monkeypatch)
    config = load_config(_config(tmp_path, tiny_checkpoint, "fta"))
    metrics = run_experiment(config)
    out = tmp_path / "out"
    assert calls == ["task 1 a", "task 2 b"]
    matrix, saved = read_results(out)
    assert matrix["row_labels"] == ["foundation", "after a", "after b"]
    assert len(matrix["wer"]) == 3 and all(len(r) == 2 for r in matrix["wer"])
    assert len(matrix["general_wer"]["g"]) == 3 and len(matrix["dev_wer"]) == 3
    assert metrics["complete"] and saved["backward_transfer"] == metrics["backward_transfer"]
    hyps = (out / "hyps" / "row2" / "test_b.jsonl").read_text().splitlines()
    assert len(hyps) == 4 and {"reference", "hypothesis", "word_errors", "hit_token_limit"} <= set(json.loads(hyps[0]))
    state = json.loads((out / "progress" / "state.json").read_text())
    assert [row["strategy"] for row in state["rows"][1:]] == [{"alpha": 0.5}, {"alpha": 1 / 3}]
    assert (out / "model" / "model.safetensors").exists() and (out / "model" / "tokenizer.json").exists()
    assert (out / "matrix_wer.csv").read_text().startswith("row,a,b,general:g")
    timings = json.loads((out / "timings.json").read_text())
    assert timings["rows"][1]["train"]["optimizer_steps"] == 2
    assert [row["seconds"] for row in timings["rows"]] == [row["seconds"] for row in state["rows"]]
    assert read_run("fta", out).seconds == pytest.approx(sum(row["seconds"] for row in state["rows"][1:]))


def test_rerun_resumes_without_recomputing(tmp_path, tiny_checkpoint, monkeypatch):
    path = _config(tmp_path, tiny_checkpoint)
    run_experiment(load_config(path))
    first = read_results(tmp_path / "out")
    calls = _count_training(monkeypatch)
    monkeypatch.setattr(runner, "evaluate_row", lambda *a, **k: pytest.fail("finished rows were re-evaluated"))
    monkeypatch.setattr(runner, "load_whisper", lambda *a, **k: pytest.fail("a finished run loaded the model"))
    assert run_experiment(load_config(path)) == first[1]
    assert calls == []
    assert read_results(tmp_path / "out") == first


def test_interrupted_run_continues_after_the_last_finished_task(tmp_path, tiny_checkpoint, monkeypatch):
    path = _config(tmp_path, tiny_checkpoint)
    original = runner.train_task

    def crash_on_second(*args, **kwargs):
        if kwargs["description"].startswith("task 2"):
            raise Crash
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "train_task", crash_on_second)
    with pytest.raises(Crash):
        run_experiment(load_config(path))
    matrix, metrics = read_results(tmp_path / "out")
    assert matrix["row_labels"] == ["foundation", "after a"] and not metrics["complete"]
    timings = json.loads((tmp_path / "out" / "timings.json").read_text())  # kept with every committed row
    assert [row["label"] for row in timings["rows"]] == matrix["row_labels"]
    assert read_run("a", tmp_path / "out").seconds == timings["rows"][1]["seconds"] > 0

    monkeypatch.setattr(runner, "train_task", original)
    calls = _count_training(monkeypatch)
    metrics = run_experiment(load_config(path))
    assert calls == ["task 2 b"] and metrics["complete"]


class Crash(Exception):
    pass


def _run_row0_only(path, monkeypatch, overrides=None):
    """Run until training of task 1 starts: row 0 is committed."""
    def crash(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(runner, "train_task", crash)
    with pytest.raises(Crash):
        run_experiment(load_config(path, overrides))
    monkeypatch.undo()


def test_finished_rows_bind_the_directory_to_its_config_and_data(tmp_path, tiny_checkpoint, monkeypatch):
    path = _config(tmp_path, tiny_checkpoint)
    _run_row0_only(path, monkeypatch)
    with pytest.raises(ConfigError, match="differs at: seed"):
        run_experiment(load_config(path, {"seed": 7}))
    manifest = tmp_path / "a" / "metadata.jsonl"
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:-1]))  # drop a test row
    with pytest.raises(ConfigError, match="test/a"):
        run_experiment(load_config(path))


def test_a_directory_with_nothing_committed_takes_a_new_config(tmp_path, tiny_checkpoint):
    path = _config(tmp_path, tiny_checkpoint)
    config = load_config(path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.yaml").write_text(yaml.safe_dump({**config.to_plain(), "seed": 99}))
    runner.check_output_dir(config, runner.load_state(tmp_path / "out"))  # no finished rows: no refusal


def test_the_binding_survives_a_deleted_config_file(tmp_path, tiny_checkpoint, monkeypatch):
    path = _config(tmp_path, tiny_checkpoint)
    _run_row0_only(path, monkeypatch)
    (tmp_path / "out" / "config.yaml").unlink()
    with pytest.raises(ConfigError, match="differs at: seed"):
        runner.check_output_dir(load_config(path, {"seed": 3}), runner.load_state(tmp_path / "out"))


def test_a_moved_results_directory_still_resumes(tmp_path, tiny_checkpoint, monkeypatch):
    path = _config(tmp_path, tiny_checkpoint)
    _run_row0_only(path, monkeypatch)
    (tmp_path / "out").rename(tmp_path / "moved")
    config = load_config(path, {"output_dir": str(tmp_path / "moved")})
    runner.check_output_dir(config, runner.load_state(tmp_path / "moved"))
    assert runner.load_state(tmp_path / "moved").rows_done == 1


def test_config_errors_name_the_key_path(tmp_path):
    with pytest.raises(ConfigError) as error:
        parse_config({"tasks": [{"name": "a", "data": "x", "train": {"max_utterances": "many"}, "test": {}}]}, "c.yaml")
    assert "c.yaml: tasks.0.train.max_utterances" in str(error.value)
    with pytest.raises(ConfigError, match="evaluation.normalizer: Value error, unknown normalizer 'fancy'"):
        parse_config({"tasks": [], "evaluation": {"normalizer": "fancy"}}, "c.yaml")
    with pytest.raises(ConfigError, match="tasks: List should have at least 1 item"):
        parse_config({"tasks": []}, "c.yaml")
    with pytest.raises(ConfigError, match="unknown_key"):
        parse_config({"tasks": [], "unknown_key": 1}, "c.yaml")
    with pytest.raises(ConfigError, match="model.window_seconds: Value error, 2.5 s is not a whole number of seconds"):
        parse_config({"tasks": [], "model": {"window_seconds": 2.5}}, "c.yaml")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_data_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.yaml"
    path.write_text(yaml.safe_dump({"tasks": [{"name": "a", "data": "../d", "train": {}, "test": {}}]}))
    assert load_config(path).tasks[0].data == (tmp_path / "d").resolve()


def test_general_set_names_must_be_unique():
    general = [{"name": "g", "data": "x", "test": {}}] * 2
    with pytest.raises(ConfigError, match="general: Value error, names must be unique"):
        parse_config({"tasks": [{"name": "a", "data": "x", "train": {}, "test": {}}], "general": general}, "c.yaml")


@pytest.mark.parametrize(
    "strategy,adapter",
    [({"name": "centralize", "every": 2}, {"type": "lora", "r": 2}), ({"name": "ft"}, {"type": "blora", "r": 2})],
)
def test_runs_with_an_adapter_per_task(tmp_path, tiny_checkpoint, strategy, adapter):
    config = load_config(_config(tmp_path, tiny_checkpoint), {"strategy": strategy, "adapter": adapter})
    assert run_experiment(config)["complete"]
    rows = json.loads((tmp_path / "out" / "progress" / "state.json").read_text())["rows"]
    facts = rows[1]["adapter"]
    assert facts["type"] == adapter["type"] and 0 < facts["trainable_parameters"] < 100_000
    if adapter["type"] == "blora":  # the shares recomputed from task 1's saved posterior means, ΔW = (α/r) μ_B μ_A
        from safetensors.torch import load_file

        saved = load_file(str(tmp_path / "out" / "adapters" / "task1_a" / "adapters.safetensors"))
        layers = sorted(k.removesuffix(".mu_A") for k in saved if k.endswith(".mu_A"))
        deltas = [(16.0 / 2) * saved[f"{k}.mu_B"] @ saved[f"{k}.mu_A"] for k in layers]
        means = [saved[f"{k}.{m}"] for k in layers for m in ("mu_A", "mu_B")]
        share = lambda ts: sum(int((t.abs() < 1e-3).sum()) for t in ts) / sum(t.numel() for t in ts)  # noqa: E731
        assert len(layers) == facts["layers"] and 0 < share(deltas) < 1
        assert facts["update_sparsity_below_1e-3"] == pytest.approx(share(deltas), abs=1e-12)
        assert facts["posterior_mean_sparsity_below_1e-3"] == pytest.approx(share(means), abs=1e-12)
    if strategy["name"] == "centralize":
        assert [r["strategy"]["deployed"] for r in rows[1:]] == ["base + this task's update", "centralized base"]
        matrix, _ = read_results(tmp_path / "out")
        assert [(v["after_row"], v["row_labels"]) for v in matrix["views"]] == [
            (2, ["b: its adapter before centralization"])
        ]
        assert len(matrix["wer"]) == 3  # the view is not a row of the metrics' matrix
        assert "↳ b: its adapter before centralization" in (tmp_path / "out" / "matrix_wer.csv").read_text()
        assert "| ↳ b: its adapter before centralization |" in matrix_markdown(matrix)
        assert (tmp_path / "out" / "hyps" / "row2_view" / "test_b.jsonl").exists()
    from transformers import WhisperForConditionalGeneration

    saved = tmp_path / "out" / "adapters" / "task1_a"
    assert (saved / "adapters.safetensors").exists()
    assert (saved / "peft" / "adapter_config.json").exists() == (adapter["type"] == "lora")
    exported = WhisperForConditionalGeneration.from_pretrained(tmp_path / "out" / "model")
    assert not any("lora" in name for name, _ in exported.named_parameters())
    _pipeline_transcribes_as_the_run(tmp_path / "out", tmp_path / "b", task="b")


def _pipeline_transcribes_as_the_run(out, data, task):
    """The exported folder alone runs in transformers' ASR pipeline (2 s window included) and,
    decoding greedily with the run's token budget and suppressed tokens (a random model likes
    special tokens that clasr never emits), gives the run's final hypotheses."""
    from transformers import pipeline

    from clasr.data.audio import load_audio
    from clasr.decoding import suppressed_ids

    asr = pipeline("automatic-speech-recognition", model=str(out / "model"), device="cpu")
    eot = asr.tokenizer.eos_token_id
    greedy = {"num_beams": 1, "max_new_tokens": 6, "suppress_tokens": suppressed_ids(asr.model, eot, first_step=False)}
    rows = [json.loads(line) for line in (out / "hyps" / "row2" / f"test_{task}.jsonl").read_text().splitlines()]
    for row in rows:
        audio = load_audio(data / row["id"])
        text = asr({"raw": audio, "sampling_rate": 16_000}, generate_kwargs=greedy)["text"]
        assert text.strip() == row["hypothesis"], row["id"]


def test_swap_scores_each_task_with_its_own_update_and_keeps_the_base(tmp_path, tiny_checkpoint, monkeypatch):
    from safetensors.torch import load_file

    path = _config(tmp_path, tiny_checkpoint)
    config = load_config(path, {"strategy": {"name": "swap"}, "adapter": {"type": "lora", "r": 2}})
    original = runner.train_task
    monkeypatch.setattr(runner, "train_task", lambda *a, **k: _crash_on_task_2(original, *a, **k))
    with pytest.raises(Crash):
        run_experiment(config)
    monkeypatch.setattr(runner, "train_task", original)
    assert run_experiment(config)["complete"]  # resumed after task 1: the stored update came back
    matrix, metrics = read_results(tmp_path / "out")
    wer = matrix["wer"]
    assert wer[2][0] == wer[1][0]  # task a scored with its own update after task b too
    assert wer[1][1] == wer[0][1]  # task b not learned yet: the foundation model
    assert matrix["general_wer"]["g"] == [matrix["general_wer"]["g"][0]] * 3
    assert metrics["backward_transfer"] == 0.0
    foundation = load_file(str(tiny_checkpoint / "model.safetensors"))
    exported = load_file(str(tmp_path / "out" / "model" / "model.safetensors"))
    assert all(torch.equal(exported[k], foundation[k]) for k in foundation if k in exported)


def _crash_on_task_2(original, *args, **kwargs):
    if kwargs["description"].startswith("task 2"):
        raise Crash
    return original(*args, **kwargs)


def test_centralize_without_an_adapter_is_refused():
    with pytest.raises(ConfigError, match="add an adapter section"):
        parse_config({"strategy": {"name": "centralize"}, "tasks": [{"name": "a", "data": "x", "train": {}, "test": {}}]})


@pytest.mark.parametrize(
    "strategy",
    [
        {"name": "ihr", "past": "exact", "curvature_batches": 1},
        {"name": "ewc", "strength": 10.0, "fisher_utterances": 4},
        {"name": "lwf"},
        {"name": "er", "memory_size": 3},
        {"name": "joint"},
        {"name": "frozen", "part": "decoder"},
    ],
)
def test_every_strategy_runs_end_to_end(tmp_path, tiny_checkpoint, tiny_bundle, strategy):
    config = load_config(_config(tmp_path, tiny_checkpoint), {"strategy": strategy})
    metrics = run_experiment(config)
    assert metrics["complete"] and all(math.isfinite(metrics[k]) for k in ("backward_transfer", "average_wer"))
    matrix, _ = read_results(tmp_path / "out")
    assert matrix["row_labels"] == ["foundation", "after a", "after b"]
    for values in (matrix["wer"], matrix["dev_wer"], [[v] for v in matrix["general_wer"]["g"]]):
        assert len(values) == 3 and all(math.isfinite(v) and v >= 0 for row in values for v in row if v is not None)
    assert all(len(row) == 2 for row in matrix["wer"])
    rows = json.loads((tmp_path / "out" / "progress" / "state.json").read_text())["rows"]
    facts = [row["strategy"] for row in rows[1:]]
    trained = [row["train"]["utterances"] for row in rows[1:]]
    model = tiny_bundle.model
    n_params = sum(p.numel() for p in model.parameters())
    if strategy["name"] == "ihr":  # exact keeps every task's factors: Σ (in² + out²) float32 per Linear
        linears = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not n.endswith("proj_out")]
        one_task = 4 * sum(m.in_features**2 + m.out_features**2 for m in linears)
        assert [f["merged_with_past_tasks"] for f in facts] == [0, 1] and facts[1]["layers_corrected"] == len(linears)
        assert [f["factor_memory_bytes"] for f in facts] == [one_task, 2 * one_task]
    elif strategy["name"] == "ewc":  # F̃ and θ* of every parameter, float32
        assert [f["fisher_utterances"] for f in facts] == [4, 4] and all(f["fisher_mean"] > 0 for f in facts)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)  # not the encoder's positions
        assert [f["state_bytes"] for f in facts] == [2 * 4 * trainable] * 2
    elif strategy["name"] == "lwf":
        assert [f["distilled"] for f in facts] == [True, True]  # from_first_task: the foundation is task 1's teacher
    elif strategy["name"] == "er":
        assert trained == [8, 8 + 3] and [f["stored_utterances"] for f in facts] == [3, 3]
        assert facts[0]["stored_per_task"] == {"a": 3} and sum(facts[1]["stored_per_task"].values()) == 3
    elif strategy["name"] == "joint":
        assert trained == [8, 16] and [f["stored_utterances"] for f in facts] == [8, 16]
    elif strategy["name"] == "frozen":
        encoder = sum(p.numel() for p in model.get_encoder().parameters())
        assert all(f["frozen_parameters"] == encoder and f["trainable_parameters"] == n_params - encoder for f in facts)
    if strategy["name"] != "er" and strategy["name"] != "joint":
        assert trained == [8, 8]


def test_a_bad_row_read_by_two_selections_is_counted_once(tmp_path):
    from clasr.experiment.sets import load_sets

    data = write_dataset(tmp_path / "d")
    manifest = data / "metadata.jsonl"
    manifest.write_text(manifest.read_text() + '{"file_name": "audio/missing.wav", "text": "x", "split": "test"}\n')
    config = parse_config(
        {
            "tasks": [{"name": "a", "data": str(data), "train": {"split": "train"}, "test": {"split": "test"}}],
            "general": [{"name": "g", "data": str(data), "test": {"split": "test"}}],
        }
    )
    assert load_sets(config).bad_row_counts() == {"missing_file": 1}


def test_lowercase_targets_belong_to_the_task_s_training_set(tmp_path):
    """Replay and joint training mix tasks in one batch: each task's training utterances
    carry its own target convention (AN4's capitals lower-cased), whatever task is current."""
    from clasr.experiment.sets import load_sets

    shouting, plain = write_dataset(tmp_path / "upper"), write_dataset(tmp_path / "plain", seed=1)
    for manifest in (shouting / "metadata.jsonl", plain / "metadata.jsonl"):
        manifest.write_text(manifest.read_text().replace('"text": "', '"text": "SAY '))
    split = {"train": {"split": "train"}, "test": {"split": "test"}}
    config = parse_config(
        {
            "tasks": [
                {"name": "a", "data": str(shouting), "lowercase_targets": True, **split},
                {"name": "b", "data": str(plain), **split},
            ]
        }
    )
    sets = load_sets(config)
    assert all(u.text.startswith("say ") for u in sets.train["a"])
    assert any("SAY" in u.text for u in sets.evaluation[0].utterances)  # references are left as written
    assert all(u.text.startswith("SAY ") for u in sets.train["b"])  # only the flagged task


def test_a_run_can_reuse_the_foundation_row_of_another_strategy(tmp_path, tiny_checkpoint, monkeypatch):
    path = _config(tmp_path, tiny_checkpoint)
    _run_row0_only(path, monkeypatch)
    source = tmp_path / "out"
    scored_rows = []
    original = runner.evaluate_row
    monkeypatch.setattr(runner, "evaluate_row", lambda *a, **k: scored_rows.append(a[4]) or original(*a, **k))
    config = load_config(path, {"output_dir": str(tmp_path / "fta"), "train.epochs": 2}, "fta")
    run_experiment(config, foundation_from=source)
    assert scored_rows == [1, 2]
    matrix, _ = read_results(tmp_path / "fta")
    source_matrix, _ = read_results(source)
    assert matrix["wer"][0] == source_matrix["wer"][0]
    assert (tmp_path / "fta" / "hyps" / "row0" / "test_a.jsonl").read_text() == (
        source / "hyps" / "row0" / "test_a.jsonl"
    ).read_text()


def test_the_evaluation_engine_does_not_bind_a_foundation_row_or_a_run(tmp_path, tiny_checkpoint, monkeypatch):
    """Both engines give the same float32 tokens: a row 0 scored with one is reused under the other,
    and a run started under one resumes under the other (and with activation checkpointing, which
    leaves the gradients as they are, switched on)."""
    path = _config(tmp_path, tiny_checkpoint)
    _run_row0_only(path, monkeypatch, {"evaluation.engine": "ctranslate2"})
    other = load_config(path, {"output_dir": str(tmp_path / "other"), "evaluation.engine": "torch", "train.epochs": 2})
    assert run_experiment(other, foundation_from=tmp_path / "out")["complete"]
    resumed = load_config(path, {"evaluation.engine": "torch", "train.gradient_checkpointing": True})
    assert run_experiment(resumed)["complete"]


def test_a_foundation_row_scored_differently_is_refused(tmp_path, tiny_checkpoint, monkeypatch):
    path = _config(tmp_path, tiny_checkpoint)
    _run_row0_only(path, monkeypatch)
    other = load_config(path, {"output_dir": str(tmp_path / "other"), "evaluation.normalizer": "basic"})
    with pytest.raises(ConfigError, match="evaluation.normalizer"):
        run_experiment(other, foundation_from=tmp_path / "out")
    data = yaml.safe_load(path.read_text())
    data["general"][0]["test"]["max_utterances"] = 2
    path.write_text(yaml.safe_dump(data))
    fewer = load_config(path, {"output_dir": str(tmp_path / "fewer")})
    with pytest.raises(ConfigError, match="general"):
        run_experiment(fewer, foundation_from=tmp_path / "out")


def test_a_state_from_an_older_version_is_refused_by_name(tmp_path):
    from clasr.experiment.checkpoint import load_state

    (tmp_path / "progress").mkdir()
    (tmp_path / "progress" / "state.json").write_text(json.dumps({"rows": [], "data": {}}))
    with pytest.raises(ConfigError, match="state.json: written by an older clasr"):
        load_state(tmp_path)
