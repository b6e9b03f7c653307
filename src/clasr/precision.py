"""Whether bf16 autocast pays on the device at hand (the ``train.bf16: auto`` setting).

bf16 autocast halves activation memory and is faster only where the hardware multiplies
bfloat16 at speed: CUDA GPUs of compute capability 8.0 and later, and CPUs with AMX tiles.
Elsewhere it is slower than float32 — on an AVX2-only AMD EPYC, where PyTorch emulates it, a
bf16 matmul measured 5.3× slower than the float32 one; on an Intel Xeon with AVX512-BF16 but
no AMX, a tiny.en LoRA step took 1.54× as long as in float32 (docs/benchmarks.md).
``auto`` turns it on only where it pays, so one config is fast on all of them.
"""

from __future__ import annotations

from typing import Literal, Union

import torch

BF16Setting = Union[bool, Literal["auto"]]


def fast_bf16(device: torch.device) -> bool:
    """True where ``device`` multiplies bfloat16 in hardware fast enough for autocast to pay:
    CUDA without emulation, CPUs with AMX (AVX512-BF16 alone measured slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.cpu._is_amx_tile_supported()
    return False


def use_bf16(setting: BF16Setting, device: torch.device) -> bool:
    """The autocast decision for a ``bf16`` setting: ``True``/``False`` as given, ``"auto"``
    on where bf16 pays on ``device`` (:func:`fast_bf16`)."""
    return fast_bf16(device) if setting == "auto" else bool(setting)


def describe_bf16(setting: BF16Setting) -> str:
    """``on``/``off``, or for ``auto`` what it resolves to on this machine's default device
    (the one Accelerate trains on), for reports."""
    if setting != "auto":
        return "on" if setting else "off"
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    fast = fast_bf16(device)
    return f"auto, {'on' if fast else 'off'} here ({device.type} {'with' if fast else 'without'} fast bf16)"
