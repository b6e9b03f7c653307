"""The multilingual example config: every set in its language, normalizer and metric, and (with
the shared data present) every general set finds its clips."""

from __future__ import annotations

from pathlib import Path

from clasr.data.manifest import read_dataset
from clasr.experiment.config import load_config
from clasr.experiment.sets import scoring

from conftest import SHARED_DATA

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multilingual_base.yaml"


def test_each_set_is_scored_in_its_language():
    config = load_config(EXAMPLE)
    assert config.model.name == "base" and [t.name for t in config.tasks] == ["an4", "arctic"]
    how = {g.name: (lambda s: (s["language"], s["normalizer"], s["metric"]))(scoring(config, g)) for g in config.general}
    assert how == {
        "arctic_general": ("en", "whisper_english", "wer"),
        "de": ("de", "whisper_basic", "wer"), "es": ("es", "whisper_basic", "wer"),
        "fr": ("fr", "whisper_basic", "wer"), "ru": ("ru", "whisper_basic", "wer"),
        "ja": ("ja", "whisper_basic", "cer_nospace"), "kk_ru": ("kk", "whisper_basic", "mer"),
    }


def test_general_sets_find_their_clips():
    if not (SHARED_DATA / "multilingual" / "metadata.jsonl").exists():
        import pytest

        pytest.skip("needs ../shared/data")
    config = load_config(EXAMPLE)
    for general in config.general:
        utterances, report = read_dataset(general.data, general.test)
        assert utterances and not report.bad_rows, general.name
        languages = {u.extra.get("language") for u in utterances}
        assert general.name in ("arctic_general", "kk_ru") or languages == {general.language}
