"""Export LoRA and DoRA adapters in the Hugging Face PEFT format, for interoperability.

clasr's own adapter files are written by :func:`clasr.adapters.save_adapters` (one
safetensors file keyed ``<layer>.<name>``, loaded back with ``load_adapters``). This module
writes the same adapters as a PEFT adapter folder instead, so that tools built on ``peft``
can use them without clasr::

    peft_model = peft.PeftModel.from_pretrained(base_model, folder)

where ``base_model`` is a fresh copy of the model the adapters were injected into (same
class, same module names). The folder holds two files:

- ``adapter_config.json``: a ``LoraConfig`` (``peft_type`` ``"LORA"``, ``task_type`` null,
  as peft's own Whisper examples use) with the rank ``r``, ``lora_alpha``,
  ``lora_dropout``, ``use_rslora``, ``use_dora``, ``bias`` ``"none"``,
  ``fan_in_fan_out`` false, ``inference_mode`` true, ``base_model_name_or_path``, and
  ``target_modules``: the full dotted names of the adapted layers. peft takes a module
  when its name equals an entry or ends with ``"." + entry``; a full name relative to the
  model's root is never the tail of another module's name, so exactly the adapted layers
  are matched. Layers whose rank or α differ from the most common ones are listed in
  ``rank_pattern`` / ``alpha_pattern`` under their full name with the dots escaped (peft
  matches those keys as regular expressions against the end of the module name).
- ``adapter_model.safetensors``: peft's checkpoint keys (those of
  ``peft.get_peft_model_state_dict``: ``base_model.model.`` + the layer name, no adapter
  name): ``<layer>.lora_A.weight`` (r × in), ``<layer>.lora_B.weight`` (out × r) and, for
  DoRA, ``<layer>.lora_magnitude_vector`` (out; peft's checkpoint format keeps the key of
  its older ParameterDict, without ``.weight``).

peft computes the same layer: y = x Wᵀ + b + s · (drop(x) Aᵀ) Bᵀ with s = α/r (α/√r with
``use_rslora``) for LoRA, and m ⊙ (W + s·BA)/‖W + s·BA‖_r for DoRA with the norm detached,
as clasr does (:mod:`clasr.adapters.dora` notes the only difference, under dropout).

Only plain LoRA and DoRA adapters have this format (PiSSA, SSVD and BLoRA do not map onto
peft's LoRA layer), the adapters must be unmerged (peft adds the update to the pretrained
weight), and settings peft holds once per adapter (dropout, rsLoRA, DoRA) must be the same
for every layer. Each of these is a ``ValueError``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import Tensor, nn

from clasr.adapters.dora import DoRALinear
from clasr.adapters.inject import adapter_modules
from clasr.adapters.lora import LoRALinear
from clasr.atomic import atomic_path

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
KEY_PREFIX = "base_model.model."


def _export_alpha(adapter: LoRALinear) -> float | int:
    """peft's ``lora_alpha``: the adapter's α, whose peft scale (α/r, or α/√r with
    ``use_rslora``) is the adapter's ``scaling`` by construction (:func:`clasr.adapters.lora.lora_scaling`);
    an int when whole, as peft writes it."""
    return int(adapter.alpha) if float(adapter.alpha).is_integer() else float(adapter.alpha)


def _dropout(adapter: LoRALinear) -> float:
    return float(adapter.dropout.p) if isinstance(adapter.dropout, nn.Dropout) else 0.0


def _uniform(values: dict[str, Any], what: str) -> Any:
    """The single value every layer shares; ``ValueError`` when the layers disagree."""
    distinct = set(values.values())
    if len(distinct) > 1:
        raise ValueError(f"the PEFT format holds one {what} for all layers; the adapters have {sorted(distinct)}")
    return distinct.pop()


def _checked_adapters(model: nn.Module) -> dict[str, LoRALinear]:
    adapters = adapter_modules(model)
    if not adapters:
        raise ValueError("the model has no adapters to export")
    for name, adapter in adapters.items():
        if not adapter.peft_exportable:
            raise ValueError(f"{name} holds a {adapter.kind or type(adapter).__name__!r} adapter: "
                             "only LoRA and DoRA have a PEFT format")
        if adapter.merged:
            raise ValueError(f"{name} is merged: unmerge the adapters before exporting them to PEFT")
    return adapters


def _pattern(values: dict[str, Any], default: Any) -> dict[str, Any]:
    """peft's rank/alpha pattern: full layer names (regex-escaped) whose value is not the default."""
    return {re.escape(name): value for name, value in values.items() if value != default}


def _most_common(values: dict[str, Any]) -> Any:
    return Counter(values.values()).most_common(1)[0][0]


def peft_lora_config(model: nn.Module, base_model_name_or_path: str | None = None) -> dict[str, Any]:
    """The ``adapter_config.json`` content for ``model``'s LoRA/DoRA adapters (see the module docstring)."""
    adapters = _checked_adapters(model)
    use_dora = _uniform({n: isinstance(a, DoRALinear) for n, a in adapters.items()}, "use_dora")
    use_rslora = _uniform({n: bool(a.rslora) for n, a in adapters.items()}, "use_rslora")
    dropout = _uniform({n: _dropout(a) for n, a in adapters.items()}, "lora_dropout")
    ranks = {name: int(adapter.r) for name, adapter in adapters.items()}
    alphas = {name: _export_alpha(adapter) for name, adapter in adapters.items()}
    r, alpha = _most_common(ranks), _most_common(alphas)
    if base_model_name_or_path is None:
        base_model_name_or_path = getattr(getattr(model, "config", None), "name_or_path", None) or None
    return {
        "peft_type": "LORA",
        "task_type": None,
        "base_model_name_or_path": base_model_name_or_path,
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": dropout,
        "use_rslora": use_rslora,
        "use_dora": use_dora,
        "target_modules": list(adapters),
        "rank_pattern": _pattern(ranks, r),
        "alpha_pattern": _pattern(alphas, alpha),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "modules_to_save": None,
        "layers_to_transform": None,
        "layers_pattern": None,
    }


def peft_lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``model``'s LoRA/DoRA parameters under peft's checkpoint keys (detached, contiguous, on the CPU)."""
    state: dict[str, Tensor] = {}
    for name, adapter in _checked_adapters(model).items():
        prefix = f"{KEY_PREFIX}{name}."
        state[prefix + "lora_A.weight"] = adapter.lora_A
        state[prefix + "lora_B.weight"] = adapter.lora_B
        if isinstance(adapter, DoRALinear):
            state[prefix + "lora_magnitude_vector"] = adapter.magnitude
    return {key: value.detach().cpu().contiguous() for key, value in state.items()}


def save_peft_lora(model: nn.Module, folder: str | os.PathLike,
                   base_model_name_or_path: str | None = None) -> Path:
    """Write ``model``'s unmerged LoRA or DoRA adapters as a PEFT adapter folder, atomically.

    ``peft.PeftModel.from_pretrained(base, folder)`` then reproduces the adapted model on a
    fresh ``base`` of the same class. ``base_model_name_or_path`` (default: the model
    config's ``name_or_path``, if any) is recorded in the config. Returns the folder.
    Raises ``ValueError`` for a model without adapters, for adapter types other than LoRA
    and DoRA, for merged adapters, and for per-layer dropout/rsLoRA/DoRA settings that differ.
    """
    config = peft_lora_config(model, base_model_name_or_path)
    state = peft_lora_state_dict(model)
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder
