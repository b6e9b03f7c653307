"""The CTranslate2 decoding engine against clasr's torch greedy decoder (tokens, budgets,
hit flags), on a tiny random model and on real tiny.en with real speech."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from clasr.data.audio import load_audio
from clasr.data.batching import SpeechCollator, duration_batches
from clasr.data.manifest import Selection, read_dataset
from clasr.decoding import DecodeLimits, greedy_decode
from clasr.engines import ct2_whisper, greedy_decoder, resolved_engine
from clasr.models.whisper import load_whisper, tiny_random_whisper

from conftest import nudge, require_shared_data


def noise_features(bundle, n: int, seed: int = 0):
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    rng = np.random.default_rng(seed)
    audios = [0.1 * rng.standard_normal(16000 * (1 + i % 2)).astype(np.float32) for i in range(n)]
    return collator.features(audios)[0], collator


@pytest.fixture(scope="module")
def ending_bundle():
    """A tiny random Whisper made to end some rows on its own (a random model never emits
    end-of-text): the end-of-text embedding (tied to the output projection) becomes 1.05 × that
    of a token that some rows start producing after a few steps, so those rows end there."""
    bundle = tiny_random_whisper(seed=4)
    feats, collator = noise_features(bundle, 12)
    rows = [row.tokens for row in greedy_decode(bundle.model, feats, collator.prompt, collator.eot, [8] * 12)]
    later = {t for row in rows for t in row[1:]} - {row[0] for row in rows}
    assert later, "this seed's rows never change token; pick another seed"
    with torch.no_grad():
        embeddings = bundle.model.model.decoder.embed_tokens.weight
        embeddings[collator.eot] = 1.05 * embeddings[min(later)]
    return bundle, feats, collator


def test_ct2_tokens_equal_torch_tokens_with_per_row_budgets(ending_bundle) -> None:
    bundle, feats, collator = ending_bundle
    budgets = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 40]
    ours = greedy_decoder(bundle.model, bundle.tokenizer, "ctranslate2")(feats, collator.prompt, collator.eot, budgets)
    reference = greedy_decode(bundle.model, feats, collator.prompt, collator.eot, budgets)
    assert ours == reference
    # Not vacuous: some rows ended on their own, others were cut by their budget.
    assert {row.hit_token_limit for row in reference} == {True, False}
    assert len({len(row.tokens) for row in reference}) > 3


def test_budgets_up_to_the_decoders_last_position(tiny_bundle) -> None:
    """A random model never ends: every row runs to its budget, including one that fills all
    448 decoder positions (CTranslate2's max_length rule, see clasr.engines)."""
    feats, collator = noise_features(tiny_bundle, 3)
    room = tiny_bundle.model.config.max_target_positions - len(collator.prompt)
    budgets = [5, 37, room + 10]
    ours = greedy_decoder(tiny_bundle.model, tiny_bundle.tokenizer, "ctranslate2")(
        feats, collator.prompt, collator.eot, budgets
    )
    assert [len(row.tokens) for row in ours] == [5, 37, room]
    assert all(row.hit_token_limit for row in ours)


def test_conversion_is_reused_until_the_weights_change() -> None:
    bundle = tiny_random_whisper(seed=3)
    first = ct2_whisper(bundle.model, bundle.tokenizer)
    assert ct2_whisper(bundle.model, bundle.tokenizer) is first
    feats, collator = noise_features(bundle, 2)
    nudge(bundle.model, seed=1)
    second = ct2_whisper(bundle.model, bundle.tokenizer)
    assert second is not first
    decode = greedy_decoder(bundle.model, bundle.tokenizer, "ctranslate2")
    assert decode(feats, collator.prompt, collator.eot, [20, 20]) == greedy_decode(
        bundle.model, feats, collator.prompt, collator.eot, [20, 20]
    )


def test_unknown_engine_and_compute_type_are_named(tiny_bundle) -> None:
    with pytest.raises(ValueError, match="unknown decoding engine 'onnx'"):
        greedy_decoder(tiny_bundle.model, tiny_bundle.tokenizer, "onnx")
    with pytest.raises(ValueError, match="evaluation.compute_type"):
        greedy_decoder(tiny_bundle.model, tiny_bundle.tokenizer, "ctranslate2", "float64")


def decode_both(bundle, utterances, batch_size: int = 8):
    """(ctranslate2 rows, torch rows) for ``utterances``, batched by duration as evaluation does."""
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    limits = DecodeLimits()
    decode = greedy_decoder(bundle.model, bundle.tokenizer, "ctranslate2")
    ours, reference = [], []
    for indices in duration_batches([u.duration for u in utterances], batch_size):
        batch = [utterances[i] for i in indices]
        feats, _ = collator.features([load_audio(u.audio_path) for u in batch])
        budgets = [limits.budget(u.duration) for u in batch]
        ours += decode(feats, collator.prompt, collator.eot, budgets)
        reference += greedy_decode(bundle.model, feats, collator.prompt, collator.eot, budgets)
    return ours, reference


@pytest.mark.shared_data
def test_real_tiny_en_same_tokens_on_real_speech() -> None:
    utterances = []
    for name in ("arctic_kathleen", "an4"):
        rows, _ = read_dataset(require_shared_data(name), Selection(split="test", max_utterances=2))
        utterances += rows
    ours, reference = decode_both(load_whisper("tiny.en"), utterances)
    assert [row.tokens for row in ours] == [row.tokens for row in reference]
    assert [row.hit_token_limit for row in ours] == [row.hit_token_limit for row in reference]


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_tiny_en_same_tokens_on_64_utterances() -> None:
    utterances = []
    for name in ("arctic_kathleen", "an4"):
        rows, _ = read_dataset(require_shared_data(name), Selection(split="test", max_utterances=40))
        utterances += rows
    assert len(utterances) >= 64
    ours, reference = decode_both(load_whisper("tiny.en"), utterances, batch_size=16)
    differ = [(u.id, a.tokens, b.tokens) for u, a, b in zip(utterances, ours, reference) if a != b]
    assert differ == []


def test_evaluate_scores_the_same_with_either_engine(tiny_bundle, toy_dataset) -> None:
    from clasr.evaluate import evaluate

    utterances, _ = read_dataset(toy_dataset, Selection(split="test"))
    limits = DecodeLimits(max_new_tokens=12)
    ct2 = evaluate(tiny_bundle, utterances, batch_size=3, limits=limits, engine="ctranslate2")
    by_torch = evaluate(tiny_bundle, utterances, batch_size=3, limits=limits, engine="torch")
    assert ct2.rows == by_torch.rows and len(ct2.rows) == len(utterances)
    # the matrix cell records which engine decoded it (``auto`` resolved)
    assert (ct2.summary()["engine"], by_torch.summary()["engine"]) == ("ctranslate2", "torch")
    auto = evaluate(tiny_bundle, utterances[:1], batch_size=3, limits=limits).summary()
    assert (auto["engine"], auto["compute_type"]) == ("ctranslate2", "float32")


def test_config_names_a_bad_engine() -> None:
    from clasr.experiment.config import ConfigError, parse_config

    task = {"name": "a", "data": "x", "train": {"split": "train"}, "test": {"split": "test"}}
    config = parse_config({"tasks": [task], "evaluation": {"engine": "torch"}})
    assert (config.evaluation.engine, config.evaluation.compute_type) == ("torch", "float32")
    with pytest.raises(ConfigError, match="evaluation.engine"):
        parse_config({"tasks": [task], "evaluation": {"engine": "onnx"}})
    with pytest.raises(ConfigError, match="evaluation.compute_type"):
        parse_config({"tasks": [task], "evaluation": {"compute_type": "float64"}})


def test_auto_is_ctranslate2_on_a_cpu_and_torch_on_a_gpu(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # ctranslate2 installed
    assert resolved_engine("auto", torch.device("cpu")) == "ctranslate2"
    assert resolved_engine("auto", torch.device("cuda", 0)) == "torch"
    assert resolved_engine("torch", torch.device("cpu")) == "torch"
    assert resolved_engine("ctranslate2", torch.device("cuda")) == "ctranslate2"


def test_auto_is_torch_where_ctranslate2_is_not_installed(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "ctranslate2" else object())
    assert resolved_engine("auto", torch.device("cpu")) == "torch"


def test_clasr_imports_without_ctranslate2():
    """A GPU machine may lack ctranslate2 (its wheels need CUDA 12): everything but that engine works."""
    code = (
        "import sys; sys.modules['ctranslate2'] = None\n"
        "import clasr.cli, clasr.evaluate, clasr.experiment.runner\n"
        "from clasr.engines import ct2_whisper\n"
        "try:\n    ct2_whisper(None, None)\nexcept ValueError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "needs the ctranslate2 package" in done.stdout and "evaluation.engine: torch" in done.stdout


def test_a_compute_type_other_than_float32_means_ctranslate2_and_is_refused_with_torch():
    assert resolved_engine("auto", torch.device("cuda"), "int8") == "ctranslate2"
    with pytest.raises(ValueError, match="CTranslate2 setting"):
        resolved_engine("torch", torch.device("cpu"), "int8")
    from clasr.experiment.config import EvaluationConfig

    with pytest.raises(ValueError, match="compute_type int8 is a CTranslate2 setting"):
        EvaluationConfig(engine="torch", compute_type="int8")
