"""Continual-learning strategies: what happens between tasks (see :mod:`clasr.strategies.base`)."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from clasr.strategies.base import Strategy
from clasr.strategies.centralize import CentralizeConfig
from clasr.strategies.ewc import EWCConfig
from clasr.strategies.frozen import FrozenPartConfig
from clasr.strategies.ft import FineTuneConfig
from clasr.strategies.fta import FineTuneAverageConfig
from clasr.strategies.ihr import IHRConfig
from clasr.strategies.joint import JointConfig
from clasr.strategies.lwf import LwFConfig
from clasr.strategies.replay import ExperienceReplayConfig
from clasr.strategies.swap import AdapterSwapConfig
from clasr.strategies.task_arithmetic import TaskArithmeticConfig
from clasr.strategies.ties import TiesConfig
from clasr.strategies.dare import DareConfig

_CONFIGS = (
    FineTuneConfig,
    FineTuneAverageConfig,
    IHRConfig,
    CentralizeConfig,
    EWCConfig,
    LwFConfig,
    ExperienceReplayConfig,
    JointConfig,
    FrozenPartConfig,
    AdapterSwapConfig,
    TaskArithmeticConfig,
    TiesConfig,
    DareConfig,
)
StrategyConfig = Annotated[Union[_CONFIGS], Field(discriminator="name")]


def build_strategy(config) -> Strategy:
    """The strategy object for a validated strategy config."""
    return config.build()


__all__ = ["Strategy", "StrategyConfig", "build_strategy"]
