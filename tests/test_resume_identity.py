"""A run interrupted after task 1 was committed, then resumed, ends exactly like a run never
interrupted (fp32, tiny random Whisper): the same final weights, strategy state and WER
matrix, byte for byte. Each strategy with a state between tasks is checked, because each
restores something different (IHR's factors, EWC's Fisher and anchor, centralization's base
and pending updates, ER's memory, the merging strategies' θ_0 and running merge; FTA's running average needs only the weights and the task
index) on top of the model weights, and adapters are drawn afresh for each task."""

import json
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from clasr.experiment import runner
from clasr.experiment.config import load_config
from clasr.experiment.runner import run_experiment
from conftest import write_dataset

STRATEGIES = {
    "fta": ({"name": "fta"}, None),
    "ihr": ({"name": "ihr", "past": "exact", "curvature_batches": 1, "curvature_batch_size": 4}, None),
    "ihr_anchor_embedding": ({"name": "ihr", "past": "sum", "curvature_batches": 1, "curvature_batch_size": 4,
                              "embedding": "diagonal", "damping_mode": "absolute",
                              "anchor": {"data": "a", "split": "train", "max_utterances": 4}}, None),
    "ewc": ({"name": "ewc", "strength": 1e4, "fisher_utterances": 4}, None),
    "centralize": ({"name": "centralize", "every": 2}, {"type": "lora", "r": 2}),
    "centralize_factors": ({"name": "centralize", "every": 2, "average": "factors"}, {"type": "lora", "r": 2}),
    "er": ({"name": "er", "memory_size": 3}, None),
    "task_arithmetic": ({"name": "task_arithmetic", "scale": 0.7}, None),
    "ties": ({"name": "ties", "top_k": 0.3}, {"type": "lora", "r": 2}),
    "dare": ({"name": "dare", "drop_rate": 0.5, "merge": "ties", "top_k": 0.5}, None),
}
FAST = "ihr"  # in the default suite; the others are marked slow (each is two runs of ~10–20 s)


class Interrupted(Exception):
    pass


def _config(tmp_path: Path, checkpoint: Path, strategy: dict, adapter: dict | None) -> Path:
    a = write_dataset(tmp_path / "a", seed=1)
    b = write_dataset(tmp_path / "b", seed=2)
    data = {
        "output_dir": str(tmp_path / "out"),
        "model": {"name": str(checkpoint), "window_seconds": 2.0},
        "strategy": strategy,
        "train": {"learning_rate": 3e-3, "batch_size": 4, "warmup_ratio": 0.0, "max_steps": 2},
        "evaluation": {"batch_size": 8, "limits": {"max_new_tokens": 4}},
        "tasks": [
            {"name": "a", "data": str(a), "train": {"split": "train"}, "test": {"split": "test"}},
            {"name": "b", "data": str(b), "train": {"split": "train"}, "test": {"split": "test"}},
        ],
        "general": [{"name": "g", "data": str(a), "test": {"split": "train", "max_utterances": 2}}],
    }
    if adapter is not None:
        data["adapter"] = adapter
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _final(out: Path) -> dict:
    """What must not depend on the interruption: the WER matrix, every deployed row's hypotheses
    (through the matrix), the exported weights and the committed strategy state."""
    matrix = json.loads((out / "matrix.json").read_text())
    return {
        "wer": matrix["wer"],
        "general_wer": matrix["general_wer"],
        "model": load_file(str(out / "model" / "model.safetensors")),
        "strategy": load_file(str(strategy)) if (strategy := out / "progress" / "strategy.safetensors").exists() else {},
        "metrics": (out / "metrics.json").read_bytes(),
    }


def _same(resumed: dict, reference: dict) -> None:
    assert resumed["wer"] == reference["wer"] and resumed["general_wer"] == reference["general_wer"]
    for part in ("model", "strategy"):
        assert resumed[part].keys() == reference[part].keys(), part
        different = [k for k in reference[part] if not resumed[part][k].equal(reference[part][k])]
        assert not different, (part, different[:5])
    assert resumed["metrics"] == reference["metrics"]


def _check_resume_is_identity(tmp_path, tiny_checkpoint, monkeypatch, name):
    strategy, adapter = STRATEGIES[name]
    path = _config(tmp_path, tiny_checkpoint, strategy, adapter)
    run_experiment(load_config(path, {"output_dir": str(tmp_path / "reference")}))
    reference = _final(tmp_path / "reference")
    assert bool(reference["strategy"]) == (name != "fta")  # FTA's state is the task index alone

    trained = []
    original = runner.train_task

    def interrupt_task_2(*args, **kwargs):
        trained.append(kwargs["description"])
        if kwargs["description"].startswith("task 2"):
            raise Interrupted  # task 1 and its evaluation row are committed by now
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "train_task", interrupt_task_2)
    with pytest.raises(Interrupted):
        run_experiment(load_config(path))
    state = json.loads((tmp_path / "out" / "progress" / "state.json").read_text())
    assert len(state["rows"]) == 2  # foundation and task 1 committed
    monkeypatch.setattr(runner, "train_task", lambda *a, **k: trained.append(k["description"]) or original(*a, **k))
    run_experiment(load_config(path))
    assert trained == ["task 1 a", "task 2 b", "task 2 b"]  # the resumed run trains task 2 only
    _same(_final(tmp_path / "out"), reference)


def test_resume_after_task_1_equals_an_uninterrupted_run(tmp_path, tiny_checkpoint, monkeypatch, one_thread):
    _check_resume_is_identity(tmp_path, tiny_checkpoint, monkeypatch, FAST)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in STRATEGIES if n != FAST])
def test_resume_after_task_1_equals_an_uninterrupted_run_for(tmp_path, tiny_checkpoint, monkeypatch, one_thread, name):
    _check_resume_is_identity(tmp_path, tiny_checkpoint, monkeypatch, name)
