"""`clasr export RESULTS --format ct2`: ctranslate2 loads the export and decodes like clasr."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from clasr.cli import app
from clasr.data.batching import SpeechCollator, load_utterance_audio
from clasr.data.manifest import Selection, read_dataset
from clasr.decoding import greedy_decode, suppressed_ids
from clasr.models.whisper import tiny_random_multilingual_whisper, windowed_feature_extractor

ctranslate2 = pytest.importorskip("ctranslate2")


def fake_results(bundle, folder: Path) -> Path:
    """A results directory whose model/ is ``bundle``, saved as the runner's export_model does."""
    model = folder / "model"
    bundle.model.save_pretrained(model)
    bundle.tokenizer.save_pretrained(model)
    windowed_feature_extractor(bundle.feature_extractor, bundle.window_frames).save_pretrained(model)
    return folder


def test_ct2_export_decodes_like_clasr(tmp_path: Path, toy_dataset: Path, one_thread) -> None:
    """A 128-mel (large-v3 layout) model; CTranslate2 told to suppress what clasr's decoder
    suppresses (every special token; this random model has no begin-suppress list)."""
    bundle = tiny_random_multilingual_whisper(seed=11, num_mel_bins=128)
    assert not bundle.model.generation_config.begin_suppress_tokens
    with torch.no_grad():  # a sharper output distribution than random init: fewer near-ties between tokens
        bundle.model.proj_out.weight.mul_(8.0)
    results = fake_results(bundle, tmp_path / "run")
    out = tmp_path / "ct2"
    outcome = CliRunner().invoke(app, ["export", str(results), "--format", "ct2", "--output", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert {p.name for p in out.iterdir()} >= {"model.bin", "config.json", "vocabulary.txt", "preprocessor_config.json"}
    whisper = ctranslate2.models.Whisper(str(out), device="cpu", compute_type="float32", intra_threads=1)
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames, language="de")
    utts, _ = read_dataset(toy_dataset, Selection(max_utterances=4))
    features, _ = collator.features([load_utterance_audio(u) for u in utts])
    eot, budget = bundle.tokenizer.eos_token_id, 12
    ours = [d.tokens for d in greedy_decode(bundle.model, features, collator.prompt, eot, [budget] * len(utts))]
    generated = whisper.generate(ctranslate2.StorageView.from_array(features.numpy()), [collator.prompt] * len(utts),
                                 beam_size=1, max_length=64, suppress_blank=False,
                                 suppress_tokens=suppressed_ids(bundle.model, eot, first_step=False))
    theirs = []
    for result in generated:
        tokens = result.sequences_ids[0]
        tokens = tokens[len(collator.prompt):] if tokens[: len(collator.prompt)] == collator.prompt else tokens
        theirs.append((tokens[: tokens.index(eot)] if eot in tokens else tokens)[:budget])  # clasr stops at its budget
    assert sum(len(t) for t in ours) > len(utts)  # real sequences were compared, not only end tokens
    assert theirs == ours


def test_export_names_what_is_wrong(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(app, ["export", str(tmp_path), "--output", str(tmp_path / "x")])
    assert outcome.exit_code == 2 and "not a saved Whisper model folder" in outcome.output
    outcome = CliRunner().invoke(app, ["export", str(tmp_path), "--format", "onnx", "--output", str(tmp_path / "x")])
    assert outcome.exit_code == 2 and "only ct2" in outcome.output
