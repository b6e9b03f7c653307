"""Fault injection: each ordinary fault ends in a clear error or a reported bad row, the exit code
says so, and nothing silently wrong is left on disk (tiny random Whisper, toy data)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from clasr.cli import app
from clasr.experiment import runner
from clasr.experiment.checkpoint import CheckpointError, load_state
from clasr.experiment.config import ConfigError, apply_overrides, load_config
from clasr.experiment.lock import LOCK_FILE, RunLockedError, run_lock
from clasr.experiment.runner import run_experiment
from conftest import write_dataset

cli = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


def _config(tmp_path: Path, checkpoint: Path, tasks: int = 2, **train) -> Path:
    """Two toy tasks (8 train, 4 test utterances each; 2 steps per task; ``tasks=1``: only the
    first) and a general set."""
    a = tmp_path / "a" if (tmp_path / "a").exists() else write_dataset(tmp_path / "a", seed=1)
    b = tmp_path / "b" if (tmp_path / "b").exists() else write_dataset(tmp_path / "b", seed=2)
    data = {
        "output_dir": str(tmp_path / "out"),
        "model": {"name": str(checkpoint), "window_seconds": 2.0},
        "strategy": {"name": "er", "memory_size": 3},  # a strategy with a state to commit
        "train": {"learning_rate": 1e-3, "batch_size": 4, "warmup_ratio": 0.0, **train},
        "evaluation": {"batch_size": 8, "limits": {"max_new_tokens": 4}},
        "tasks": [
            {"name": "a", "data": str(a), "train": {"split": "train"}, "test": {"split": "test"}},
            {"name": "b", "data": str(b), "train": {"split": "train"}, "test": {"split": "test"}},
        ][:tasks],
        "general": [{"name": "g", "data": str(a), "test": {"split": "train", "max_utterances": 2}}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def _audio_of_row(folder: Path, row: int) -> Path:
    return folder / _rows(folder)[row - 1]["file_name"]


def _bad_rows(out: Path, key: str) -> list[dict]:
    return json.loads((out / "data_report.json").read_text())["sets"][key]["bad_rows"]


class Killed(BaseException):
    """Stands in for a kill: nothing in clasr catches it."""


def _kill_on_task_2(monkeypatch):
    original = runner.train_task

    def train(*args, **kwargs):
        if kwargs["description"].startswith("task 2"):
            raise Killed
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "train_task", train)


def _run_until_task_2(path: Path, monkeypatch) -> None:
    """Rows 0 and 1 committed, then the run dies while training task 2."""
    _kill_on_task_2(monkeypatch)
    with pytest.raises(Killed):
        run_experiment(load_config(path))
    monkeypatch.undo()


# --- non-finite audio, divergence, finite config values -------------------------------------------------


def test_nan_audio_in_a_training_set_is_a_bad_row_and_the_model_stays_finite(tmp_path, tiny_checkpoint):
    path = _config(tmp_path, tiny_checkpoint, tasks=1)
    bad = _audio_of_row(tmp_path / "a", 3)  # a train row of task a
    audio, rate = sf.read(bad, dtype="float32")
    audio[100:110] = np.nan
    sf.write(bad, audio, rate, subtype="FLOAT")
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    [row] = _bad_rows(out, "train/a")
    assert (row["row"], row["file_name"], row["reason"]) == (3, "audio/u002.wav", "non_finite_audio")
    assert "10 audio sample(s) are not finite" in row["detail"]
    assert "metadata.jsonl row 3 (audio/u002.wav): non_finite_audio" in " ".join(result.output.split())
    state = load_state(out)
    assert state.rows[1]["train"]["utterances"] == 7  # 8 rows, one skipped
    weights = load_file(str(out / "model" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_infinite_audio_in_a_test_set_is_skipped_by_run_and_eval(tmp_path, tiny_checkpoint):
    path = _config(tmp_path, tiny_checkpoint, tasks=1, max_steps=1)
    bad = _audio_of_row(tmp_path / "a", 10)  # a test row of task a
    audio, rate = sf.read(bad, dtype="float32")
    audio[5] = np.inf
    sf.write(bad, audio, rate, subtype="FLOAT")
    result = cli.invoke(app, ["eval", "--model", str(tiny_checkpoint), "--data", str(tmp_path / "a"),
                              "--hypotheses", str(tmp_path / "h.jsonl")])
    assert result.exit_code == 0, result.output
    assert "row 10 (audio/u009.wav): non_finite_audio" in result.output
    assert "'non_finite_audio': 1" in result.output
    assert [json.loads(x)["id"] for x in (tmp_path / "h.jsonl").read_text().splitlines()] == [
        "audio/u008.wav", "audio/u010.wav", "audio/u011.wav"
    ]
    assert run_experiment(load_config(path))["complete"]
    out = tmp_path / "out"
    assert [r["row"] for r in _bad_rows(out, "test/a")] == [10]
    hyps = (out / "hyps" / "row1" / "test_a.jsonl").read_text()
    assert len(hyps.splitlines()) == 3 and "u009" not in hyps
    assert json.loads((out / "data_report.json").read_text())["bad_row_counts"] == {"non_finite_audio": 1}


def test_a_diverging_learning_rate_stops_with_the_step_and_keeps_the_last_good_state(tmp_path, tiny_checkpoint):
    path = _config(tmp_path, tiny_checkpoint)
    result = cli.invoke(app, ["run", str(path), "--set", "train.learning_rate=1000"])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "error: task 1 a: training diverged at step 2 of 2:" in message
    assert "Lower train.learning_rate" in message and "train.on_bad_loss=skip" in message
    assert "Traceback" not in result.output
    out = tmp_path / "out"
    assert load_state(out).rows_done == 1  # the foundation row: the last good commit
    assert not (out / "model").exists() and not (out / "progress" / "model.safetensors").exists()
    assert "NaN" not in (out / "progress" / "state.json").read_text()
    assert json.loads((out / "metrics.json").read_text())["complete"] is False


def test_skipping_bad_steps_counts_them_and_trains_on(tmp_path, tiny_checkpoint, one_thread):
    """A NaN in one batch's loss (here the extra loss of step 2) skips that step only."""
    from accelerate import Accelerator

    from clasr.data.batching import SpeechCollator
    from clasr.data.manifest import Selection, read_dataset
    from clasr.models.whisper import load_whisper
    from clasr.train import TrainConfig, TrainingDivergedError, train_task

    bundle = load_whisper(str(tiny_checkpoint), None)
    utts, _ = read_dataset(write_dataset(tmp_path / "d", n_train=12), Selection(split="train"))
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    calls = []

    def nan_on_second_batch(model, batch, logits):
        calls.append(1)
        return torch.tensor(float("nan")) if len(calls) == 2 else None

    config = TrainConfig(learning_rate=1e-3, batch_size=4, on_bad_loss="skip")
    before = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    stats = train_task(bundle.model, utts, collator, config, Accelerator(), extra_loss=nan_on_second_batch)
    assert stats.skipped_steps == [2] and stats.optimizer_steps == 2 and len(stats.losses) == 2
    assert stats.summary()["skipped_steps"] == [2]
    assert all(torch.isfinite(p).all() for p in bundle.model.parameters())
    assert any(not torch.equal(before[k], v) for k, v in bundle.model.state_dict().items())
    calls.clear()
    with pytest.raises(TrainingDivergedError, match=r"training: training diverged at step 2 of 3: loss is nan"):
        train_task(bundle.model, utts, collator, config.model_copy(update={"on_bad_loss": "stop"}), Accelerator(),
                   extra_loss=nan_on_second_batch)
    always_nan = lambda model, batch, logits: torch.tensor(float("nan"))  # noqa: E731
    with pytest.raises(TrainingDivergedError, match=r"step 3 of 3: loss is nan \(3 bad steps in a row\)"):
        train_task(bundle.model, utts, collator, config, Accelerator(), extra_loss=always_nan)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_floats_in_a_config_are_refused_by_key(tmp_path, value):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tasks": [{"name": "a", "data": "x", "train": {}, "test": {}}]}))
    result = cli.invoke(app, ["run", str(path), "--set", f"train.learning_rate={value}"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "train.learning_rate" in result.output
    with pytest.raises(ConfigError, match=r"c.yaml: evaluation.limits.tokens_per_second: must be a finite number \(got inf\)"):
        load_config(path, {"evaluation.limits.tokens_per_second": "inf"})


# --- the run lock ------------------------------------------------------------------------------------


def test_a_second_run_on_a_locked_folder_is_refused_naming_the_holder(tmp_path, tiny_checkpoint):
    path = _config(tmp_path, tiny_checkpoint)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from clasr.experiment.lock import run_lock\n"
         "with run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)", str(tmp_path / "out")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = cli.invoke(app, ["run", str(path)])
        assert result.exit_code == 2, result.output
        message = " ".join(result.output.split())
        assert f"out is in use by another clasr run (process {holder.pid} on" in message
        assert "wait for it to finish or stop it, or use another --output" in message
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [LOCK_FILE]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed (-9) holding the lock: the next run takes it over
    result = cli.invoke(app, ["run", str(path), "--set", "train.max_steps=1"])
    assert result.exit_code == 0, result.output
    assert f"taking over the lock of process {holder.pid}" in " ".join(result.output.split())
    assert (tmp_path / "out" / LOCK_FILE).read_text() == ""  # released and emptied at the end


def test_the_lock_is_exclusive_within_one_process_too(tmp_path):
    with run_lock(tmp_path / "out") as stale:
        assert stale == {}
        with pytest.raises(RunLockedError, match=f"process {os.getpid()} on"):
            with run_lock(tmp_path / "out"):
                pass
    with run_lock(tmp_path / "out") as stale:
        assert stale == {}  # a clean end leaves no holder behind


# --- verified checkpoints, derived files rebuilt ------------------------------------------------------


@pytest.fixture(scope="module")
def killed_after_task_1(tmp_path_factory, tiny_checkpoint):
    """(config, results folder) of a run killed while training task 2: rows 0 and 1 committed."""
    folder = tmp_path_factory.mktemp("killed")
    path = _config(folder, tiny_checkpoint, max_steps=1)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _run_until_task_2(path, monkeypatch)
    return path, folder / "out"


@pytest.mark.parametrize(
    "damage,message",
    [
        ("delete_model", r"model.safetensors is missing \(it was committed\)"),
        ("random_bytes", r"model.safetensors was altered since it was committed \(SHA-256 differs\)"),
        ("truncate_model", r"model.safetensors has \d+ bytes, \d+ were committed \(truncated or altered\)"),
        ("truncate_state", r"state.json has \d+ bytes, \d+ were committed"),
        ("delete_strategy", r"strategy.safetensors is missing"),
    ],
)
def test_a_damaged_checkpoint_is_refused_on_resume(tmp_path, killed_after_task_1, damage, message):
    path, committed = killed_after_task_1
    shutil.copytree(committed, tmp_path / "out")
    progress = tmp_path / "out" / "progress"
    model = progress / "model.safetensors"
    if damage == "delete_model":
        model.unlink()
    elif damage == "random_bytes":
        with model.open("r+b") as stream:
            stream.seek(model.stat().st_size // 2)
            stream.write(np.random.default_rng(0).bytes(4096))
    elif damage == "truncate_model":
        os.truncate(model, model.stat().st_size // 2)
    elif damage == "truncate_state":
        os.truncate(progress / "state.json", 100)
    else:
        (progress / "strategy.safetensors").unlink()
    before = sorted((p.name, p.stat().st_size) for p in progress.iterdir())
    result = cli.invoke(app, ["run", str(path), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    message_text = " ".join(result.output.split())
    import re

    assert re.search(message, message_text), message_text
    assert "the run cannot resume from it. Restore the file, or delete" in message_text
    assert sorted((p.name, p.stat().st_size) for p in progress.iterdir()) == before  # left as found
    assert not (tmp_path / "out" / "model").exists()


def test_a_finished_run_without_its_weights_does_not_export_the_foundation(tmp_path, tiny_checkpoint):
    path = _config(tmp_path, tiny_checkpoint, tasks=1, max_steps=1)
    assert run_experiment(load_config(path))["complete"]
    out = tmp_path / "out"
    shutil.rmtree(out / "model")
    (out / "progress" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        run_experiment(load_config(path))
    assert not (out / "model").exists()


def test_non_finite_weights_are_never_committed(tmp_path):
    from clasr.experiment.checkpoint import RunState, commit

    model = torch.nn.Linear(3, 2)
    commit(tmp_path, RunState([{"label": "foundation"}]), None, {})
    with torch.no_grad():
        model.weight[0, 1] = float("nan")
    with pytest.raises(CheckpointError, match=r"after a: 1 weight\(s\) in 1 tensor\(s\) are NaN or infinite \(first: weight\)"):
        commit(tmp_path, RunState([{"label": "foundation"}, {"label": "after a"}]), model, {})
    assert load_state(tmp_path).rows_done == 1


def test_damaged_derived_files_are_rebuilt_from_the_committed_state(tmp_path, tiny_checkpoint, monkeypatch):
    path = _config(tmp_path, tiny_checkpoint, tasks=1, max_steps=1)
    run_experiment(load_config(path))
    out = tmp_path / "out"
    originals = {name: (out / name).read_bytes() for name in ("matrix.json", "matrix_wer.csv", "matrix_cer.csv", "metrics.json")}
    (out / "matrix.json").write_text('{"row_lab')
    (out / "matrix_wer.csv").unlink()
    (out / "metrics.json").write_text("garbage")
    shown = cli.invoke(app, ["show", str(out)])
    assert shown.exit_code == 2 and "matrix.json: damaged JSON" in shown.output
    assert f"`clasr run {out / 'config.yaml'} --output {out}` rebuilds it" in " ".join(shown.output.split())
    monkeypatch.setattr(runner, "load_whisper", lambda *a, **k: pytest.fail("a finished run loaded the model"))
    result = cli.invoke(app, ["run", str(out / "config.yaml"), "--output", str(out)])  # as the message says
    assert result.exit_code == 0, result.output
    assert {name: (out / name).read_bytes() for name in originals} == originals


# --- decode failures, over-long transcripts, symlinks ---------------------------------------------------


def _as_flac(folder: Path, row: int, truncate: bool) -> None:
    """Turn a row's WAV into FLAC (manifest updated), optionally truncated mid-stream."""
    rows = _rows(folder)
    wav = folder / rows[row - 1]["file_name"]
    audio, rate = sf.read(wav, dtype="float32")
    flac = wav.with_suffix(".flac")
    sf.write(flac, audio, rate)
    if truncate:
        os.truncate(flac, flac.stat().st_size // 2)
    rows[row - 1]["file_name"] = str(flac.relative_to(folder))
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_truncated_flac_mid_set_is_a_bad_row_and_the_run_goes_on(tmp_path, tiny_checkpoint):
    path = _config(tmp_path, tiny_checkpoint, max_steps=1)
    _as_flac(tmp_path / "a", 4, truncate=True)  # train
    _as_flac(tmp_path / "b", 11, truncate=True)  # test
    _as_flac(tmp_path / "b", 12, truncate=False)  # a whole FLAC decodes
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    [train_bad] = _bad_rows(out, "train/a")
    [test_bad] = _bad_rows(out, "test/b")
    assert (train_bad["row"], train_bad["file_name"], train_bad["reason"]) == (4, "audio/u003.flac", "undecodable_audio")
    assert (test_bad["row"], test_bad["reason"]) == (11, "undecodable_audio")
    assert "cannot decode audio" in test_bad["detail"] and "lost sync" in test_bad["detail"]
    assert load_state(out).rows[2]["cells"]["test/b"]["utterances"] == 3
    assert "u011.flac" in (out / "hyps" / "row0" / "test_b.jsonl").read_text()
    result = cli.invoke(app, ["data", "check", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert "row 11 (audio/u010.flac): undecodable_audio: cannot decode audio" in result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["rows"] == 12 and summary["usable"] == 11 and summary["bad_counts"] == {"undecodable_audio": 1}
    assert cli.invoke(app, ["data", "check", str(tmp_path / "b"), "--split", "train"]).exit_code == 0


def test_an_over_long_transcript_is_a_bad_training_row(tmp_path, tiny_checkpoint):
    path = _config(tmp_path, tiny_checkpoint, tasks=1, max_steps=1)
    rows = _rows(tmp_path / "a")
    rows[1]["text"] = " ".join(["seventeen"] * 600)
    (tmp_path / "a" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_experiment(load_config(path))["complete"]
    [bad] = _bad_rows(tmp_path / "out", "train/a")
    assert (bad["row"], bad["reason"]) == (2, "transcript_too_long")
    assert bad["detail"].endswith("decoder positions (prompt, tokens, end), the model has 448")
    assert [r["row"] for r in _bad_rows(tmp_path / "out", "general/g")] == []  # scoring needs no decoder positions
    result = cli.invoke(app, ["data", "check", str(tmp_path / "a"), "--model", str(tiny_checkpoint)])
    assert result.exit_code == 1 and "row 2 (audio/u001.wav): transcript_too_long" in result.output


def test_a_symlink_out_of_the_folder_is_a_bad_row(tmp_path):
    from clasr.data.manifest import Selection, read_dataset

    data = write_dataset(tmp_path / "d")
    secret = tmp_path / "outside.wav"
    shutil.copy(data / "audio" / "u000.wav", secret)
    (data / "audio" / "link.wav").symlink_to(secret)
    (data / "inside.wav").symlink_to(data / "audio" / "u001.wav")  # a link that stays inside is fine
    with (data / "metadata.jsonl").open("a") as manifest:
        manifest.write(json.dumps({"file_name": "audio/link.wav", "text": "x", "split": "test"}) + "\n")
        manifest.write(json.dumps({"file_name": "inside.wav", "text": "y", "split": "test"}) + "\n")
    utts, report = read_dataset(data, Selection(split="test"))
    [bad] = report.bad_rows
    assert (bad.row, bad.reason) == (13, "path_outside_folder")
    assert bad.detail == f"a symbolic link leads to {secret}, outside {data}"
    assert utts[-1].id == "inside.wav"


def test_terminal_escapes_in_file_names_never_reach_the_console(tmp_path):
    data = write_dataset(tmp_path / "d")
    with (data / "metadata.jsonl").open("a") as manifest:
        manifest.write(json.dumps({"file_name": "audio/\x1b[2J\x1b[31mevil\x07.wav", "text": "x", "split": "test"}) + "\n")
    result = cli.invoke(app, ["data", "check", str(data)])
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "row 13 (audio/\\x1b[2J\\x1b[31mevil\\x07.wav): missing_file" in result.output


# --- disk, output path, orphans ---------------------------------------------------------------------


def test_an_output_path_that_is_a_file_is_refused(tmp_path, tiny_checkpoint):
    path = _config(tmp_path, tiny_checkpoint)
    (tmp_path / "taken").write_text("mine")
    result = cli.invoke(app, ["run", str(path), "--output", str(tmp_path / "taken")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "taken: the output path is a file, not a folder; choose another --output" in " ".join(result.output.split())
    assert (tmp_path / "taken").read_text() == "mine"


@pytest.fixture
def small_filesystem(tmp_path):
    """A 16 MB tmpfs (root only): room for row 0, not for a task's checkpoint (~14 MB + margin)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (a full disk cannot be made here)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_found_before_training_with_the_space_needed(tmp_path, tiny_checkpoint, small_filesystem):
    path = _config(tmp_path, tiny_checkpoint)
    result = cli.invoke(app, ["run", str(path), "--output", str(small_filesystem / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert "not enough free disk space for the next task's checkpoint: needs about" in message
    assert load_state(small_filesystem / "out").rows_done == 1
    assert not list((small_filesystem / "out").glob(".*.tmp"))


def test_a_read_only_output_folder_is_refused(tmp_path, tiny_checkpoint):
    path = _config(tmp_path, tiny_checkpoint)
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)], capture_output=True).returncode:
            pytest.skip("root ignores permissions, and a read-only tmpfs cannot be mounted here")
    else:
        target.chmod(0o555)
    try:
        result = cli.invoke(app, ["run", str(path), "--output", str(target / "out")])
    finally:
        subprocess.run(["umount", str(target)]) if os.geteuid() == 0 else target.chmod(0o755)
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert "cannot write the results folder" in message and "choose another --output" in message


def test_the_disk_check_names_the_space_needed(tmp_path, monkeypatch):
    from clasr.experiment import disk

    monkeypatch.setattr(disk.shutil, "disk_usage", lambda place: shutil._ntuple_diskusage(100, 90, 3 * 2**20))
    with pytest.raises(disk.DiskSpaceError, match=r"x: not enough free disk space for the test: needs about 18.0 MB free, 3.0 MB free"):
        disk.require_free_space(tmp_path / "x", 10 * 2**20, "the test")


def test_orphans_of_a_killed_run_are_cleaned_at_start(tmp_path, killed_after_task_1, monkeypatch):
    path, committed = killed_after_task_1
    out = tmp_path / "out"
    shutil.copytree(committed, out)
    for orphan in (out / ".progress.x1y2.tmp", out / "hyps" / "row1" / ".test_a.jsonl.abc.tmp"):
        orphan.mkdir(parents=True)
        (orphan / "junk").write_bytes(b"0" * 1000)
    (out / "hyps" / "row2").mkdir()
    (out / "hyps" / "row2" / "test_a.jsonl").write_text("a stale half-scored row\n")
    calls = []
    original = runner.remove_orphans
    monkeypatch.setattr(runner, "remove_orphans", lambda folder: calls.append(original(folder)) or calls[-1])
    _kill_on_task_2(monkeypatch)
    with pytest.raises(Killed):
        run_experiment(load_config(path, {"output_dir": str(out)}))
    assert calls == [[out / ".progress.x1y2.tmp", out / "hyps" / "row1" / ".test_a.jsonl.abc.tmp"]]
    assert not (out / "hyps" / "row2").exists()
    assert (out / "hyps" / "row1" / "test_a.jsonl").exists()


# --- --set reaches list items --------------------------------------------------------------------------


def test_set_reaches_list_items(tmp_path, tiny_checkpoint):
    data = {"tasks": [{"name": "a", "train": {}}, {"name": "b", "train": {"split": "x"}}], "general": [{"test": {}}]}
    out = apply_overrides(data, {"tasks.1.train.max_utterances": 16, "general.0.test.split": "dev"})
    assert out["tasks"][1]["train"] == {"split": "x", "max_utterances": 16}
    assert out["general"][0]["test"] == {"split": "dev"} and data["tasks"][1]["train"] == {"split": "x"}
    assert apply_overrides({"xs": [1, 2]}, {"xs.1": 5}) == {"xs": [1, 5]}
    with pytest.raises(ConfigError, match=r"override general.1.test.split: general.1 must name an item of a list of 1 \(0 to 0\)"):
        apply_overrides(data, {"general.1.test.split": "dev"})
    with pytest.raises(ConfigError, match="tasks.first must name an item"):
        apply_overrides(data, {"tasks.first.name": "x"})
    path = _config(tmp_path, tiny_checkpoint)
    config = load_config(path, {"tasks.0.train.max_utterances": 3, "general.0.test.split": "test"})
    assert config.tasks[0].train.max_utterances == 3 and config.general[0].test.split == "test"


# --- resume after a kill stays byte-exact ----------------------------------------------------------------

COMPARED = ("matrix.json", "matrix_wer.csv", "metrics.json", "model/model.safetensors",
            "progress/model.safetensors", "progress/strategy.safetensors")


def _outputs(out: Path) -> dict[str, bytes]:
    files = {name: (out / name).read_bytes() for name in COMPARED}
    files.update({str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "hyps").rglob("*.jsonl"))})
    return files


def test_resume_after_a_kill_at_a_random_point_is_byte_exact(tmp_path, tiny_checkpoint, monkeypatch):
    """fp32, strategy with state (FTA). The kill falls on a random one of the run's atomic
    writes and training batches (drawn with a printed seed)."""
    import random

    import clasr.atomic
    import clasr.train

    path = _config(tmp_path, tiny_checkpoint, max_steps=2)
    reference = load_config(path, {"output_dir": str(tmp_path / "reference")})
    points = []
    original_replace, original_backward = clasr.atomic.os.replace, clasr.train._backward

    def counting_replace(*args):
        points.append("write")
        return original_replace(*args)

    def counting_backward(*args, **kwargs):
        points.append("batch")
        return original_backward(*args, **kwargs)

    monkeypatch.setattr(clasr.atomic.os, "replace", counting_replace)
    monkeypatch.setattr(clasr.train, "_backward", counting_backward)
    run_experiment(reference)
    seed = random.randrange(10**6)
    kill_at = random.Random(seed).randrange(1, len(points))
    print(f"kill seed {seed}: at event {kill_at} of {len(points)} ({points[kill_at - 1]})")
    count = [0]

    def maybe_kill():
        count[0] += 1
        if count[0] == kill_at:
            raise Killed

    monkeypatch.setattr(clasr.atomic.os, "replace", lambda *a: maybe_kill() or original_replace(*a))
    monkeypatch.setattr(clasr.train, "_backward", lambda *a, **k: maybe_kill() or original_backward(*a, **k))
    with pytest.raises(Killed):
        run_experiment(load_config(path))
    monkeypatch.undo()
    run_experiment(load_config(path))
    assert _outputs(tmp_path / "out") == _outputs(tmp_path / "reference")


@pytest.mark.slow
def test_resume_after_kill_9_of_the_process_is_byte_exact(tmp_path, tiny_checkpoint):
    """A real ``kill -9`` of ``clasr run`` at a random moment, then a rerun: the same bytes as a run never killed."""
    import random
    import signal
    import time

    path = _config(tmp_path, tiny_checkpoint, max_steps=2)
    command = [sys.executable, "-m", "clasr.cli", "run", str(path)]
    start = time.perf_counter()
    subprocess.run([*command, "--output", str(tmp_path / "reference")], check=True, capture_output=True)
    duration = time.perf_counter() - start
    seed = random.randrange(10**6)
    delay = random.Random(seed).uniform(0.3 * duration, 0.95 * duration)  # the first ~30 %: start-up, imports
    print(f"kill seed {seed}: kill -9 after {delay:.1f} s of a {duration:.1f} s run")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    subprocess.run(command, check=True, capture_output=True)
    assert _outputs(tmp_path / "out") == _outputs(tmp_path / "reference")
    assert not list((tmp_path / "out").rglob(".*.tmp"))
