"""Adapters inside the tiny random Whisper: targets, identity at init, freezing, merge, save/load."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from pydantic import TypeAdapter
from safetensors.torch import save_file
from torch import nn

from clasr.adapters import (
    AdapterConfig,
    TargetConfig,
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
    select_targets,
    unmerge_all,
    update_sparsity,
)
from clasr.adapters.base import TrainingSet
from clasr.adapters.blora import posterior_mean_sparsity

parse = TypeAdapter(AdapterConfig).validate_python


pytestmark = pytest.mark.usefixtures("one_thread")

# The tiny Whisper has 2 encoder layers (self-attention, fc1, fc2) and 2 decoder layers
# (self- and cross-attention, fc1, fc2); attention blocks have q, k, v and out projections.
PRESET_COUNTS = {"attention_qv": 2 * 2 + 2 * 4, "attention_all": 2 * 4 + 2 * 8,
                 "all_linear": 2 * 6 + 2 * 10, "encoder": 2 * 6, "decoder": 2 * 10}
ADAPTER_CONFIGS = [
    {"type": "lora", "r": 4},
    {"type": "dora", "r": 4},
    {"type": "pissa", "r": 4},
    {"type": "pissa", "r": 4, "svd": "randomized"},
    {"type": "ssvd", "budget_rank": 2},
    {"type": "ssvd_o", "budget_rank": 2, "ratio": 0.5},
    {"type": "blora", "r": 4, "prior_std": 0.01},
]


@pytest.fixture
def model(tiny_bundle):
    fresh = copy.deepcopy(tiny_bundle.model)
    fresh.eval()
    return fresh


def batch(model, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(2, model.config.num_mel_bins, 200, generator=generator)
    labels = torch.randint(0, 1000, (2, 6), generator=generator)
    return features, labels


def logits(model, features, labels) -> torch.Tensor:
    with torch.no_grad():
        return model(input_features=features, labels=labels).logits


def train_steps(model, steps: int = 3) -> None:
    features, labels = batch(model, seed=1)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.02)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(input_features=features, labels=labels).loss
        extra = extra_loss(model)
        (loss if extra is None else loss + extra).backward()
        optimizer.step()
    model.eval()


def set_n_train(model) -> None:
    for adapter in adapter_modules(model).values():
        adapter.prepare(TrainingSet(utterances=5, target_tokens=50))


@pytest.mark.parametrize("preset", PRESET_COUNTS)
def test_presets_select_expected_layers(model, preset):
    names = select_targets(model, TargetConfig(preset=preset))
    assert len(names) == PRESET_COUNTS[preset]
    assert "proj_out" not in names
    if preset == "attention_qv":
        assert {name.rsplit(".", 1)[1] for name in names} == {"q_proj", "v_proj"}
        assert any("encoder_attn" in name for name in names)
    if preset in ("encoder", "decoder"):
        assert all(name.startswith(f"model.{preset}.") for name in names)


def test_patterns_scope_and_exclusions(model):
    assert select_targets(model, TargetConfig(preset=None, patterns=["fc1"], scope="decoder")) == [
        "model.decoder.layers.0.fc1", "model.decoder.layers.1.fc1"]
    regex = TargetConfig(preset=None, patterns=[r"re:model\.encoder\.layers\.1\.self_attn\.[qk]_proj"])
    assert select_targets(model, regex) == ["model.encoder.layers.1.self_attn.k_proj",
                                            "model.encoder.layers.1.self_attn.q_proj"]
    no_cross = TargetConfig(preset="attention_qv", exclude=["*.encoder_attn.*"])
    assert len(select_targets(model, no_cross)) == 2 * 2 + 2 * 2
    with pytest.raises(ValueError, match="no Linear"):
        select_targets(model, TargetConfig(preset=None, patterns=["nothing_here"]))
    with pytest.raises(ValueError, match="shares its weight"):
        select_targets(model, TargetConfig(preset=None, patterns=["proj_out"]))


@pytest.mark.parametrize("preset", PRESET_COUNTS)
def test_inject_each_preset_identity_and_freezing(model, preset):
    features, labels = batch(model)
    before = logits(model, features, labels)
    adapters = inject_adapters(model, parse({"type": "lora", "r": 2, "targets": {"preset": preset}}))
    assert len(adapters) == PRESET_COUNTS[preset]
    assert (logits(model, features, labels) - before).abs().max().item() <= 1e-6
    adapter_params = {id(p) for a in adapters.values() for p in a.trainable_parameters()}
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad == (id(parameter) in adapter_params), name
    assert count_trainable(model) == sum(a.num_trainable() for a in adapters.values())
    assert count_trainable(model) == sum(2 * (a.in_features + a.out_features) for a in adapters.values())
    assert extra_loss(model) is None


@pytest.mark.parametrize("spec", ADAPTER_CONFIGS, ids=lambda spec: "-".join(map(str, spec.values())))
def test_every_adapter_in_whisper(model, spec):
    features, labels = batch(model)
    original = {name: p.detach().clone() for name, p in model.named_parameters()}
    before = logits(model, features, labels)
    config = parse({**spec, "targets": {"preset": "all_linear"}})
    adapters = inject_adapters(model, config)
    set_n_train(model)
    assert (logits(model, features, labels) - before).abs().max().item() <= 1e-6

    train_steps(model)
    adapted = logits(model, features, labels)
    assert (adapted - before).abs().max().item() > 1e-4, "training should change the model"
    assert set(delta_weights(model)) == set(adapters)

    merge_all(model)
    assert all(a.merged for a in adapters.values())
    assert (logits(model, features, labels) - adapted).abs().max().item() <= 1e-5
    unmerge_all(model)
    assert (logits(model, features, labels) - adapted).abs().max().item() <= 1e-5
    for name, adapter in adapters.items():
        assert (adapter.base.weight - original[f"{name}.weight"]).abs().max().item() <= 1e-6

    remove_adapters(model, merge=False)
    assert not adapter_modules(model)
    assert (logits(model, features, labels) - before).abs().max().item() <= 1e-6
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, original[name]), name


def test_remove_with_merge_keeps_adapted_function(model):
    features, labels = batch(model)
    inject_adapters(model, parse({"type": "ssvd_o", "k_in": 4, "k_out": 3, "targets": {"preset": "attention_all"}}))
    train_steps(model)
    adapted = logits(model, features, labels)
    deltas = delta_weights(model)
    originals = {name: a.base.weight.detach().clone() for name, a in adapter_modules(model).items()}
    remove_adapters(model, merge=True)
    assert not adapter_modules(model)
    assert all(type(model.get_submodule(name)) is nn.Linear for name in deltas)
    assert (logits(model, features, labels) - adapted).abs().max().item() <= 1e-5
    for name, delta in deltas.items():
        assert torch.allclose(model.get_submodule(name).weight, originals[name] + delta, atol=1e-6)


def test_inject_twice_is_refused(model):
    config = parse({"type": "lora"})
    inject_adapters(model, config)
    with pytest.raises(ValueError, match="already has adapters"):
        inject_adapters(model, config)


@pytest.mark.parametrize("spec", [{"type": "pissa", "r": 4, "svd": "randomized"}, {"type": "ssvd_o", "budget_rank": 1},
                                  {"type": "blora", "r": 2}, {"type": "dora", "r": 2}])
def test_save_load_round_trip(tiny_bundle, tmp_path, spec):
    features, labels = batch(tiny_bundle.model)
    config = parse(spec)
    torch.manual_seed(0)
    trained = copy.deepcopy(tiny_bundle.model).eval()
    inject_adapters(trained, config)
    set_n_train(trained)
    train_steps(trained)
    expected = logits(trained, features, labels)
    path = tmp_path / "adapters.safetensors"
    save_adapters(trained, path, config)

    torch.manual_seed(123)  # a different random init (PiSSA's randomized SVD, LoRA's A)
    fresh = copy.deepcopy(tiny_bundle.model).eval()
    inject_adapters(fresh, config)
    assert (logits(fresh, features, labels) - expected).abs().max().item() > 1e-4
    metadata = load_adapters(fresh, path)
    assert (logits(fresh, features, labels) - expected).abs().max().item() <= 1e-6
    assert metadata["config"]["type"] == spec["type"]
    assert set(metadata["layers"]) == set(adapter_modules(fresh))
    state = adapter_state_dict(fresh)
    assert not any(".base." in key for key in state)
    with pytest.raises(ValueError, match="does not fit"):
        load_adapter_state_dict(fresh, {k: v for k, v in list(state.items())[1:]})
    merge_all(fresh)
    with pytest.raises(ValueError, match="unmerge"):
        load_adapter_state_dict(fresh, state)


def test_blora_kl_and_sparsity_in_model(model):
    inject_adapters(model, parse({"type": "blora", "r": 2, "beta": 2.0, "targets": {"preset": "attention_qv"}}))
    with pytest.raises(RuntimeError, match="prepare"):
        extra_loss(model)
    set_n_train(model)
    adapters = adapter_modules(model).values()
    assert torch.allclose(extra_loss(model), sum(2.0 * a.kl() / 50 for a in adapters))
    assert update_sparsity(model) == 1.0  # ΔW = 0 at init
    # Means of B are zero at init, those of A (Kaiming-uniform) almost never below 1e-3.
    a_means = sum(a.mu_A.numel() for a in adapters)
    b_means = sum(a.mu_B.numel() for a in adapters)
    a_small = sum(int((a.mu_A.abs() < 1e-3).sum()) for a in adapters)
    assert posterior_mean_sparsity(adapters) == (b_means + a_small) / (a_means + b_means)
    assert a_small < 0.05 * a_means


def test_remove_adapters_merges_by_default_and_keeps_an_already_merged_update(model):
    features, labels = batch(model)
    inject_adapters(model, parse({"type": "lora", "r": 4}))
    train_steps(model)
    adapted = logits(model, features, labels)
    kept = copy.deepcopy(model)
    remove_adapters(model)
    assert (logits(model, features, labels) - adapted).abs().max().item() <= 1e-5
    merge_all(kept)
    remove_adapters(kept, merge=True)  # merged already: W' stays
    assert (logits(kept, features, labels) - adapted).abs().max().item() <= 1e-5


def test_adapter_loading_refusals_name_what_is_wrong(model, tmp_path):
    config = parse({"type": "lora", "r": 4})
    inject_adapters(model, config)
    with pytest.raises(ValueError, match=r"^model already has adapters; merge or remove them first$"):
        inject_adapters(model, config)
    state = adapter_state_dict(model)
    extra = {f"stray.{i}": torch.zeros(1) for i in range(7)}
    with pytest.raises(ValueError) as refused:
        load_adapter_state_dict(model, {**state, **extra})
    assert str(refused.value) == f"adapter state does not fit the model: missing [], unexpected {sorted(extra)[:5]}"
    kept = dict(list(state.items())[7:])
    with pytest.raises(ValueError) as refused:
        load_adapter_state_dict(model, kept)
    assert str(refused.value) == f"adapter state does not fit the model: missing {sorted(state.keys() - kept.keys())[:5]}, unexpected []"
    name = next(iter(state))
    wrong = {**state, name: torch.zeros(3, 5)}
    with pytest.raises(ValueError, match=f"^{re.escape(f'{name}: shape (3, 5), the model has {tuple(state[name].shape)}')}$"):
        load_adapter_state_dict(model, wrong)
    merge_all(model)
    with pytest.raises(ValueError, match=r"^unmerge the adapters before loading adapter weights$"):
        load_adapter_state_dict(model, state)
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(other))
    with pytest.raises(ValueError, match=f"^{re.escape(str(other))} is not a clasr adapter file$"):
        load_adapters(model, other)
