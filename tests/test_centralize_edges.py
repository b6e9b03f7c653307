"""Centralization's edge cases: updates that touch different parameters, and a task count that
K does not divide. B ← B + (1/K) Σ_{i=1..K} ΔW_i, where a task that left a parameter alone
contributes ΔW_i = 0 to it (the mean divides by K, not by the updates touching it)."""

import pytest
import torch

from clasr.models.whisper import tiny_random_whisper
from clasr.strategies.base import TaskContext
from clasr.strategies.centralize import Centralization, CentralizeConfig

FIRST, SECOND = "model.decoder.layers.0.self_attn.q_proj.weight", "model.encoder.layers.1.fc2.weight"


@pytest.fixture
def model():
    return tiny_random_whisper(seed=7).model


def _params(model):
    return dict(model.named_parameters())


def _train(strategy, model, index, changes: dict[str, float]) -> tuple[dict, dict]:
    """One task: before_task, then each named parameter moves by a seeded random update
    (stand-in for an adapter's merged ΔW); returns the updates and after_task's facts."""
    task = TaskContext(index, f"t{index}", [], None, index)
    strategy.before_task(model, task)
    updates = {}
    generator = torch.Generator().manual_seed(index)
    with torch.no_grad():
        for name, scale in changes.items():
            param = _params(model)[name]
            updates[name] = scale * torch.randn(param.shape, generator=generator)
            param.add_(updates[name])
    return updates, strategy.after_task(model, task)


def test_updates_on_different_parameters_are_averaged_over_k(model):
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy = Centralization(CentralizeConfig(every=2))
    first, _ = _train(strategy, model, 1, {FIRST: 1e-2})
    second, facts = _train(strategy, model, 2, {SECOND: 1e-2})
    assert facts == {"deployed": "centralized base", "updates_averaged": 2}
    params = _params(model)
    assert torch.allclose(params[FIRST], base[FIRST] + first[FIRST] / 2, atol=1e-7)
    assert torch.allclose(params[SECOND], base[SECOND] + second[SECOND] / 2, atol=1e-7)
    assert all(torch.equal(p, base[n]) for n, p in params.items() if n not in (FIRST, SECOND))


def test_a_last_group_shorter_than_k_stays_uncentralized(model):
    """K = 2, T = 5: bases after tasks 2 and 4; task 5 is deployed as the base plus its own update."""
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy = Centralization(CentralizeConfig(every=2))
    updates, deployed = [], []
    for index in range(1, 6):
        changes = {FIRST: 1e-2, SECOND: 1e-2} if index % 2 else {FIRST: 1e-2}
        update, facts = _train(strategy, model, index, changes)
        updates.append(update)
        deployed.append(facts["deployed"])
    assert deployed == ["base + this task's update", "centralized base"] * 2 + ["base + this task's update"]
    u = lambda k, name: updates[k - 1].get(name, torch.zeros_like(base[name]))  # noqa: E731
    for name in (FIRST, SECOND):
        centralized = base[name] + (u(1, name) + u(2, name)) / 2 + (u(3, name) + u(4, name)) / 2
        assert torch.allclose(strategy.base[name], centralized, atol=1e-6), name
        assert torch.allclose(_params(model)[name], centralized + u(5, name), atol=1e-6), name
    assert len(strategy.pending) == 1 and facts["pending_updates"] == 1

    resumed = Centralization(CentralizeConfig(every=2))  # a resume in the middle of a group
    resumed.load_state_dict(strategy.state_dict())
    assert len(resumed.pending) == 1
    assert all(torch.equal(resumed.pending[0][n], strategy.pending[0][n]) for n in strategy.pending[0])
    assert all(torch.equal(resumed.base[n], strategy.base[n]) for n in strategy.base)
