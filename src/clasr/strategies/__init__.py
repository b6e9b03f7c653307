"""Continual-learning strategies: what happens between tasks (see :mod:`clasr.strategies.base`)."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from clasr.strategies.base import Strategy
from clasr.strategies.centralize import Centralization, CentralizeConfig
from clasr.strategies.ft import FineTune, FineTuneConfig
from clasr.strategies.fta import FineTuneAverage, FineTuneAverageConfig
from clasr.strategies.ihr import IHRConfig, InverseHessianRegularization

StrategyConfig = Annotated[
    Union[FineTuneConfig, FineTuneAverageConfig, IHRConfig, CentralizeConfig], Field(discriminator="name")
]

_BUILDERS = {"ft": FineTune, "fta": FineTuneAverage, "ihr": InverseHessianRegularization, "centralize": Centralization}


def build_strategy(config) -> Strategy:
    """The strategy object for a validated strategy config."""
    return _BUILDERS[config.name](config)


__all__ = ["Strategy", "StrategyConfig", "build_strategy"]
