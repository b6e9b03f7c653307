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


def _train_set_adapter(model, strategy, task, factors, config=None):
    """One task through the adapter session with given LoRA factors on LAYER (every other adapter
    at B = 0, so ΔW = 0 there), calling the strategy's adapters_trained hook as the runner does."""
    config = config or LoRAConfig(type="lora", r=1, alpha=1.0)
    strategy.before_task(model, task)
    with task_adapters(model, config, TrainingSet(utterances=1, target_tokens=10)):
        with torch.no_grad():
            for name, adapter in adapter_modules(model).items():
                adapter.lora_B.zero_()
                if name == LAYER:
                    adapter.lora_B.copy_(factors[0])
                    adapter.lora_A.copy_(factors[1])
        strategy.adapters_trained(model, task)
    return strategy.after_task(model, task)


def _unit(n, *entries):
    v = torch.zeros(n)
    for i in entries:
        v[i] = 1.0
    return v


def test_factor_averaging_on_a_hand_computed_case_differs_from_product_averaging(model):
    """Two rank-1 LoRAs on LAYER (s = 1): B1 = e0, A1 = e0ᵀ and B2 = e1, A2 = e1ᵀ.
    products: (E00 + E11)/2; factors: ((e0 + e1)/2)((e0 + e1)/2)ᵀ = (E00 + E01 + E10 + E11)/4."""
    out_f, in_f = model.get_submodule(LAYER).weight.shape
    base = model.get_submodule(LAYER).weight.detach().clone()
    tasks = [((_unit(out_f, 0)[:, None], _unit(in_f, 0)[None, :])), ((_unit(out_f, 1)[:, None], _unit(in_f, 1)[None, :]))]
    moved = {}
    for average in ("products", "factors"):
        strategy = Centralization(CentralizeConfig(every=2, average=average))
        for index, factors in enumerate(tasks, start=1):
            facts = _train_set_adapter(model, strategy, _task(index), factors)
        assert facts["deployed"] == "centralized base"
        moved[average] = (model.get_submodule(LAYER).weight.detach() - base)[:2, :2].clone()
        assert torch.allclose((model.get_submodule(LAYER).weight.detach() - base)[2:, :], torch.zeros(1), atol=1e-6)
        strategy.before_task(model, _task(3))  # back to the start for the next variant
        with torch.no_grad():
            model.get_submodule(LAYER).weight.copy_(base)
    assert torch.allclose(moved["products"], torch.tensor([[0.5, 0.0], [0.0, 0.5]]), atol=1e-6)
    assert torch.allclose(moved["factors"], torch.tensor([[0.25, 0.25], [0.25, 0.25]]), atol=1e-6)


def test_factor_and_product_averaging_agree_when_every_a_is_the_same(model):
    """A1 = A2 = A: ((B1 + B2)/2) A = (B1 A + B2 A)/2."""
    out_f, in_f = model.get_submodule(LAYER).weight.shape
    g = torch.Generator().manual_seed(3)
    A = torch.randn(2, in_f, generator=g)
    tasks = [(torch.randn(out_f, 2, generator=g), A), (torch.randn(out_f, 2, generator=g), A)]
    base = model.get_submodule(LAYER).weight.detach().clone()
    moved = {}
    for average in ("products", "factors"):
        strategy = Centralization(CentralizeConfig(every=2, average=average))
        for index, factors in enumerate(tasks, start=1):
            _train_set_adapter(model, strategy, _task(index), factors, LoRAConfig(type="lora", r=2, alpha=2.0))
        moved[average] = model.get_submodule(LAYER).weight.detach() - base
        with torch.no_grad():
            model.get_submodule(LAYER).weight.copy_(base)
    assert torch.allclose(moved["factors"], moved["products"], atol=1e-5)
    assert torch.allclose(moved["products"], (tasks[0][0] + tasks[1][0]) @ A / 2, atol=1e-5)


def test_pending_adapter_weights_survive_a_resume_and_give_the_same_centralization(model):
    out_f, in_f = model.get_submodule(LAYER).weight.shape
    g = torch.Generator().manual_seed(9)
    tasks = [(torch.randn(out_f, 1, generator=g), torch.randn(1, in_f, generator=g)) for _ in range(2)]
    base = model.get_submodule(LAYER).weight.detach().clone()
    strategy = Centralization(CentralizeConfig(every=2, average="factors"))
    _train_set_adapter(model, strategy, _task(1), tasks[0])
    resumed = Centralization(CentralizeConfig(every=2, average="factors"))
    resumed.load_state_dict({k: v.clone() for k, v in strategy.state_dict().items()})
    assert len(resumed.pending_factors) == 1 and resumed.pending_factors[0].keys() == strategy.pending_factors[0].keys()
    _train_set_adapter(model, resumed, _task(2), tasks[1])
    expected = base + ((tasks[0][0] + tasks[1][0]) / 2) @ ((tasks[0][1] + tasks[1][1]) / 2)
    assert torch.allclose(model.get_submodule(LAYER).weight, expected, atol=1e-5)
    assert resumed.pending_factors == [] and "factors.0" not in " ".join(resumed.state_dict())
    with torch.no_grad():
        model.get_submodule(LAYER).weight.copy_(base)


def test_paper_preset_fills_in_k_3_query_key_targets_factor_averaging_and_weight_decay():
    from clasr.experiment.config import parse_config
    from clasr.strategies.centralize import PAPER_WEIGHT_DECAY

    tasks = [{"name": "a", "data": "x", "train": {}, "test": {}}]
    config = parse_config({"strategy": {"name": "centralize", "preset": "paper"}, "adapter": {"type": "lora"}, "tasks": tasks}, "c.yaml")
    assert (config.strategy.every, config.strategy.average) == (3, "factors")
    assert config.adapter.targets.preset is None and config.adapter.targets.patterns == ["q_proj", "k_proj"]
    assert config.train.weight_decay == PAPER_WEIGHT_DECAY > 0
    assert parse_config(config.to_plain(), "c.yaml") == config  # a stored config reads back the same
    own = parse_config({"strategy": {"name": "centralize", "preset": "paper", "every": 2, "average": "products"},
                        "adapter": {"type": "lora", "targets": {"preset": "attention_qv"}},
                        "train": {"weight_decay": 0.0}, "tasks": tasks}, "c.yaml")
    assert (own.strategy.every, own.strategy.average, own.adapter.targets.preset, own.train.weight_decay) == (2, "products", "attention_qv", 0.0)


def test_a_run_with_factor_averaging_moves_the_base_by_the_product_of_the_mean_factors(tmp_path, tiny_checkpoint, one_thread):
    """Through the runner (its adapters_trained call): after K = 2 LoRA tasks the exported q/v
    weights are θ_0 + s·(mean B)(mean A) of the two saved adapters; every other weight is θ_0's."""
    import yaml
    from safetensors.torch import load_file

    from clasr.experiment.config import load_config
    from clasr.experiment.runner import run_experiment
    from conftest import write_dataset

    a, b = write_dataset(tmp_path / "a", seed=1), write_dataset(tmp_path / "b", seed=2)
    config = {
        "output_dir": str(tmp_path / "out"),
        "model": {"name": str(tiny_checkpoint), "window_seconds": 2.0},
        "strategy": {"name": "centralize", "every": 2, "average": "factors"},
        "adapter": {"type": "lora", "r": 2, "alpha": 4},
        "train": {"learning_rate": 3e-3, "max_steps": 1, "batch_size": 4, "warmup_ratio": 0.0},
        "evaluation": {"batch_size": 8, "limits": {"max_new_tokens": 2}},
        "tasks": [{"name": "a", "data": str(a), "train": {"split": "train"}, "test": {"split": "test"}},
                  {"name": "b", "data": str(b), "train": {"split": "train"}, "test": {"split": "test"}}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run_experiment(load_config(tmp_path / "c.yaml"))
    out = tmp_path / "out"
    foundation = load_file(str(tiny_checkpoint / "model.safetensors"))
    exported = load_file(str(out / "model" / "model.safetensors"))
    adapters = [load_file(str(out / "adapters" / task / "adapters.safetensors")) for task in ("task1_a", "task2_b")]
    layers = sorted(k.removesuffix(".lora_A") for k in adapters[0] if k.endswith(".lora_A"))
    for layer in layers:
        mean_b = sum(x[f"{layer}.lora_B"] for x in adapters) / 2
        mean_a = sum(x[f"{layer}.lora_A"] for x in adapters) / 2
        torch.testing.assert_close(exported[f"{layer}.weight"], foundation[f"{layer}.weight"] + 2.0 * mean_b @ mean_a,
                                   rtol=1e-5, atol=1e-6)
    products = sum(2.0 * x[f"{layers[0]}.lora_B"] @ x[f"{layers[0]}.lora_A"] for x in adapters) / 2
    assert not torch.allclose(exported[f"{layers[0]}.weight"], foundation[f"{layers[0]}.weight"] + products, atol=1e-7)
    untouched = [k for k in foundation if k in exported and k.removesuffix(".weight") not in layers]
    assert all(torch.equal(exported[k], foundation[k]) for k in untouched)
