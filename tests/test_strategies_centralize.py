import pytest
import torch

from clasr.adapters import LoRAConfig, adapter_modules
from clasr.adapters.base import TrainingSet
from clasr.adapters.session import task_adapters
from clasr.models.whisper import tiny_random_whisper
from clasr.strategies.base import TaskContext
from clasr.strategies.centralize import Centralization, CentralizeConfig

LAYER = "model.decoder.layers.0.self_attn.q_proj"


@pytest.fixture(scope="module")
def model():
    return tiny_random_whisper(seed=5).model


def _task(index):
    return TaskContext(index, f"t{index}", [], None, index)


def _train_adapter(model, seed):
    """Inject LoRA, set its factors to seeded random values (stand-in for training), merge and remove.
    Returns the factors (B, A) and the scale of the q_proj adapter."""
    config = LoRAConfig(type="lora", r=2, alpha=4.0)
    with task_adapters(model, config, TrainingSet(utterances=1, target_tokens=10)) as facts:
        adapter = adapter_modules(model)[LAYER]
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in adapter.named_parameters():
                if p.requires_grad:
                    p.copy_(torch.randn(p.shape, generator=g))
            factors = (adapter.lora_B.detach().clone(), adapter.lora_A.detach().clone())
    assert facts["type"] == "lora" and facts["trainable_parameters"] > 0
    return factors, adapter.scaling


def test_adapter_session_merges_and_restores_trainability(model):
    before = model.get_submodule(LAYER).weight.detach().clone()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    (B, A), scale = _train_adapter(model, seed=1)
    after = model.get_submodule(LAYER)
    assert type(after) is torch.nn.Linear
    assert torch.allclose(after.weight, before + scale * B @ A, atol=1e-6)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable
    with torch.no_grad():
        after.weight.copy_(before)


def test_centralization_averages_products_not_factors(model):
    strategy = Centralization(CentralizeConfig(every=2))
    base = model.get_submodule(LAYER).weight.detach().clone()
    strategy.before_task(model, _task(1))
    (B1, A1), scale = _train_adapter(model, seed=11)
    facts = strategy.after_task(model, _task(1))
    assert facts["deployed"] == "base + this task's update"
    assert torch.allclose(model.get_submodule(LAYER).weight, base + scale * B1 @ A1, atol=1e-6)
    assert strategy.extra_view(model) is None  # the row already is task 1's adapter

    strategy.before_task(model, _task(2))  # the second adapter starts from the base, not from task 1's model
    assert torch.equal(model.get_submodule(LAYER).weight, base)
    (B2, A2), _ = _train_adapter(model, seed=12)
    facts = strategy.after_task(model, _task(2))
    assert facts == {"deployed": "centralized base", "updates_averaged": 2}
    merged = model.get_submodule(LAYER).weight.detach()
    products = base + scale * (B1 @ A1 + B2 @ A2) / 2
    factors = base + scale * ((B1 + B2) / 2) @ ((A1 + A2) / 2)
    assert torch.allclose(merged, products, atol=1e-6)
    assert not torch.allclose(merged, factors, atol=1e-3)

    label, deployed = strategy.extra_view(model)  # task 2's own adapter, before centralization
    assert label == "t2: its adapter before centralization"
    with deployed:
        assert torch.allclose(model.get_submodule(LAYER).weight, base + scale * B2 @ A2, atol=1e-6)
    assert torch.equal(model.get_submodule(LAYER).weight, merged)
    assert strategy.extra_view(model) is None  # offered once


def test_centralization_state_survives_a_resume(model):
    strategy = Centralization(CentralizeConfig(every=3))
    strategy.before_task(model, _task(1))
    _train_adapter(model, seed=21)
    strategy.after_task(model, _task(1))
    resumed = Centralization(CentralizeConfig(every=3))
    resumed.load_state_dict(strategy.state_dict())
    assert resumed.base.keys() == strategy.base.keys() and len(resumed.pending) == 1
    assert all(torch.equal(resumed.pending[0][k], v) for k, v in strategy.pending[0].items())
