"""``train.bf16: auto``: bf16 autocast only where the device multiplies bf16 natively."""

import pytest
import torch

from clasr import precision
from clasr.precision import describe_bf16, fast_bf16, use_bf16
from clasr.train import TrainConfig


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(False, False, False), (True, False, False), (False, True, True)])
def test_cpu_fast_bf16_needs_amx(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert fast_bf16(torch.device("cpu")) is expected
    assert use_bf16("auto", torch.device("cpu")) is expected


def test_explicit_settings_are_obeyed_whatever_the_hardware(monkeypatch):
    monkeypatch.setattr(precision, "fast_bf16", lambda device: False)
    assert use_bf16(True, torch.device("cpu")) is True
    monkeypatch.setattr(precision, "fast_bf16", lambda device: True)
    assert use_bf16(False, torch.device("cpu")) is False


def test_cuda_asks_for_hardware_support_not_emulation(monkeypatch):
    asked = {}

    def supported(including_emulation=True):
        asked["emulation"] = including_emulation
        return False

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert fast_bf16(torch.device("cuda")) is False and asked == {"emulation": False}


def test_the_config_accepts_auto_and_booleans_and_names_the_key_otherwise():
    assert TrainConfig(bf16="auto").bf16 == "auto"
    assert TrainConfig(bf16=True).bf16 is True
    with pytest.raises(ValueError, match="bf16"):
        TrainConfig(bf16="sometimes")


def test_reports_say_what_auto_resolved_to(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "fast_bf16", lambda device: False)
    assert describe_bf16("auto").startswith("auto, off here (cpu without fast bf16)")
    assert describe_bf16(True) == "on" and describe_bf16(False) == "off"
