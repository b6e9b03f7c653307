"""Strategies register with their settings once: the class names its config, the config builds it."""

import typing

import pytest
from pydantic import TypeAdapter

from clasr.strategies import StrategyConfig, build_strategy
from clasr.strategies.base import Strategy, StrategySettings


def _configs() -> tuple[type[StrategySettings], ...]:
    union = typing.get_args(StrategyConfig)[0]
    return typing.get_args(union)


@pytest.mark.parametrize("settings", _configs(), ids=lambda c: c.__name__)
def test_every_config_in_the_union_builds_the_strategy_that_declared_it(settings):
    name = settings.model_fields["name"].default
    strategy = build_strategy(TypeAdapter(StrategyConfig).validate_python({"name": name}))
    assert type(strategy) is settings.strategy
    assert strategy.config == settings()
    assert type(strategy).__module__ == settings.__module__  # declared next to its settings


def test_names_are_unique_and_every_config_is_registered():
    names = [c.model_fields["name"].default for c in _configs()]
    assert len(names) == len(set(names))
    assert all(issubclass(c.strategy, Strategy) for c in _configs())


def test_settings_without_a_strategy_say_how_to_declare_one():
    class Orphan(StrategySettings):
        pass

    with pytest.raises(TypeError, match=r"class MyStrategy\(Strategy, settings=Orphan\)"):
        Orphan().build()


def test_a_second_strategy_for_the_same_settings_is_refused():
    class Once(StrategySettings):
        pass

    class First(Strategy, settings=Once):
        def __init__(self, config):
            self.config = config

    assert isinstance(Once().build(), First)
    with pytest.raises(TypeError, match="already built by First"):
        class Second(Strategy, settings=Once):
            pass


def test_a_subclass_of_a_registered_strategy_does_not_take_over_its_settings():
    class Plain(StrategySettings):
        pass

    class Parent(Strategy, settings=Plain):
        def __init__(self, config):
            self.config = config

    class Child(Parent):
        pass

    assert type(Plain().build()) is Parent
