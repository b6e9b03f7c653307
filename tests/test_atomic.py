import pytest
import torch

from clasr.atomic import atomic_path, recover, write_json
from clasr.experiment.checkpoint import RunState, commit, load_state, restore


def test_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text().strip().endswith("}") and '"v": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_folder_swap_and_recovery(tmp_path):
    target = tmp_path / "progress"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "x").write_text("1")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "x").write_text("2")
    assert (target / "x").read_text() == "2"
    # a crash between the two renames leaves only the backup: recover restores it
    target.rename(tmp_path / "progress.old")
    assert (recover(target) / "x").read_text() == "2"


def test_a_file_never_replaces_a_folder(tmp_path):
    folder = tmp_path / "results"
    (folder / "run").mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match="results is a folder: refusing to replace it with a file"):
        write_json(folder, {"v": 1})
    assert (folder / "run").is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_commit_and_restore_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    state = RunState([{"label": "foundation", "cells": {}}])
    commit(tmp_path, state, model, {"fisher": torch.ones(2)})
    other = torch.nn.Linear(3, 2)
    strategy_state = restore(tmp_path, other)
    assert torch.equal(other.weight, model.weight)
    assert torch.equal(strategy_state["fisher"], torch.ones(2))
    assert load_state(tmp_path).rows_done == 1
    assert load_state(tmp_path / "nothing").rows_done == 0
