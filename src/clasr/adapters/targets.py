"""Which ``nn.Linear`` layers of a model get an adapter: module-name patterns and presets.

A pattern is matched against the full dotted module name (``model.encoder.layers.0.fc1``):
a shell-style pattern (:func:`fnmatch.fnmatchcase`) matches the whole name or its tail after
any dot (so ``q_proj`` matches every ``….q_proj``); a pattern starting with ``re:`` is a
regular expression that must match the whole name. The scope restricts the selection to
the modules under an ``encoder`` or a ``decoder`` component of the name (``encoder_attn``
inside the decoder is not the encoder).

Presets (Whisper module names):

- ``attention_qv``: the query and value projections of every attention block (encoder
  self-attention, decoder self- and cross-attention);
- ``attention_all``: query, key, value and output projections of every attention block;
- ``all_linear``: every Linear layer;
- ``encoder`` / ``decoder``: every Linear layer of the encoder / the decoder.

No preset selects ``proj_out`` (the vocabulary projection).

A Linear layer whose weight is shared with another module (Whisper's ``proj_out`` is tied
to the token embeddings) is never selected by a preset and is an error when a pattern names
it: folding an update into it would silently change the embeddings too.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict
from torch import nn

Scope = Literal["all", "encoder", "decoder"]

PRESETS: dict[str, tuple[tuple[str, ...], Scope]] = {
    "attention_qv": (("q_proj", "v_proj"), "all"),
    "attention_all": (("q_proj", "k_proj", "v_proj", "out_proj"), "all"),
    "all_linear": (("*",), "all"),
    "encoder": (("*",), "encoder"),
    "decoder": (("*",), "decoder"),
}
PRESET_EXCLUDE = ("proj_out",)


class TargetConfig(BaseModel):
    """Which Linear layers to adapt: a preset and/or patterns, a scope, and exclusions."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["attention_qv", "attention_all", "all_linear", "encoder", "decoder"] | None = "attention_qv"
    patterns: list[str] = []
    scope: Scope = "all"
    exclude: list[str] = []


def matches(name: str, pattern: str) -> bool:
    """Whether the dotted module ``name`` matches ``pattern`` (see the module docstring)."""
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return fnmatchcase(name, pattern) or fnmatchcase(name, "*." + pattern)


def in_scope(name: str, scope: Scope) -> bool:
    """Whether ``name`` lies under the encoder / decoder (``all``: always)."""
    return scope == "all" or scope in name.split(".")


def tied_linears(model: nn.Module) -> set[str]:
    """Names of the Linear modules whose weight is shared with another module."""
    owners: dict[int, int] = {}
    for _, parameter in model.named_parameters(remove_duplicate=False):
        owners[id(parameter)] = owners.get(id(parameter), 0) + 1
    return {name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and owners[id(module.weight)] > 1}


def select_targets(model: nn.Module, targets: TargetConfig) -> list[str]:
    """Names of the ``nn.Linear`` modules of ``model`` selected by ``targets``, in module order.

    Raises ``ValueError`` when nothing is selected or when a pattern names a tied layer.
    """
    preset_patterns, preset_scope = PRESETS[targets.preset] if targets.preset else ((), "all")
    tied = tied_linears(model)
    chosen = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or any(matches(name, p) for p in targets.exclude):
            continue
        if not (in_scope(name, targets.scope) and in_scope(name, preset_scope)):
            continue
        by_preset = (any(matches(name, p) for p in preset_patterns) and name not in tied
                     and not any(matches(name, p) for p in PRESET_EXCLUDE))
        by_pattern = any(matches(name, p) for p in targets.patterns)
        if by_pattern and name in tied:
            raise ValueError(f"{name} shares its weight with another module and cannot be adapted")
        if by_preset or by_pattern:
            chosen.append(name)
    if not chosen:
        raise ValueError(f"no Linear layer matches the adapter targets {targets.model_dump()}")
    return chosen
