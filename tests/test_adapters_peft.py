"""LoRA, DoRA and PiSSA against peft: same initial values, same outputs and gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from clasr.adapters import DoRALinear, LoRALinear, PiSSALinear

import peft  # noqa: E402  test oracle, a dev dependency

IN, OUT, R, ALPHA = 20, 12, 4, 8


pytestmark = pytest.mark.usefixtures("one_thread")


class Net(nn.Module):
    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.lin = linear


def peft_layer(linear: nn.Linear, **options):
    """peft's LoRA layer around a copy of ``linear``."""
    config = peft.LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=["lin"], **options)
    return peft.inject_adapter_in_model(config, Net(copy.deepcopy(linear))).lin


def copy_factors(ours: LoRALinear, theirs) -> None:
    with torch.no_grad():
        theirs.lora_A["default"].weight.copy_(ours.lora_A)
        theirs.lora_B["default"].weight.copy_(ours.lora_B)
        if isinstance(ours, DoRALinear):
            theirs.lora_magnitude_vector["default"].weight.copy_(ours.magnitude)


def theirs_parameters(theirs) -> dict[str, torch.Tensor]:
    found = {"lora_A": theirs.lora_A["default"].weight, "lora_B": theirs.lora_B["default"].weight}
    if "default" in theirs.lora_magnitude_vector:
        found["magnitude"] = theirs.lora_magnitude_vector["default"].weight
    return found


def compare(ours: LoRALinear, theirs, atol: float = 1e-5) -> None:
    """Outputs and the gradients of the adapter parameters and of the input agree."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(7, IN, generator=generator)
    weights = torch.randn(7, OUT, generator=generator)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    assert (y_ours - y_theirs).abs().max().item() <= atol
    (y_ours * weights).sum().backward()
    (y_theirs * weights).sum().backward()
    assert (x_ours.grad - x_theirs.grad).abs().max().item() <= atol
    for name, parameter in theirs_parameters(theirs).items():
        mine = getattr(ours, name).grad
        assert mine is not None and mine.abs().max().item() > 0, name
        assert (mine - parameter.grad).abs().max().item() <= atol, name


def perturb(ours: LoRALinear) -> None:
    """Move B (and m) away from the init, as training would, so every gradient is non-trivial."""
    with torch.no_grad():
        ours.lora_B.add_(0.1 * torch.randn_like(ours.lora_B))
        if isinstance(ours, DoRALinear):
            ours.magnitude.mul_(1 + 0.1 * torch.rand_like(ours.magnitude))


@pytest.mark.parametrize("rslora", [False, True])
def test_lora_matches_peft(rslora):
    torch.manual_seed(0)
    linear = nn.Linear(IN, OUT)
    ours = LoRALinear(copy.deepcopy(linear), r=R, alpha=ALPHA, rslora=rslora)
    theirs = peft_layer(linear, use_rslora=rslora)
    assert theirs.scaling["default"] == ours.scaling
    perturb(ours)
    copy_factors(ours, theirs)
    compare(ours, theirs)


def test_dora_matches_peft():
    torch.manual_seed(0)
    linear = nn.Linear(IN, OUT)
    ours = DoRALinear(copy.deepcopy(linear), r=R, alpha=ALPHA)
    theirs = peft_layer(linear, use_dora=True)
    # peft's magnitude init is ‖W‖ per output row, like ours.
    assert torch.allclose(theirs.lora_magnitude_vector["default"].weight, ours.magnitude)
    perturb(ours)
    copy_factors(ours, theirs)
    compare(ours, theirs)
    with torch.no_grad():
        theirs.merge()
        assert (theirs.base_layer.weight - ours.adapted_weight()).abs().max().item() <= 1e-6


def test_pissa_matches_peft():
    torch.manual_seed(0)
    linear = nn.Linear(IN, OUT)
    ours = PiSSALinear(copy.deepcopy(linear), r=R, alpha=ALPHA)
    theirs = peft_layer(linear, init_lora_weights="pissa")
    # Same initial factors and the same frozen residual W − s·B₀A₀ (peft stores it as the base weight).
    assert torch.allclose(theirs.lora_A["default"].weight, ours.lora_A, atol=1e-6)
    assert torch.allclose(theirs.lora_B["default"].weight, ours.lora_B, atol=1e-6)
    residual = ours.base.weight - ours.scaling * ours.pissa_B0 @ ours.pissa_A0
    assert (theirs.base_layer.weight - residual).abs().max().item() <= 1e-6
    compare(ours, theirs)
    for layer in (ours, theirs):
        layer.zero_grad()
    perturb(ours)
    copy_factors(ours, theirs)
    compare(ours, theirs)
    # The adapted weights agree too; ours leaves the pretrained W in place.
    with torch.no_grad():
        theirs.merge()
    assert (theirs.base_layer.weight - ours.adapted_weight()).abs().max().item() <= 1e-5
    assert torch.equal(ours.base.weight, linear.weight)
