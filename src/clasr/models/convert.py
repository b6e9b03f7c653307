"""Convert a CTranslate2 Whisper folder into a transformers Whisper checkpoint folder.

Input: ``model.bin`` (any float dtype), ``config.json`` (suppression lists, alignment heads),
``tokenizer.json`` and ``vocabulary.txt``, as written by CTranslate2's Whisper converter.
Output: a folder that ``WhisperForConditionalGeneration.from_pretrained`` and
``WhisperProcessor.from_pretrained`` load offline, with float32 weights.

Name mapping (``{side}`` is ``encoder`` or ``decoder``, ``i`` a layer index)::

    {side}/position_encodings/encodings      model.{side}.embed_positions.weight
    {side}/layer_norm/{gamma,beta}           model.{side}.layer_norm.{weight,bias}
    encoder/conv{1,2}                        model.encoder.conv{1,2}
    {side}/layer_i/self_attention/linear_0   q;k;v stacked by rows -> self_attn.{q,k,v}_proj
    {side}/layer_i/self_attention/linear_1   self_attn.out_proj
    {side}/layer_i/self_attention/layer_norm self_attn_layer_norm
    decoder/layer_i/attention/linear_0       encoder_attn.q_proj
    decoder/layer_i/attention/linear_1       k;v stacked by rows -> encoder_attn.{k,v}_proj
    decoder/layer_i/attention/linear_2       encoder_attn.out_proj
    decoder/layer_i/attention/layer_norm     encoder_attn_layer_norm
    {side}/layer_i/ffn/linear_{0,1}          fc1, fc2
    {side}/layer_i/ffn/layer_norm            final_layer_norm
    decoder/embeddings/weight                model.decoder.embed_tokens.weight (tied to proj_out)

transformers' k projections have no bias: the k slice of a fused bias must be zero and is
dropped. Both vocabularies are supported: English-only (51,864 tokens) and multilingual
(51,865 with 99 languages; 51,866 with 100, as large-v3). Their special tokens follow the
text tokens in a fixed order (:func:`special_token_ids`), checked by name against
vocabulary.txt. The tokenizer pads with <|endoftext|>, as OpenAI's checkpoints do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (
    AddedToken,
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizerFast,
)

from clasr.atomic import atomic_path
from clasr.models.ct2 import CT2Model, read_ct2_model
from clasr.models.errors import ModelError

CT2_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")

# vocabulary size -> number of text (BPE) tokens; the special tokens follow them
TEXT_TOKENS = {51864: 50256, 51865: 50257, 51866: 50257}
TIMESTAMP_COUNT = 1501  # <|0.00|> ... <|30.00|> in steps of 0.02 s
MAX_TARGET_TOKENS = 448

GELU = 3  # CTranslate2's activation id for exact GELU
EXPECTED_FLAGS = {"activation": GELU, "alibi": 0, "alibi_use_positive_positions": 0, "pre_norm": 1, "scale_alibi": 0,
                  "scale_embeddings": 0, "start_from_zero_embedding": 0}
IGNORED_SCALARS = {"num_heads", "alignment_heads", "alignment_layer"}  # read for the config, or runtime-only

LAYER_LINEARS = {"self_attention/linear_1": "self_attn.out_proj", "ffn/linear_0": "fc1", "ffn/linear_1": "fc2"}
LAYER_NORMS = {"self_attention/layer_norm": "self_attn_layer_norm", "ffn/layer_norm": "final_layer_norm"}
DECODER_LAYER_LINEARS = {"attention/linear_0": "encoder_attn.q_proj", "attention/linear_2": "encoder_attn.out_proj"}
DECODER_LAYER_NORMS = {"attention/layer_norm": "encoder_attn_layer_norm"}


def special_token_ids(vocab_size: int, source: str = "model") -> dict[str, int]:
    """Whisper's special token ids for a vocabulary of ``vocab_size`` tokens::

        <|endoftext|> = n_text, <|startoftranscript|> = n_text + 1, then one <|xx|> per language,
        then <|translate|> <|transcribe|> <|startoflm|> <|startofprev|> <|nospeech|>
        <|notimestamps|>, then the 1,501 timestamps — so n_languages = vocab_size − n_text − 8 − 1,501.
    """
    if vocab_size not in TEXT_TOKENS:
        raise ModelError(
            f"{source}: vocabulary of {vocab_size} tokens; Whisper has 51864 (English-only), "
            "51865 or 51866 (multilingual)"
        )
    eot = TEXT_TOKENS[vocab_size]
    languages = vocab_size - eot - 8 - TIMESTAMP_COUNT
    after = eot + 2 + languages
    names = ("translate", "transcribe", "startoflm", "startofprev", "nospeech", "notimestamps")
    return {"endoftext": eot, "startoftranscript": eot + 1, "first_language": eot + 2, "languages": languages,
            **{name: after + i for i, name in enumerate(names)}}


def _decoder_ids(special: dict[str, int]) -> dict[str, int]:
    """The decoder's special ids, the same in the model config and the generation config."""
    return dict(decoder_start_token_id=special["startoftranscript"], bos_token_id=special["startoftranscript"],
                eos_token_id=special["endoftext"], pad_token_id=special["endoftext"])


def convert_ct2_whisper(ct2_dir: str | Path, out_dir: str | Path) -> Path:
    """Convert the CTranslate2 Whisper folder ``ct2_dir`` into a transformers folder ``out_dir``.

    ``out_dir`` appears whole or not at all (it replaces an existing folder of that name).
    """
    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    missing = [name for name in CT2_FILES if not (ct2_dir / name).is_file()]
    if missing:
        raise ModelError(f"{ct2_dir}: not a CTranslate2 Whisper folder, missing {', '.join(missing)}")
    ct2 = read_ct2_model(ct2_dir / "model.bin")
    config = whisper_config(ct2)
    state_dict = whisper_state_dict(ct2)
    check_state_dict(state_dict, config, ct2.source)
    tokenizer = whisper_tokenizer(ct2_dir / "tokenizer.json", ct2_dir / "vocabulary.txt", config.vocab_size)
    generation_config = whisper_generation_config(ct2_dir / "config.json", tokenizer)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        config.save_pretrained(tmp)
        generation_config.save_pretrained(tmp)
        save_file(state_dict, tmp / "model.safetensors", metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(tmp)
    return out_dir


def whisper_config(ct2: CT2Model) -> WhisperConfig:
    """The transformers config implied by the shapes and scalars of ``ct2``."""
    if ct2.spec_name != "WhisperSpec":
        raise ModelError(f"{ct2.source}: spec {ct2.spec_name!r} is not a Whisper model (expected 'WhisperSpec')")
    _check_flags(ct2)
    embeddings = ct2.resolve("decoder/embeddings/weight")
    vocab_size, d_model = embeddings.shape
    special = special_token_ids(vocab_size, ct2.source)
    return WhisperConfig(
        vocab_size=vocab_size,
        d_model=d_model,
        num_mel_bins=ct2.resolve("encoder/conv1/weight").shape[1],
        encoder_layers=count_layers(ct2, "encoder"),
        decoder_layers=count_layers(ct2, "decoder"),
        encoder_attention_heads=int(ct2.scalar("encoder/num_heads")),
        decoder_attention_heads=int(ct2.scalar("decoder/num_heads")),
        encoder_ffn_dim=ct2.resolve("encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=ct2.resolve("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=ct2.resolve("encoder/position_encodings/encodings").shape[0],
        max_target_positions=ct2.resolve("decoder/position_encodings/encodings").shape[0],
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        **_decoder_ids(special),
    )


def _check_flags(ct2: CT2Model) -> None:
    """Refuse scalars that would change the architecture away from transformers' Whisper."""
    for name, value in ct2.variables.items():
        if value.ndim != 0:
            continue
        flag = name.rsplit("/", 1)[-1]
        if flag in IGNORED_SCALARS:
            continue
        if flag not in EXPECTED_FLAGS:
            raise ModelError(f"{ct2.source}: unknown scalar {name!r} = {value.item()}; cannot tell what it changes")
        if value.item() != EXPECTED_FLAGS[flag]:
            raise ModelError(
                f"{ct2.source}: {name!r} = {value.item()}, but transformers' Whisper needs {EXPECTED_FLAGS[flag]}"
            )


def count_layers(ct2: CT2Model, side: str) -> int:
    """The number of ``{side}/layer_<i>/`` blocks; their indices must run from 0 without gaps."""
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    indices = {int(match.group(1)) for name in ct2.variables if (match := pattern.match(name))}
    if indices != set(range(len(indices))) or not indices:
        raise ModelError(f"{ct2.source}: {side} layer indices {sorted(indices)} are not 0..n-1")
    return len(indices)


class _Variables:
    """Float32 copies of the CT2 arrays, remembering which ones the mapping consumed."""

    def __init__(self, ct2: CT2Model) -> None:
        self.ct2 = ct2
        self.used: set[str] = set()

    def take(self, name: str) -> np.ndarray:
        array = self.ct2.resolve(name)
        if not np.issubdtype(array.dtype, np.floating):
            raise ModelError(
                f"{self.ct2.source}: variable {name!r} is {array.dtype}; quantized models are not supported"
            )
        self.used.add(self.ct2.aliases.get(name, name))
        return np.ascontiguousarray(array, dtype=np.float32)

    def unused(self) -> list[str]:
        return sorted(name for name, value in self.ct2.variables.items() if value.ndim and name not in self.used)


def whisper_state_dict(ct2: CT2Model) -> dict[str, torch.Tensor]:
    """All weights of ``ct2`` under transformers' names, in float32 (``proj_out`` is tied, not stored)."""
    variables = _Variables(ct2)
    arrays: dict[str, np.ndarray] = {}
    for side in ("encoder", "decoder"):
        prefix = f"model.{side}"
        arrays[f"{prefix}.embed_positions.weight"] = variables.take(f"{side}/position_encodings/encodings")
        arrays.update(_norm(variables, f"{side}/layer_norm", f"{prefix}.layer_norm"))
        for i in range(count_layers(ct2, side)):
            arrays.update(_layer(variables, side, f"{side}/layer_{i}", f"{prefix}.layers.{i}"))
    for conv in ("conv1", "conv2"):
        arrays.update(_linear(variables, f"encoder/{conv}", f"model.encoder.{conv}"))
    arrays["model.decoder.embed_tokens.weight"] = variables.take("decoder/embeddings/weight")
    _check_tied_projection(variables, arrays["model.decoder.embed_tokens.weight"])
    if variables.unused():
        raise ModelError(f"{ct2.source}: variables with no transformers counterpart: {', '.join(variables.unused())}")
    return {name: torch.from_numpy(array) for name, array in arrays.items()}


def _layer(variables: _Variables, side: str, ct2_prefix: str, hf_prefix: str) -> dict[str, np.ndarray]:
    """The weights of one encoder or decoder layer."""
    linears, norms = dict(LAYER_LINEARS), dict(LAYER_NORMS)
    arrays = _fused(variables, f"{ct2_prefix}/self_attention/linear_0", f"{hf_prefix}.self_attn", "qkv")
    if side == "decoder":
        linears.update(DECODER_LAYER_LINEARS)
        norms.update(DECODER_LAYER_NORMS)
        arrays.update(_fused(variables, f"{ct2_prefix}/attention/linear_1", f"{hf_prefix}.encoder_attn", "kv"))
    for ct2_name, hf_name in linears.items():
        arrays.update(_linear(variables, f"{ct2_prefix}/{ct2_name}", f"{hf_prefix}.{hf_name}"))
    for ct2_name, hf_name in norms.items():
        arrays.update(_norm(variables, f"{ct2_prefix}/{ct2_name}", f"{hf_prefix}.{hf_name}"))
    return arrays


def _linear(variables: _Variables, ct2_prefix: str, hf_prefix: str) -> dict[str, np.ndarray]:
    return {
        f"{hf_prefix}.weight": variables.take(f"{ct2_prefix}/weight"),
        f"{hf_prefix}.bias": variables.take(f"{ct2_prefix}/bias"),
    }


def _norm(variables: _Variables, ct2_prefix: str, hf_prefix: str) -> dict[str, np.ndarray]:
    return {
        f"{hf_prefix}.weight": variables.take(f"{ct2_prefix}/gamma"),
        f"{hf_prefix}.bias": variables.take(f"{ct2_prefix}/beta"),
    }


def _fused(variables: _Variables, ct2_prefix: str, hf_prefix: str, parts: str) -> dict[str, np.ndarray]:
    """Split a row-stacked projection (``parts`` like "qkv") into ``{p}_proj``; k keeps no bias."""
    weight = variables.take(f"{ct2_prefix}/weight")
    bias = variables.take(f"{ct2_prefix}/bias")
    if weight.shape[0] % len(parts) or bias.shape != weight.shape[:1]:
        raise ModelError(
            f"{variables.ct2.source}: {ct2_prefix} has weight {weight.shape} and bias {bias.shape}, "
            f"which do not split into {len(parts)} equal parts ({parts})"
        )
    arrays = {}
    for part, part_weight, part_bias in zip(parts, np.split(weight, len(parts)), np.split(bias, len(parts))):
        arrays[f"{hf_prefix}.{part}_proj.weight"] = np.ascontiguousarray(part_weight)
        if part != "k":
            arrays[f"{hf_prefix}.{part}_proj.bias"] = np.ascontiguousarray(part_bias)
        elif np.any(part_bias != 0):
            raise ModelError(
                f"{variables.ct2.source}: the k slice of {ct2_prefix}/bias is not zero "
                f"(max |b| = {np.abs(part_bias).max():.3g}); transformers' k_proj has no bias"
            )
    return arrays


def _check_tied_projection(variables: _Variables, embeddings: np.ndarray) -> None:
    """The output projection must be the token embedding matrix (an alias, or an equal copy)."""
    projection = variables.take("decoder/projection/weight")
    if not np.array_equal(projection, embeddings):
        raise ModelError(f"{variables.ct2.source}: decoder/projection/weight differs from the embeddings (untied)")


def check_state_dict(state_dict: dict[str, torch.Tensor], config: WhisperConfig, source: str) -> None:
    """Compare names and shapes with a weightless (meta-device) model built from ``config``."""
    with torch.device("meta"):
        reference = WhisperForConditionalGeneration(config)
    expected = {name: tuple(value.shape) for name, value in reference.state_dict().items() if name != "proj_out.weight"}
    got = {name: tuple(value.shape) for name, value in state_dict.items()}
    if got != expected:
        differences = sorted(set(got.items()) ^ set(expected.items()))[:10]
        raise ModelError(f"{source}: converted weights do not fit the derived config; first differences: {differences}")


def whisper_generation_config(ct2_config_path: Path, tokenizer: WhisperTokenizerFast) -> GenerationConfig:
    """Greedy-decoding settings with CT2's suppression lists; a multilingual model also gets its
    language and task tokens (``lang_to_id``, ``task_to_id``), as OpenAI's checkpoints have."""
    try:
        ct2_config = json.loads(ct2_config_path.read_text(encoding="utf-8"))
        suppress_tokens = [int(i) for i in ct2_config["suppress_ids"]]
        begin_suppress_tokens = [int(i) for i in ct2_config["suppress_ids_begin"]]
        alignment_heads = [[int(layer), int(head)] for layer, head in ct2_config["alignment_heads"]]
        language_ids = [int(i) for i in ct2_config.get("lang_ids", [])]
    except (ValueError, KeyError, TypeError) as error:
        raise ModelError(f"{ct2_config_path}: unusable CTranslate2 config ({type(error).__name__}: {error})") from None
    special = special_token_ids(len(tokenizer), str(ct2_config_path.parent))
    multilingual = len(tokenizer) > min(TEXT_TOKENS)
    languages = range(special["first_language"], special["first_language"] + special["languages"])
    if multilingual and language_ids != list(languages):
        raise ModelError(f"{ct2_config_path}: lang_ids are not the language tokens {languages[0]}..{languages[-1]}")
    extra = {}
    if multilingual:
        extra = dict(
            lang_to_id={tokenizer.convert_ids_to_tokens(i): i for i in languages},
            task_to_id={"transcribe": special["transcribe"], "translate": special["translate"]},
        )
    return GenerationConfig(
        **_decoder_ids(special),
        no_timestamps_token_id=special["notimestamps"],
        prev_sot_token_id=special["startofprev"],
        is_multilingual=multilingual,
        return_timestamps=False,
        suppress_tokens=suppress_tokens,
        begin_suppress_tokens=begin_suppress_tokens,
        alignment_heads=alignment_heads,
        max_length=MAX_TARGET_TOKENS,
        **extra,
    )


def whisper_tokenizer(tokenizer_json: Path, vocabulary_txt: Path, vocab_size: int) -> WhisperTokenizerFast:
    """The tokenizer of ``tokenizer_json`` plus the timestamp tokens, checked id by id against
    ``vocabulary_txt`` (one token per line, line number = id) and the model's ``vocab_size``."""
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(tokenizer_json), pad_token="<|endoftext|>")
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMP_COUNT)]
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in timestamps])
    vocabulary = vocabulary_txt.read_text(encoding="utf-8").splitlines()
    if len(tokenizer) != vocab_size or len(vocabulary) != vocab_size:
        raise ModelError(
            f"{tokenizer_json.parent}: tokenizer has {len(tokenizer)} tokens with timestamps, "
            f"vocabulary.txt {len(vocabulary)} lines, the model {vocab_size} embeddings; they must agree"
        )
    tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    mismatches = [i for i, (token, line) in enumerate(zip(tokens, vocabulary)) if token != line]
    if mismatches:
        i = mismatches[0]
        raise ModelError(
            f"{vocabulary_txt}: {len(mismatches)} ids differ from tokenizer.json, "
            f"first id {i}: tokenizer {tokens[i]!r}, vocabulary.txt {vocabulary[i]!r}"
        )
    special = special_token_ids(vocab_size, str(tokenizer_json.parent))
    wrong = {name: tokens[i] for name, i in special.items() if name not in ("first_language", "languages")
             and tokens[i] != f"<|{name}|>" and not (name == "nospeech" and tokens[i] == "<|nocaptions|>")}
    if wrong:
        raise ModelError(f"{vocabulary_txt}: special tokens not where Whisper has them: {wrong}")
    return tokenizer
