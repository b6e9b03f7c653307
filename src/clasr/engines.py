"""Decoding engines: clasr's torch greedy decoder, or the same decoding in CTranslate2.

Both decode a batch greedily under the rules of :mod:`clasr.decoding` and return the same
:class:`~clasr.decoding.DecodedTokens`; :func:`greedy_decoder` picks one for a model.
``auto`` (the default) is CTranslate2 for a model on the CPU, where it is the faster one
(docs/benchmarks.md, "Evaluation speed"), and torch for a model on a GPU (CTranslate2's PyPI
wheels run on CUDA 12 only, and nobody has measured it against torch on a GPU here) or where
ctranslate2 is not installed.
``ctranslate2`` is imported only when it decodes, so the rest of clasr runs without it.

CTranslate2 runs a conversion of the model's *current* weights
(:func:`clasr.models.ct2_export.ct2_whisper_files`, adapters included), loaded from memory.
The last conversion is kept under a SHA-1 digest of every parameter and buffer and of the
suppression settings, so the sets of a matrix row, scored with the same weights, share one
conversion; any change of the weights (a training step, a merge) makes a new one.

How CTranslate2 is made to decode exactly like :func:`clasr.decoding.greedy_decode`:

- suppression: every id above end-of-text and the checkpoint's ``suppress_tokens`` at every
  step (passed as ``suppress_tokens``); at the first step also ``begin_suppress_tokens``
  (``suppress_blank=True``, which applies config.json's ``suppress_ids_begin``, written from
  the same generation config);
- budget: ``max_length`` is one bound for a whole batch, and CTranslate2 4.8 lets it generate
  n ≤ min(⌊max_length / 2⌋, max_length − len(prompt) + 1) tokens (measured, and checked by
  a test). A batch is decoded with its largest budget b_max, max_length = max(2·b_max,
  b_max + len(prompt) − 1). Greedy rows do not depend on each other, so cutting row i to its
  own budget b_i gives the tokens a decoder stopping after b_i steps gives, and row i reached
  its budget (``hit_token_limit``) iff it produced at least b_i tokens before end-of-text.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from typing import Callable, Literal

import numpy as np
import torch

from clasr.decoding import DecodedTokens, greedy_decode, suppressed_ids
from clasr.models.ct2_export import ct2_whisper_files

Engine = Literal["auto", "ctranslate2", "torch"]
ComputeType = Literal["float32", "int8", "int8_float32", "bfloat16", "int8_bfloat16"]
DEFAULT_ENGINE: Engine = "auto"

Decoder = Callable[[torch.Tensor, list[int], int, list[int]], list[DecodedTokens]]
"""(features, prompt, end-of-text id, per-row budgets) → decoded rows."""


def greedy_decoder(model, tokenizer, engine: Engine = DEFAULT_ENGINE, compute_type: ComputeType = "float32") -> Decoder:
    """The greedy decoder of ``engine`` for ``model`` as it is now (call again after the
    weights change). ``compute_type`` only concerns CTranslate2."""
    engine = resolved_engine(engine, next(model.parameters()).device, compute_type)
    if engine == "torch":
        return lambda features, prompt, eot, budgets: greedy_decode(model, features, prompt, eot, budgets)
    if engine == "ctranslate2":
        return CT2Decoder(ct2_whisper(model, tokenizer, compute_type), model)
    raise ValueError(f"unknown decoding engine {engine!r}; use 'auto', 'ctranslate2' or 'torch'")


def resolved_engine(engine: Engine, device: torch.device, compute_type: ComputeType = "float32") -> Engine:
    """The engine that ``auto`` stands for on ``device`` (any other engine is itself): a compute
    type other than float32 exists only in CTranslate2, so it makes ``auto`` CTranslate2 and is
    refused with torch (ValueError) rather than silently ignored."""
    if engine == "torch" and compute_type != "float32":
        raise ValueError(f"compute type {compute_type!r} is a CTranslate2 setting; the torch engine decodes in float32")
    if engine != "auto":
        return engine
    if compute_type != "float32":
        return "ctranslate2"
    return "ctranslate2" if device.type == "cpu" and importlib.util.find_spec("ctranslate2") else "torch"


_loaded: dict[str, "ctranslate2.models.Whisper"] = {}


def ct2_whisper(model, tokenizer, compute_type: ComputeType = "float32") -> "ctranslate2.models.Whisper":
    """A CTranslate2 Whisper holding ``model``'s current weights (converted only when they
    differ from the last conversion's)."""
    ctranslate2 = _ctranslate2()
    key = f"{weights_digest(model)}/{compute_type}/{torch.get_num_threads()}"
    if key not in _loaded:
        _loaded.clear()  # keep one model: a matrix row scores its sets one after the other
        device = "cuda" if next(model.parameters()).is_cuda else "cpu"
        files = ct2_whisper_files(model, tokenizer)
        files.pop("tokenizer.json")
        try:
            _loaded[key] = ctranslate2.models.Whisper(
                key, device=device, compute_type=compute_type, intra_threads=torch.get_num_threads(), files=files
            )
        except (ValueError, RuntimeError) as error:
            raise ValueError(
                f"CTranslate2 cannot run this model on {device} with compute type {compute_type!r} ({error}); "
                "choose another evaluation.compute_type, or evaluation.engine: torch"
            ) from error
    return _loaded[key]


def weights_digest(model) -> str:
    """SHA-1 of every parameter and buffer (names, shapes, dtypes, bytes) and of the
    generation settings the conversion reads."""
    digest = hashlib.sha1()
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor is None:
                continue
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().data)
    gen = model.generation_config
    settings = [gen.suppress_tokens, gen.begin_suppress_tokens, gen.alignment_heads, model.config.vocab_size]
    digest.update(json.dumps(settings, default=str).encode())
    return digest.hexdigest()


def _ctranslate2():
    try:
        import ctranslate2
    except ImportError as error:
        raise ValueError(
            f"evaluation.engine ctranslate2 needs the ctranslate2 package ({error}); install it, "
            "or choose evaluation.engine: torch"
        ) from error
    return ctranslate2


class CT2Decoder:
    """Greedy decoding of batches in a loaded CTranslate2 Whisper (see the module docstring)."""

    def __init__(self, whisper: "ctranslate2.models.Whisper", model):
        self.whisper = whisper
        self.model = model

    def __call__(self, features: torch.Tensor, prompt: list[int], eot: int, budgets: list[int]) -> list[DecodedTokens]:
        room = self.model.config.max_target_positions - len(prompt)
        budgets = [min(b, room) for b in budgets]
        most = max(budgets)
        array = np.ascontiguousarray(features.detach().to("cpu", torch.float32).numpy())
        results = self.whisper.generate(
            _ctranslate2().StorageView.from_array(array),
            [list(prompt)] * len(budgets),
            beam_size=1,
            max_length=max(2 * most, most + len(prompt) - 1),
            suppress_tokens=suppressed_ids(self.model, eot, first_step=False),
            suppress_blank=True,
        )
        decoded = []
        for result, budget in zip(results, budgets):
            tokens = result.sequences_ids[0]
            decoded.append(DecodedTokens(tokens[:budget], len(tokens) >= budget))
        return decoded
