"""Write a transformers Whisper model, as it is now, as a CTranslate2 Whisper model.

The inverse of :mod:`clasr.models.convert` (same name mapping, read in the other direction)::

    model.{side}.embed_positions.weight        {side}/position_encodings/encodings
    model.{side}.layer_norm                    {side}/layer_norm/{gamma,beta}
    model.encoder.conv{1,2}                    encoder/conv{1,2}
    self_attn.{q,k,v}_proj                     self_attention/linear_0 (q;k;v stacked by rows,
                                               zeros for k's missing bias)
    self_attn.out_proj                         self_attention/linear_1
    encoder_attn.q_proj                        attention/linear_0
    encoder_attn.{k,v}_proj                    attention/linear_1 (k;v stacked, zero k bias)
    encoder_attn.out_proj                      attention/linear_2
    fc1, fc2, *_layer_norm                     ffn/linear_{0,1}, */layer_norm
    model.decoder.embed_tokens.weight          decoder/embeddings/weight
                                               (decoder/projection/weight is an alias of it)

The weights are the model's *current* ones: a linear layer wrapped by an adapter contributes
its adapted weight W' = W + ΔW (``adapted_weight()``), so an adapted model converts without
merging. ``config.json`` carries what CTranslate2's own converter writes for Whisper
(``WhisperLoader.set_config`` in ctranslate2 4.8):

    suppress_ids         generation_config.suppress_tokens
    suppress_ids_begin   generation_config.begin_suppress_tokens
    lang_ids             sorted ids of generation_config.lang_to_id, else of every special
                         special token of the tokenizer that is not a control or timestamp token
    alignment_heads      generation_config.alignment_heads, else every head of the upper
                         half of the decoder layers

The vocabulary lists the token of every id (``vocabulary.txt``, one a line); ids the tokenizer
lacks at the end are Whisper's timestamp tokens ``<|0.00|>``, ``<|0.02|>``, …, as CTranslate2
names them. ``tokenizer.json`` is copied too (faster-whisper reads it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from clasr.atomic import atomic_path
from clasr.models.ct2 import SUPPORTED_VERSION, CT2Model, ct2_model_bytes
from clasr.models.errors import ModelError

SPEC_NAME = "WhisperSpec"
SPEC_REVISION = 3
WEIGHT_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
GELU = 3  # CTranslate2's activation id for exact GELU
# Rank-0 variables of a WhisperSpec, with the dtypes CTranslate2's converter gives them. The
# decoder's alignment_layer/alignment_heads are the spec's defaults (runtime-only settings).
DECODER_SCALARS = {
    "activation": np.int8(GELU),
    "alibi": np.int8(0),
    "alibi_use_positive_positions": np.int8(0),
    "alignment_heads": np.int16(1),
    "alignment_layer": np.int16(-1),
    "pre_norm": np.int8(1),
    "scale_alibi": np.int8(0),
    "scale_embeddings": np.int8(0),
    "start_from_zero_embedding": np.int8(0),
}
CONTROL_TOKENS = {
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|nospeech|>",
    "<|notimestamps|>",
}
TIMESTAMP = re.compile(r"^<\|\d+\.\d\d\|>$")
TIMESTAMP_STEP = 0.02
FILES = ("model.bin", "config.json", "vocabulary.txt", "tokenizer.json")


def ct2_whisper_files(model, tokenizer, weight_dtype: str = "float32") -> dict[str, bytes]:
    """The files of a CTranslate2 Whisper folder for ``model`` (a transformers
    ``WhisperForConditionalGeneration``, adapters allowed) and its ``tokenizer``, as
    name → bytes; ``ctranslate2.models.Whisper(name, files=…)`` loads them from memory."""
    vocabulary = ct2_vocabulary(tokenizer, model.config.vocab_size)
    return {
        "model.bin": ct2_model_bytes(ct2_whisper_model(model, weight_dtype)),
        "config.json": (json.dumps(ct2_whisper_config(model, tokenizer), indent=2, sort_keys=True) + "\n").encode(),
        "vocabulary.txt": "".join(token + "\n" for token in vocabulary).encode("utf-8"),
        "tokenizer.json": tokenizer.backend_tokenizer.to_str().encode("utf-8"),
    }


def export_ct2_whisper(model, tokenizer, out_dir: str | Path, weight_dtype: str = "float32") -> Path:
    """Write ``model`` as a CTranslate2 Whisper folder ``out_dir`` (appears whole or not at all).

    ``weight_dtype`` is how the weights are stored, float32 or float16; CTranslate2 can still
    run them in another compute type (e.g. int8), quantizing when it loads the model."""
    files = ct2_whisper_files(model, tokenizer, weight_dtype)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name, content in files.items():
            (tmp / name).write_bytes(content)
    return Path(out_dir)


def ct2_whisper_model(model, weight_dtype: str = "float32") -> CT2Model:
    """The ``model.bin`` content of ``model``'s current weights, stored as ``weight_dtype``."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise ModelError(f"weight dtype {weight_dtype!r} is not one of {', '.join(WEIGHT_DTYPES)}")
    dtype = WEIGHT_DTYPES[weight_dtype]
    config = model.config
    if config.activation_function != "gelu" or config.scale_embedding:
        raise ModelError(
            f"activation {config.activation_function!r}, scale_embedding={config.scale_embedding}: "
            "CTranslate2's Whisper needs exact GELU and unscaled embeddings"
        )
    if not torch.equal(model.proj_out.weight, model.model.decoder.embed_tokens.weight):
        raise ModelError("proj_out differs from the decoder's token embeddings; CTranslate2's Whisper ties them")
    arrays: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for side in ("encoder", "decoder"):
            arrays.update(_side(getattr(model.model, side), side))
        arrays["decoder/embeddings/weight"] = model.model.decoder.embed_tokens.weight
        variables = {name: _numpy(tensor, dtype) for name, tensor in arrays.items()}
    variables["encoder/num_heads"] = np.int16(config.encoder_attention_heads)
    variables["decoder/num_heads"] = np.int16(config.decoder_attention_heads)
    variables.update({f"decoder/{name}": value for name, value in DECODER_SCALARS.items()})
    variables = {name: np.asarray(variables[name]) for name in sorted(variables)}
    aliases = {"decoder/projection/weight": "decoder/embeddings/weight"}
    return CT2Model(SUPPORTED_VERSION, SPEC_NAME, SPEC_REVISION, variables, aliases)


def _numpy(tensor: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy().astype(dtype)


def _side(module: nn.Module, side: str) -> dict[str, torch.Tensor]:
    """The weights of the encoder or the decoder (without the decoder's token embeddings)."""
    arrays = {
        f"{side}/position_encodings/encodings": module.embed_positions.weight,
        **_norm(module.layer_norm, f"{side}/layer_norm"),
    }
    if side == "encoder":
        arrays.update(_linear(module.conv1, "encoder/conv1"))
        arrays.update(_linear(module.conv2, "encoder/conv2"))
    for i, layer in enumerate(module.layers):
        prefix = f"{side}/layer_{i}"
        attention = layer.self_attn
        arrays.update(_fused([attention.q_proj, attention.k_proj, attention.v_proj], f"{prefix}/self_attention/linear_0"))
        arrays.update(_linear(attention.out_proj, f"{prefix}/self_attention/linear_1"))
        arrays.update(_norm(layer.self_attn_layer_norm, f"{prefix}/self_attention/layer_norm"))
        if side == "decoder":
            cross = layer.encoder_attn
            arrays.update(_linear(cross.q_proj, f"{prefix}/attention/linear_0"))
            arrays.update(_fused([cross.k_proj, cross.v_proj], f"{prefix}/attention/linear_1"))
            arrays.update(_linear(cross.out_proj, f"{prefix}/attention/linear_2"))
            arrays.update(_norm(layer.encoder_attn_layer_norm, f"{prefix}/attention/layer_norm"))
        arrays.update(_linear(layer.fc1, f"{prefix}/ffn/linear_0"))
        arrays.update(_linear(layer.fc2, f"{prefix}/ffn/linear_1"))
        arrays.update(_norm(layer.final_layer_norm, f"{prefix}/ffn/layer_norm"))
    return arrays


def current_weight(module: nn.Module) -> torch.Tensor:
    """The weight a (possibly adapter-wrapped) layer applies now: W' for an adapter, else W."""
    adapted = getattr(module, "adapted_weight", None)
    return adapted() if callable(adapted) else module.weight


def _bias(module: nn.Module) -> torch.Tensor:
    """The layer's bias, zeros where it has none (transformers' k projections)."""
    weight = current_weight(module)
    return module.bias if module.bias is not None else weight.new_zeros(weight.shape[0])


def _linear(module: nn.Module, name: str) -> dict[str, torch.Tensor]:
    return {f"{name}/weight": current_weight(module), f"{name}/bias": _bias(module)}


def _fused(modules: list[nn.Module], name: str) -> dict[str, torch.Tensor]:
    """Projections stacked by rows into one (CTranslate2's fused q;k;v and k;v)."""
    return {
        f"{name}/weight": torch.cat([current_weight(m) for m in modules]),
        f"{name}/bias": torch.cat([_bias(m) for m in modules]),
    }


def _norm(module: nn.LayerNorm, name: str) -> dict[str, torch.Tensor]:
    return {f"{name}/gamma": module.weight, f"{name}/beta": module.bias}


def ct2_whisper_config(model, tokenizer) -> dict:
    """The ``config.json`` CTranslate2 reads for a Whisper model (see the module docstring)."""
    generation = model.generation_config
    heads = generation.alignment_heads or _upper_half_heads(model.config)
    lang_to_id = getattr(generation, "lang_to_id", None)
    lang_ids = sorted(lang_to_id.values()) if lang_to_id else _language_token_ids(tokenizer)
    return {
        "alignment_heads": [[int(layer), int(head)] for layer, head in heads],
        "lang_ids": [int(i) for i in lang_ids],
        "suppress_ids": [int(i) for i in generation.suppress_tokens or []],
        "suppress_ids_begin": [int(i) for i in generation.begin_suppress_tokens or []],
    }


def _upper_half_heads(config) -> list[list[int]]:
    layers = range(config.decoder_layers // 2, config.decoder_layers)
    return [[layer, head] for layer in layers for head in range(config.decoder_attention_heads)]


def _language_token_ids(tokenizer) -> list[int]:
    """Ids of the special tokens that are neither control nor timestamp tokens: the languages
    (taken from the tokenizer, not from a list of codes: tiny.en's Hebrew is ``<|iw|>``)."""
    return sorted(
        token_id
        for token_id, token in tokenizer.added_tokens_decoder.items()
        if token.special and token.content not in CONTROL_TOKENS and not TIMESTAMP.match(token.content)
    )


def ct2_vocabulary(tokenizer, vocab_size: int) -> list[str]:
    """The token of every id below ``vocab_size``; ids past the tokenizer are timestamps."""
    known = min(len(tokenizer), vocab_size)
    if len(tokenizer) > vocab_size:
        raise ModelError(f"the tokenizer has {len(tokenizer)} tokens but the model only {vocab_size} embeddings")
    tokens = tokenizer.convert_ids_to_tokens(list(range(known)))
    missing = [i for i, token in enumerate(tokens) if token is None]
    if missing:
        raise ModelError(f"the tokenizer has no token for ids {missing[:5]} (of {len(missing)}); cannot list the vocabulary")
    timestamps = [f"<|{i * TIMESTAMP_STEP:.2f}|>" for i in range(vocab_size - known)]
    return tokens + timestamps
