"""save_peft_lora: a PEFT adapter folder that peft.PeftModel loads into the same adapted Whisper."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open

from clasr.adapters import (
    DoRAConfig,
    DoRALinear,
    LoRAConfig,
    LoRALinear,
    SSVDConfig,
    TargetConfig,
    adapter_modules,
    inject_adapters,
    merge_all,
)
from clasr.adapters.peft_export import peft_lora_config, save_peft_lora

import peft  # noqa: E402  test oracle, a dev dependency
from peft.tuners.lora import LoraLayer  # noqa: E402

ATOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every adapter non-zero factors (and DoRA a changed magnitude), as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for adapter in adapter_modules(model).values():
            for name in ("lora_A", "lora_B"):
                parameter = getattr(adapter, name)
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
            if hasattr(adapter, "magnitude"):
                adapter.magnitude.mul_(1 + 0.5 * torch.rand(adapter.magnitude.shape, generator=generator))


def inputs(bundle) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {"input_features": torch.randn(1, 80, bundle.window_frames, generator=generator),
            "decoder_input_ids": torch.randint(0, bundle.model.config.vocab_size, (1, 6), generator=generator)}


@torch.no_grad()
def logits(model, batch) -> torch.Tensor:
    return model(**batch).logits


def adapted_pair(bundle, config):
    """A copy of the tiny Whisper with ``config``'s adapters (randomized) and an untouched copy."""
    model, fresh = copy.deepcopy(bundle.model).eval(), copy.deepcopy(bundle.model).eval()
    inject_adapters(model, config)
    randomize(model)
    return model, fresh


def check_round_trip(bundle, model, fresh, folder):
    """peft loads exactly the adapted layers with our values, scales and outputs."""
    batch = inputs(bundle)
    base_logits = logits(fresh, batch)
    ours = logits(model, batch)
    assert (ours - base_logits).abs().max().item() > 1e-2  # the adapters do change the model
    assert save_peft_lora(model, folder) == folder
    loaded = peft.PeftModel.from_pretrained(fresh, str(folder)).eval()

    adapters = adapter_modules(model)
    theirs = {name.removeprefix("base_model.model."): module for name, module in loaded.named_modules()
              if isinstance(module, LoraLayer)}
    assert list(theirs) == list(adapters)
    for name, adapter in adapters.items():
        layer = theirs[name]
        assert layer.r["default"] == adapter.r
        assert layer.scaling["default"] == pytest.approx(adapter.scaling, rel=1e-12)
        assert torch.equal(layer.lora_A["default"].weight, adapter.lora_A)
        assert torch.equal(layer.lora_B["default"].weight, adapter.lora_B)
        if hasattr(adapter, "magnitude"):
            assert torch.equal(layer.lora_magnitude_vector["default"].weight, adapter.magnitude)

    # The file's keys are exactly those peft itself would save for this model.
    from safetensors.torch import load_file

    saved = load_file(str(folder / "adapter_model.safetensors"))
    assert set(saved) == set(peft.get_peft_model_state_dict(loaded))

    assert (logits(loaded, batch) - ours).abs().max().item() <= ATOL
    return json.loads((folder / "adapter_config.json").read_text())


@pytest.mark.parametrize("rslora", [False, True])
def test_lora_round_trip(tiny_bundle, tmp_path, rslora):
    config = LoRAConfig(type="lora", r=4, alpha=8, rslora=rslora, targets=TargetConfig(preset="attention_qv"))
    model, fresh = adapted_pair(tiny_bundle, config)
    written = check_round_trip(tiny_bundle, model, fresh, tmp_path / "peft")
    assert written["peft_type"] == "LORA" and written["use_rslora"] is rslora and written["use_dora"] is False
    assert written["r"] == 4 and written["lora_alpha"] == 8 and written["bias"] == "none"
    assert written["target_modules"] == list(adapter_modules(model))
    assert written["rank_pattern"] == {} and written["alpha_pattern"] == {}
    assert sorted(p.name for p in (tmp_path / "peft").iterdir()) == ["adapter_config.json",
                                                                     "adapter_model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["peft"]  # no temporary left behind


def test_dora_round_trip(tiny_bundle, tmp_path):
    config = DoRAConfig(type="dora", r=4, alpha=8, targets=TargetConfig(preset="attention_qv"))
    model, fresh = adapted_pair(tiny_bundle, config)
    written = check_round_trip(tiny_bundle, model, fresh, tmp_path / "peft")
    assert written["use_dora"] is True


def test_mixed_ranks_use_patterns(tiny_bundle, tmp_path):
    config = LoRAConfig(type="lora", r=4, alpha=8, targets=TargetConfig(preset="attention_qv"))
    model, fresh = adapted_pair(tiny_bundle, config)
    odd = "model.decoder.layers.1.encoder_attn.v_proj"
    parent, _, child = odd.rpartition(".")
    setattr(model.get_submodule(parent), child, LoRALinear(model.get_submodule(odd).base, r=2, alpha=5))
    randomize(model, seed=2)
    written = check_round_trip(tiny_bundle, model, fresh, tmp_path / "peft")
    assert written["r"] == 4 and written["lora_alpha"] == 8
    assert list(written["rank_pattern"].values()) == [2] and list(written["alpha_pattern"].values()) == [5]


def test_refuses_other_adapter_types(tiny_bundle, tmp_path):
    model = copy.deepcopy(tiny_bundle.model)
    inject_adapters(model, SSVDConfig(type="ssvd", k=2, targets=TargetConfig(preset="attention_qv")))
    with pytest.raises(ValueError, match="'ssvd' adapter: only LoRA and DoRA have a PEFT format"):
        save_peft_lora(model, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def test_refuses_merged_adapters(tiny_bundle, tmp_path):
    model = copy.deepcopy(tiny_bundle.model)
    inject_adapters(model, LoRAConfig(type="lora", r=4, alpha=8, targets=TargetConfig(preset="attention_qv")))
    merge_all(model)
    with pytest.raises(ValueError, match="merged"):
        save_peft_lora(model, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def test_config_is_what_peft_itself_writes_for_the_same_settings(tiny_bundle, tmp_path):
    """Every key of adapter_config.json is one of peft's LoraConfig with peft's own value for
    these settings (non-whole α, dropout, the model's name); the weights file carries peft's
    metadata; an explicit base model name wins over the model's."""
    model, _ = adapted_pair(tiny_bundle, LoRAConfig(type="lora", r=4, alpha=2.5, dropout=0.1,
                                                    targets=TargetConfig(preset="attention_qv")))
    model.config.name_or_path = "clasr/tiny-test"
    save_peft_lora(model, tmp_path / "peft")
    written = json.loads((tmp_path / "peft" / "adapter_config.json").read_text("utf-8"))
    reference = peft.LoraConfig(r=4, lora_alpha=2.5, lora_dropout=0.1, target_modules=written["target_modules"],
                                inference_mode=True, base_model_name_or_path="clasr/tiny-test").to_dict()
    assert set(written) <= set(reference)
    assert set(written.pop("target_modules")) == set(reference["target_modules"])
    assert written == {key: reference[key] for key in written}
    with safe_open(str(tmp_path / "peft" / "adapter_model.safetensors"), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt"}

    save_peft_lora(model, tmp_path / "named", base_model_name_or_path="openai/whisper-tiny.en")
    named = json.loads((tmp_path / "named" / "adapter_config.json").read_text("utf-8"))
    assert named["base_model_name_or_path"] == "openai/whisper-tiny.en"
    plain, _ = adapted_pair(tiny_bundle, LoRAConfig(type="lora", r=4, alpha=8, targets=TargetConfig(preset="attention_qv")))
    plain.config.name_or_path = ""
    config = peft_lora_config(plain)
    assert config["base_model_name_or_path"] is None and config["lora_dropout"] == 0.0
    assert type(config["lora_alpha"]) is int and config["lora_alpha"] == 8


def test_refusals_name_what_the_peft_format_cannot_hold(tiny_bundle, tmp_path):
    model = copy.deepcopy(tiny_bundle.model)
    with pytest.raises(ValueError, match=r"^the model has no adapters to export$"):
        save_peft_lora(model, tmp_path / "peft")
    inject_adapters(model, LoRAConfig(type="lora", r=4, targets=TargetConfig(preset="attention_qv")))
    name, first = next(iter(adapter_modules(model).items()))
    first.dropout = torch.nn.Dropout(0.1)
    with pytest.raises(ValueError, match=r"^the PEFT format holds one lora_dropout for all layers; the adapters have \[0\.0, 0\.1\]$"):
        save_peft_lora(model, tmp_path / "peft")
    first.rslora = True
    with pytest.raises(ValueError, match=r"^the PEFT format holds one use_rslora for all layers; the adapters have \[False, True\]$"):
        save_peft_lora(model, tmp_path / "peft")
    parent, child = name.rsplit(".", 1)
    setattr(model.get_submodule(parent), child, DoRALinear(torch.nn.Linear(4, 4), r=2))
    with pytest.raises(ValueError, match=r"^the PEFT format holds one use_dora for all layers; the adapters have \[False, True\]$"):
        save_peft_lora(model, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def test_a_model_without_a_transformers_config_exports_without_a_base_name():
    model = torch.nn.Sequential(torch.nn.Linear(6, 4))
    inject_adapters(model, LoRAConfig(type="lora", r=2, targets=TargetConfig(preset=None, patterns=["0"])))
    assert peft_lora_config(model)["base_model_name_or_path"] is None
