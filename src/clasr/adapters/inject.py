"""Put adapters into a model, find them, merge them, take them out, save and load them.

Adapters replace the selected ``nn.Linear`` modules in place, so a Whisper layer such as
``model.decoder.layers.0.self_attn.q_proj`` becomes an :class:`AdapterLinear` whose frozen
layer is ``….q_proj.base``. Layer names below are those of the replaced modules.

The adapter state (:func:`adapter_state_dict`) holds every adapter's own parameters and
persistent buffers (PiSSA's initial factors, SSVD's singular vectors), keyed
``<layer>.<name>``, and nothing of the frozen model: loading it into a model with the same
adapters injected reproduces the adapted model exactly.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from clasr.adapters.base import AdapterLinear, AdapterSettings
from clasr.adapters.targets import select_targets
from clasr.atomic import atomic_path

FORMAT = "clasr-adapters"


def adapter_modules(model: nn.Module) -> dict[str, AdapterLinear]:
    """Every adapter of ``model`` by layer name, in module order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, AdapterLinear)}


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def inject_adapters(model: nn.Module, config: AdapterSettings) -> dict[str, AdapterLinear]:
    """Wrap the Linear layers selected by ``config.targets`` with ``config``'s adapter.

    Every parameter of ``model`` is frozen except the adapters' own. A model that already
    holds adapters is refused (merge or remove them first).
    """
    if adapter_modules(model):
        raise ValueError("model already has adapters; merge or remove them first")
    names = select_targets(model, config.targets)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for name in names:
        linear = model.get_submodule(name)
        _replace(model, name, config.build(linear).train(linear.training))
    adapters = adapter_modules(model)
    for adapter in adapters.values():
        for parameter in adapter.trainable_parameters():
            parameter.requires_grad_(True)
    return adapters


def merge_all(model: nn.Module) -> None:
    """Merge every unmerged adapter into its frozen layer."""
    for adapter in adapter_modules(model).values():
        if not adapter.merged:
            adapter.merge()


def unmerge_all(model: nn.Module) -> None:
    """Unmerge every merged adapter, restoring the pretrained weights exactly."""
    for adapter in adapter_modules(model).values():
        if adapter.merged:
            adapter.unmerge()


def remove_adapters(model: nn.Module, merge: bool = True) -> None:
    """Replace every adapter by its plain Linear layer, holding W' (``merge``) or the pretrained W.

    The Linear layers keep ``requires_grad=False``.
    """
    for name, adapter in adapter_modules(model).items():
        if merge and not adapter.merged:
            adapter.merge()
        elif not merge and adapter.merged:
            adapter.unmerge()
        adapter.unmerged_weight = None
        _replace(model, name, adapter.base)


def count_trainable(model: nn.Module) -> int:
    """Number of parameters of ``model`` with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def adapter_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Every adapter's parameters and persistent buffers, keyed ``<layer>.<name>`` (detached)."""
    state = {}
    for layer, adapter in adapter_modules(model).items():
        for key, value in adapter.state_dict().items():
            if not key.startswith("base."):
                state[f"{layer}.{key}"] = value.detach()
    return state


def load_adapter_state_dict(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Load an :func:`adapter_state_dict` into a model with the same adapters (unmerged).

    Raises ``ValueError`` when keys are missing or unexpected, or an adapter is merged.
    """
    expected = adapter_state_dict(model)
    if any(adapter.merged for adapter in adapter_modules(model).values()):
        raise ValueError("unmerge the adapters before loading adapter weights")
    missing, unexpected = expected.keys() - state.keys(), state.keys() - expected.keys()
    if missing or unexpected:
        raise ValueError(f"adapter state does not fit the model: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    for name, value in state.items():
        if value.shape != expected[name].shape:
            raise ValueError(f"{name}: shape {tuple(value.shape)}, the model has {tuple(expected[name].shape)}")
    model.load_state_dict(state, strict=False)


def save_adapters(model: nn.Module, path: str | os.PathLike, config: AdapterSettings | None = None) -> None:
    """Write the adapter state to a safetensors file atomically.

    The metadata holds each layer's :meth:`AdapterLinear.describe` and, when given, the
    adapter config (JSON).
    """
    state = {name: value.contiguous().cpu() for name, value in adapter_state_dict(model).items()}
    metadata = {"format": FORMAT,
                "layers": json.dumps({name: a.describe() for name, a in adapter_modules(model).items()})}
    if config is not None:
        metadata["config"] = config.model_dump_json()
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def load_adapters(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load a file written by :func:`save_adapters` into ``model``; returns its decoded metadata."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not a clasr adapter file")
    load_adapter_state_dict(model, load_file(str(path)))
    decoded: dict[str, Any] = {"layers": json.loads(metadata["layers"])}
    if "config" in metadata:
        decoded["config"] = json.loads(metadata["config"])
    return decoded


@torch.no_grad()
def delta_weights(model: nn.Module) -> dict[str, Tensor]:
    """ΔW = W' − W of every adapter by layer name (detached)."""
    return {name: adapter.delta_weight().detach() for name, adapter in adapter_modules(model).items()}


def extra_loss(model: nn.Module) -> Tensor | None:
    """The sum of the adapters' extra loss terms (BLoRA's KL), or None when none has one."""
    terms = [term for adapter in adapter_modules(model).values() if (term := adapter.extra_loss()) is not None]
    return torch.stack(terms).sum() if terms else None


@torch.no_grad()
def update_sparsity(model: nn.Module, threshold: float = 1e-3) -> float:
    """Share of all ΔW entries (over every adapter) whose magnitude is below ``threshold``."""
    deltas = delta_weights(model).values()
    below = sum(int((delta.abs() < threshold).sum()) for delta in deltas)
    return below / sum(delta.numel() for delta in deltas)
