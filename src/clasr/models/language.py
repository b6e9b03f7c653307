"""Whisper's languages: which a model takes, the prompt language of a set, and language detection.

A multilingual Whisper (vocabulary of 51,865 tokens or more) is told what to do by its
decoder prompt::

    <|startoftranscript|> <|xx|> <|transcribe|> <|notimestamps|>

An English-only model (``.en``, 51,864 tokens) was trained without the language and task
tokens — its prompt is ``<|startoftranscript|> <|notimestamps|>`` — so it can only be told
English (or ``auto``, which on such a model always means English).

Language detection (``auto``) is the one decoder step Whisper itself uses: from
``<|startoftranscript|>`` alone, the language is the language token with the largest logit,

    ℓ̂ = argmax_{ℓ ∈ languages} logits(<|ℓ|> | encoder(x), <|startoftranscript|>).
"""

from __future__ import annotations

import torch
from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

from clasr.models.errors import ModelError

AUTO = "auto"
ENGLISH = "en"
ENGLISH_ONLY_VOCAB_SIZE = 51864
START_OF_TRANSCRIPT = "<|startoftranscript|>"
OLD_CODES = {"he": ("iw",)}  # older tokenizers (e.g. tiny.en's) name Hebrew <|iw|>


def check_language_code(language: str) -> str:
    """``language`` if it is ``auto`` or one of Whisper's ISO codes ("de"), else ValueError."""
    if language == AUTO or language in LANGUAGES:
        return language
    hint = f" (did you mean {TO_LANGUAGE_CODE[language.lower()]!r}?)" if language.lower() in TO_LANGUAGE_CODE else ""
    raise ValueError(f"unknown language {language!r}{hint}; use an ISO code Whisper knows (en, de, zh, …) or 'auto'")


def is_multilingual(model) -> bool:
    """True for a multilingual Whisper (its vocabulary holds the multilingual BPE tokens)."""
    return model.config.vocab_size > ENGLISH_ONLY_VOCAB_SIZE


def language_token_ids(tokenizer) -> dict[str, int]:
    """Language code → id of its ``<|xx|>`` token, for every language the tokenizer has."""
    ids = {}
    for code in LANGUAGES:
        for name in (code, *OLD_CODES.get(code, ())):
            token_id = tokenizer.convert_tokens_to_ids(f"<|{name}|>")
            if token_id is not None and token_id != tokenizer.unk_token_id:
                ids[code] = token_id
                break
    return ids


def prompt_language(model, tokenizer, language: str, where: str = "language") -> str | None:
    """The language token a set's prompt carries: None on an English-only model (whose prompt
    has none), the code on a multilingual one; ``auto`` stays ``auto`` (detected per utterance).

    ModelError (naming ``where``, e.g. the config key) when the model cannot take the language.
    """
    check_language_code(language)
    if not is_multilingual(model):
        if language not in (ENGLISH, AUTO):
            raise ModelError(
                f"{where}: {language!r} on an English-only Whisper model (vocabulary {model.config.vocab_size}); "
                "it transcribes English only — use a multilingual model (e.g. base) or language 'en'"
            )
        return None
    if language != AUTO and language not in language_token_ids(tokenizer):
        raise ModelError(f"{where}: the model's tokenizer has no <|{language}|> token")
    return language


@torch.no_grad()
def detect_language(model, input_features: torch.Tensor, tokenizer) -> list[str]:
    """The most likely language of each row of ``input_features`` (one decoder step from
    ``<|startoftranscript|>``, restricted to the language tokens)."""
    codes, ids = zip(*language_token_ids(tokenizer).items())
    start = tokenizer.convert_tokens_to_ids(START_OF_TRANSCRIPT)
    encoder_states = model.model.encoder(input_features).last_hidden_state
    decoder_input = torch.full((input_features.shape[0], 1), start, dtype=torch.long, device=input_features.device)
    hidden = model.model.decoder(input_ids=decoder_input, encoder_hidden_states=encoder_states).last_hidden_state
    logits = model.proj_out(hidden[:, -1])[:, list(ids)]
    return [codes[i] for i in logits.argmax(dim=-1).tolist()]
