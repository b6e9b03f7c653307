"""Parameter-efficient adapters for Linear layers: LoRA, DoRA, PiSSA, SSVD, SSVD-O, BLoRA.

``AdapterConfig`` is the validated ``adapter:`` section of an experiment (discriminated by
``type``; each config names the layer it builds in its class variable ``module``);
``inject_adapters(model, config)`` wraps the selected layers. See :mod:`clasr.adapters.base`
for the interface every adapter shares.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from clasr.adapters.base import AdapterLinear, AdapterSettings
from clasr.adapters.blora import BLoRAConfig, BLoRALinear
from clasr.adapters.dora import DoRAConfig, DoRALinear
from clasr.adapters.inject import (
    adapter_modules,
    adapter_state_dict,
    count_trainable,
    delta_weights,
    extra_loss,
    inject_adapters,
    load_adapter_state_dict,
    load_adapters,
    merge_all,
    remove_adapters,
    save_adapters,
    unmerge_all,
    update_sparsity,
)
from clasr.adapters.lora import LoRAConfig, LoRALinear
from clasr.adapters.pissa import PiSSAConfig, PiSSALinear
from clasr.adapters.ssvd import SSVDConfig, SSVDLinear, SSVDOConfig, split_budget
from clasr.adapters.targets import PRESETS, TargetConfig, select_targets

AdapterConfig = Annotated[
    Union[LoRAConfig, DoRAConfig, PiSSAConfig, SSVDConfig, SSVDOConfig, BLoRAConfig], Field(discriminator="type")
]

__all__ = [
    "PRESETS", "AdapterConfig", "AdapterLinear", "AdapterSettings", "BLoRAConfig", "BLoRALinear",
    "DoRAConfig", "DoRALinear", "LoRAConfig", "LoRALinear", "PiSSAConfig", "PiSSALinear", "SSVDConfig",
    "SSVDLinear", "SSVDOConfig", "TargetConfig", "adapter_modules", "adapter_state_dict", "count_trainable",
    "delta_weights", "extra_loss", "inject_adapters", "load_adapter_state_dict", "load_adapters", "merge_all",
    "remove_adapters", "save_adapters", "select_targets", "split_budget", "unmerge_all", "update_sparsity",
]
