"""Continual-learning strategies: what happens between tasks (see :mod:`clasr.strategies.base`)."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from clasr.strategies.base import Strategy
from clasr.strategies.centralize import Centralization, CentralizeConfig
from clasr.strategies.ewc import ElasticWeightConsolidation, EWCConfig
from clasr.strategies.frozen import FrozenPart, FrozenPartConfig
from clasr.strategies.ft import FineTune, FineTuneConfig
from clasr.strategies.fta import FineTuneAverage, FineTuneAverageConfig
from clasr.strategies.ihr import IHRConfig, InverseHessianRegularization
from clasr.strategies.joint import JointConfig, JointTraining
from clasr.strategies.lwf import LearningWithoutForgetting, LwFConfig
from clasr.strategies.replay import ExperienceReplay, ExperienceReplayConfig

StrategyConfig = Annotated[
    Union[
        FineTuneConfig,
        FineTuneAverageConfig,
        IHRConfig,
        CentralizeConfig,
        EWCConfig,
        LwFConfig,
        ExperienceReplayConfig,
        JointConfig,
        FrozenPartConfig,
    ],
    Field(discriminator="name"),
]

_BUILDERS = {
    "ft": FineTune,
    "fta": FineTuneAverage,
    "ihr": InverseHessianRegularization,
    "centralize": Centralization,
    "ewc": ElasticWeightConsolidation,
    "lwf": LearningWithoutForgetting,
    "er": ExperienceReplay,
    "joint": JointTraining,
    "frozen": FrozenPart,
}


def build_strategy(config) -> Strategy:
    """The strategy object for a validated strategy config."""
    return _BUILDERS[config.name](config)


__all__ = ["Strategy", "StrategyConfig", "build_strategy"]
