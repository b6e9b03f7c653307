"""Whisper backbones: find a checkpoint, load it with its tokenizer and features, set its window.

Models are named either by a built-in name (``tiny.en``: real pretrained weights shipped in
CTranslate2 format by an installed package, converted once into a cache) or by the path of a
local transformers checkpoint folder. Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizerFast,
)

from clasr.models.builtin import BUILTIN_MODELS, builtin_checkpoint
from clasr.models.errors import ModelError
from clasr.models.language import language_token_ids

FRAMES_PER_SECOND = 100  # log-mel frames: 16 kHz audio, hop of 160 samples
FRAMES_PER_POSITION = 2  # the encoder's second convolution has stride 2
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass
class WhisperBundle:
    """A Whisper model with the feature extractor and tokenizer that belong to it.

    ``window_frames`` is the exact number of log-mel frames the encoder accepts (3000 for
    30 s). The feature extractor is the checkpoint's own, untouched (so it saves and reloads
    as usual): for a shorter window, call it with ``max_length=window_frames * hop_length``,
    ``padding="max_length"`` and ``truncation=True``.
    """

    model: WhisperForConditionalGeneration
    feature_extractor: WhisperFeatureExtractor
    tokenizer: WhisperTokenizerFast
    window_frames: int


def default_cache_dir() -> Path:
    """``$CLASR_CACHE`` if set, else ``~/.cache/clasr``."""
    return Path(os.environ.get("CLASR_CACHE") or Path.home() / ".cache" / "clasr").expanduser()


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """The local checkpoint folder for a built-in name or a path.

    A built-in name is converted into ``<cache>/models/`` on first use and reused afterwards;
    it takes precedence over a folder of the same name (write ``./tiny.en`` for the folder).
    """
    if str(name_or_path) in BUILTIN_MODELS:
        return builtin_checkpoint(str(name_or_path), default_cache_dir())
    path = Path(name_or_path).expanduser()
    missing = [] if (path / "config.json").is_file() else ["config.json"]
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.append(f"weights (one of {', '.join(WEIGHT_FILES)})")
    if missing:
        where = f"folder {path} lacks {' and '.join(missing)}" if path.is_dir() else f"{path} is not a folder"
        raise ModelError(
            f"cannot use model {str(name_or_path)!r}: {where}. Only local checkpoint folders or the "
            f"built-in names ({', '.join(BUILTIN_MODELS)}) are accepted; nothing is downloaded."
        )
    return path


def load_whisper(
    name_or_path: str | os.PathLike, window_seconds: float | None = 30.0, dtype: torch.dtype = torch.float32
) -> WhisperBundle:
    """Load a Whisper checkpoint (built-in name or local folder) in eval mode, trainable except
    for the encoder's fixed sinusoidal positions, with its encoder window set to ``window_seconds``
    (None: the checkpoint's own window, e.g. the shorter one a clasr run saved).

    See :func:`set_encoder_window` for what a window shorter than the checkpoint's implies.
    """
    try:
        path = resolve_model(name_or_path)
    except ModelError:
        raise
    except Exception as error:  # missing package, unwritable cache, corrupt CTranslate2 file …
        raise ModelError(f"cannot prepare model {str(name_or_path)!r}: {type(error).__name__}: {error}") from error
    try:
        model, info = WhisperForConditionalGeneration.from_pretrained(
            path, dtype=dtype, local_files_only=True, output_loading_info=True
        )
        feature_extractor = WhisperFeatureExtractor.from_pretrained(path, local_files_only=True)
        tokenizer = WhisperTokenizerFast.from_pretrained(path, local_files_only=True)
    except Exception as error:  # corrupt safetensors, wrong config, missing tokenizer files …
        raise ModelError(f"{path}: cannot load the Whisper checkpoint ({type(error).__name__}: {error})") from error
    if info["missing_keys"] or info["unexpected_keys"]:
        raise ModelError(
            f"{path}: weights do not match the config (missing: {sorted(info['missing_keys'])[:5]}, "
            f"unexpected: {sorted(info['unexpected_keys'])[:5]})"
        )
    if tokenizer.pad_token is None:  # clasr's earlier conversions; OpenAI's checkpoints pad with it
        tokenizer.pad_token = tokenizer.eos_token
    freeze_encoder_positions(model)
    return _bundle(model, feature_extractor, tokenizer, window_seconds)


def _bundle(
    model: WhisperForConditionalGeneration,
    feature_extractor: WhisperFeatureExtractor,
    tokenizer: WhisperTokenizerFast,
    window_seconds: float | None,
) -> WhisperBundle:
    """Apply the encoder window (None: keep the model's own) and put the model in eval mode."""
    if window_seconds is None:
        window_seconds = model.config.max_source_positions * FRAMES_PER_POSITION / FRAMES_PER_SECOND
    frames = set_encoder_window(model, window_seconds)
    return WhisperBundle(model.eval(), feature_extractor, tokenizer, frames)


def freeze_encoder_positions(model: WhisperForConditionalGeneration) -> None:
    """Make the encoder's sinusoidal position table non-trainable again.

    transformers creates it frozen but ``from_pretrained`` (5.x) leaves it trainable. The
    decoder's positions are learned in Whisper and stay trainable.
    """
    model.model.encoder.embed_positions.weight.requires_grad = False


def set_encoder_window(model: WhisperForConditionalGeneration, window_seconds: float) -> int:
    """Make the encoder take ``window_seconds`` of audio; return the number of mel frames.

    The window must be positive, a multiple of 0.02 s (one encoder position = 2 frames of
    10 ms) and no longer than the model's current window: the position table is sliced to its
    first ``frames / 2`` rows (frozen), and ``max_source_positions`` is set in every config,
    because transformers' encoder accepts exactly ``2 * max_source_positions`` frames. A
    window can only shrink; reload the checkpoint to widen it. A saved model keeps the window.

    Whisper was trained on 30 s windows. Shorter ones are cheaper but change its behaviour
    (on tiny.en, 10 s raised read-speech WER and sent a short clip into a repetition loop),
    so decoding must bound the number of generated tokens by the audio length (the
    evaluation code does), and the effect must be measured, not assumed.
    """
    frames = window_frames(window_seconds)
    positions = frames // FRAMES_PER_POSITION
    encoder = model.model.encoder
    current = encoder.embed_positions
    if positions > current.num_embeddings:
        raise ModelError(
            f"encoder window {window_seconds} s is longer than the model's "
            f"{current.num_embeddings * FRAMES_PER_POSITION / FRAMES_PER_SECOND:g} s"
        )
    if positions < current.num_embeddings:
        weight = current.weight
        sliced = nn.Embedding(positions, current.embedding_dim, device=weight.device, dtype=weight.dtype)
        sliced.weight.data.copy_(weight.data[:positions])
        sliced.weight.requires_grad = False
        encoder.embed_positions = sliced
    for module in model.modules():
        if hasattr(module, "max_source_positions"):
            module.max_source_positions = positions
        if isinstance(getattr(module, "config", None), WhisperConfig):
            module.config.max_source_positions = positions
    return frames


def windowed_feature_extractor(feature_extractor: WhisperFeatureExtractor, frames: int) -> WhisperFeatureExtractor:
    """The feature extractor to save beside a model whose encoder takes ``frames`` log-mel frames.

    Its ``chunk_length`` is the window, so transformers' processors and the
    ``automatic-speech-recognition`` pipeline pad or cut audio to exactly the frames the encoder
    accepts. transformers takes ``chunk_length`` in whole seconds: other windows are refused.
    """
    seconds, rest = divmod(frames, FRAMES_PER_SECOND)
    if rest:
        raise ModelError(
            f"an encoder window of {frames / FRAMES_PER_SECOND:g} s cannot be saved with its feature extractor "
            "(transformers takes whole seconds); use a whole number of seconds"
        )
    return WhisperFeatureExtractor.from_dict({**feature_extractor.to_dict(), "chunk_length": seconds})


def window_frames(window_seconds: float) -> int:
    """The number of mel frames in ``window_seconds``; a ModelError unless it is a positive
    multiple of 0.02 s (one encoder position)."""
    exact = window_seconds * FRAMES_PER_SECOND
    frames = round(exact) if math.isfinite(exact) else 0
    if frames <= 0 or abs(exact - frames) > 1e-6 or frames % FRAMES_PER_POSITION:
        raise ModelError(f"encoder window {window_seconds!r} s must be positive and a multiple of 0.02 s")
    return frames


def tiny_random_whisper(seed: int = 0, window_seconds: float = 2.0) -> WhisperBundle:
    """A small random-weight Whisper (d_model 64, 2+2 layers, 4 heads) for fast tests.

    It has tiny.en's vocabulary, tokenizer, feature extractor and generation settings (the
    converted tiny.en is built into the cache on first use), so it runs through every code
    path of the real model; its output is meaningless. Deterministic in ``seed`` and leaves
    the global random state untouched. The default 2 s window (200 frames) keeps it cheap.
    """
    reference = resolve_model("tiny.en")
    config = WhisperConfig.from_pretrained(reference, local_files_only=True)
    small = dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
                 encoder_ffn_dim=128, decoder_ffn_dim=128)
    for name, value in small.items():
        setattr(config, name, value)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig.from_pretrained(reference, local_files_only=True)
    model.generation_config.alignment_heads = _upper_half_heads(config)
    feature_extractor = WhisperFeatureExtractor.from_pretrained(reference, local_files_only=True)
    tokenizer = WhisperTokenizerFast.from_pretrained(reference, local_files_only=True)
    return _bundle(model, feature_extractor, tokenizer, window_seconds)


def tiny_random_multilingual_whisper(seed: int = 0, window_seconds: float = 2.0, num_mel_bins: int = 80) -> WhisperBundle:
    """A small random-weight multilingual Whisper, shaped like :func:`tiny_random_whisper`.

    ``num_mel_bins`` 80 gives the layout of base/small/medium (vocabulary 51,865, 99
    languages), 128 that of large-v3 and turbo (51,866, a 100th language ``yue``) with a
    128-bin feature extractor. Its tokenizer is :func:`multilingual_tokenizer`.
    """
    english = tiny_random_whisper(seed, window_seconds)
    languages = 100 if num_mel_bins == 128 else 99
    tokenizer = multilingual_tokenizer(english.tokenizer, languages)
    config = WhisperConfig.from_dict({**english.model.config.to_dict(), "vocab_size": len(tokenizer),
                                      "num_mel_bins": num_mel_bins, "max_source_positions": 1500})
    for name in ("decoder_start_token_id", "bos_token_id"):
        setattr(config, name, tokenizer.convert_tokens_to_ids("<|startoftranscript|>"))
    config.eos_token_id = config.pad_token_id = tokenizer.eos_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WhisperForConditionalGeneration(config)
    model.generation_config = _multilingual_generation_config(english.model.generation_config, tokenizer)
    feature_extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    return _bundle(model, feature_extractor, tokenizer, window_seconds)


def multilingual_tokenizer(english: WhisperTokenizerFast, languages: int = 99) -> WhisperTokenizerFast:
    """A tokenizer with the multilingual special-token layout, made from an English-only one.

    Multilingual Whisper has one more text token (50,257 instead of 50,256), so every special
    token sits one id higher (<|endoftext|> 50257, <|startoftranscript|> 50258, <|en|> 50259, …,
    <|notimestamps|> 50363); with 100 languages ``<|yue|>`` follows ``<|su|>`` and shifts the rest
    by one more; Hebrew is ``<|he|>`` (English-only tokenizers call it ``<|iw|>``). The text tokens are the English BPE (real multilingual checkpoints bring their
    own): enough for random-weight test models, whose output means nothing anyway.
    """
    data = json.loads(english.backend_tokenizer.to_str())
    eot = english.eos_token_id
    last_language = english.convert_tokens_to_ids("<|su|>")

    def shifted(token_id: int) -> int:
        return token_id + (token_id >= eot) + (languages == 100 and token_id > last_language)

    data["model"]["vocab"] = {token: shifted(i) for token, i in data["model"]["vocab"].items()}
    data["model"]["vocab"]["<|multilingual-extra-text-token|>"] = eot
    for token in data["added_tokens"]:
        token["id"] = shifted(token["id"])
        if token["content"] == "<|iw|>":  # Hebrew's old code in English-only tokenizers
            token["content"] = "<|he|>"
    if languages == 100:
        data["added_tokens"].append({**data["added_tokens"][0], "id": last_language + 2, "content": "<|yue|>"})
        data["added_tokens"].sort(key=lambda token: token["id"])
    return WhisperTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)),
        bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>", pad_token="<|endoftext|>",
    )


def _multilingual_generation_config(english: GenerationConfig, tokenizer: WhisperTokenizerFast) -> GenerationConfig:
    ids = {name: tokenizer.convert_tokens_to_ids(f"<|{name}|>") for name in
           ("endoftext", "startoftranscript", "notimestamps", "startofprev", "transcribe", "translate")}
    config = GenerationConfig.from_dict(english.to_dict())
    config.update(
        decoder_start_token_id=ids["startoftranscript"], bos_token_id=ids["startoftranscript"],
        eos_token_id=ids["endoftext"], pad_token_id=ids["endoftext"], no_timestamps_token_id=ids["notimestamps"],
        prev_sot_token_id=ids["startofprev"], is_multilingual=True, suppress_tokens=[], begin_suppress_tokens=[],
        task_to_id={"transcribe": ids["transcribe"], "translate": ids["translate"]},
        lang_to_id={f"<|{code}|>": i for code, i in language_token_ids(tokenizer).items()},
    )
    return config


def _upper_half_heads(config: WhisperConfig) -> list[list[int]]:
    """OpenAI's default alignment heads when none are known: every head of the upper half of
    the decoder layers (tiny.en's own heads do not exist in a smaller model)."""
    layers = range(config.decoder_layers // 2, config.decoder_layers)
    return [[layer, head] for layer in layers for head in range(config.decoder_attention_heads)]
