import pytest
import torch
from pydantic import TypeAdapter

from clasr.strategies import StrategyConfig, build_strategy
from clasr.strategies.base import TaskContext
from clasr.strategies.fta import FineTuneAverageConfig, averaging_weight


class Toy(torch.nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w))
        self.b = torch.nn.Parameter(torch.tensor(b))
        self.frozen = torch.nn.Parameter(torch.tensor([5.0]), requires_grad=False)


def _task(index):
    return TaskContext(index, f"t{index}", [], None, 0)


def _strategy(**config):
    return build_strategy(TypeAdapter(StrategyConfig).validate_python(config))


def test_ft_keeps_the_fine_tuned_model():
    model = Toy([1.0, 2.0], [0.0])
    strategy = _strategy(name="ft")
    strategy.before_task(model, _task(1))
    with torch.no_grad():
        model.w += 1
    strategy.after_task(model, _task(1))
    assert model.w.tolist() == [2.0, 3.0]


@pytest.mark.parametrize("task,count_foundation,expected", [(1, True, 1 / 2), (2, True, 1 / 3), (1, False, 1.0), (3, False, 1 / 3)])
def test_running_average_weight(task, count_foundation, expected):
    assert averaging_weight(FineTuneAverageConfig(count_foundation=count_foundation), task) == pytest.approx(expected)


def test_fta_interpolates_every_trainable_parameter():
    model = Toy([1.0, 2.0], [4.0])
    strategy = _strategy(name="fta", alpha=0.25)
    strategy.before_task(model, _task(1))
    with torch.no_grad():
        model.w.copy_(torch.tensor([5.0, -2.0]))
        model.b.copy_(torch.tensor([0.0]))
    facts = strategy.after_task(model, _task(1))
    # θ = θ_prev + α(θ̃ − θ_prev)
    assert model.w.tolist() == pytest.approx([1 + 0.25 * 4, 2 + 0.25 * -4])
    assert model.b.tolist() == pytest.approx([4 + 0.25 * -4])
    assert model.frozen.tolist() == [5.0]
    assert facts == {"alpha": 0.25}


def test_fta_running_average_equals_uniform_average_of_models():
    """With α_t = 1/(t+1), θ_T is the mean of θ_0 and the fine-tuned increments' endpoints."""
    model = Toy([0.0], [0.0])
    strategy = _strategy(name="fta")
    targets = [3.0, 6.0, 9.0]
    for t, target in enumerate(targets, start=1):
        strategy.before_task(model, _task(t))
        with torch.no_grad():
            model.w.fill_(target)  # fine-tuning moves w to the target from wherever it was
        strategy.after_task(model, _task(t))
    # θ_1 = 0 + (3-0)/2 = 1.5; θ_2 = 1.5 + (6-1.5)/3 = 3; θ_3 = 3 + (9-3)/4 = 4.5
    assert model.w.item() == pytest.approx(4.5)


def test_unknown_strategy_is_rejected():
    with pytest.raises(Exception, match="ft"):
        TypeAdapter(StrategyConfig).validate_python({"name": "nope"})


def test_swap_applies_each_task_update_only_to_its_own_sets_and_restores_the_base_exactly():
    model = Toy([1.0, 2.0], [0.5])
    strategy = _strategy(name="swap")
    for index, step in ((1, 1.0), (2, 10.0)):
        strategy.before_task(model, _task(index))
        assert model.w.tolist() == [1.0, 2.0]  # every task starts from the base
        with torch.no_grad():
            model.w += step
        strategy.after_task(model, _task(index))
        assert model.w.tolist() == [1.0, 2.0] and model.b.tolist() == [0.5]
    with strategy.scoring(model, "test/t1"):
        assert model.w.tolist() == [2.0, 3.0]
    with strategy.scoring(model, "dev/t2"):
        assert model.w.tolist() == [11.0, 12.0]
    for key in ("general/t1", "test/unknown"):
        with strategy.scoring(model, key):
            assert model.w.tolist() == [1.0, 2.0]
    assert model.w.tolist() == [1.0, 2.0]
    restored = _strategy(name="swap")
    restored.load_state_dict(strategy.state_dict())
    with restored.scoring(model, "test/t2"):
        assert model.w.tolist() == [11.0, 12.0]
    assert model.w.tolist() == [1.0, 2.0]
